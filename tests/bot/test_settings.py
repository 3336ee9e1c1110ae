import stat
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError
from storage.crypto import new_master_key


def test_the_local_default_generates_a_key_once(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path)}
    first = Settings.from_env(env)
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Settings.from_env(env).secret_key == first.secret_key
    assert first.database_url == f"sqlite:///{tmp_path / 'hotline.db'}"


def test_the_local_default_keeps_its_folder_private(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # as `mkdir -p var` left it before
    Settings.from_env({"DATA_DIR": str(data)})
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    Settings.from_env({"DATA_DIR": str(tmp_path / "new")})  # and a folder made for it
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_postgres_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="HOTLINE_SECRET_KEY is required"):
        Settings.from_env({"DATA_DIR": str(tmp_path),
                           "DATABASE_URL": "postgresql://localhost/hotline"})
    key = new_master_key()
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), "HOTLINE_SECRET_KEY": key,
                                  "DATABASE_URL": "postgres://localhost/hotline"})
    assert len(settings.secret_key) == 32


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be a whole number"),
        ({"PORT": "70000"}, "PORT must be between"),
        ({"HOTLINE_SECRET_KEY": "abc"}, "HOTLINE_SECRET_KEY is unusable"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"IDLE_RESET_MINUTES": "0"}, "IDLE_RESET_MINUTES must be between"),
        ({"SIMULATOR": "yes"}, "SIMULATOR must be 'on' or 'off'"),
    ],
)
def test_wrong_settings_say_which_and_why(tmp_path: Path, env: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"DATA_DIR": str(tmp_path), **env})


TELEGRAM = {"TELEGRAM_BOT_TOKEN": "123456:ABCDEF"}
TWILIO = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "token",
          "TWILIO_FROM": "+15005550006", "PUBLIC_BASE_URL": "https://hotline.example.org"}


@pytest.mark.parametrize(
    ("env", "simulator"),
    [
        ({}, True),
        ({"SIMULATOR": "off"}, False),
        (TELEGRAM, False),
        (TWILIO, False),
        ({**TELEGRAM, "SIMULATOR": "on"}, True),
        ({**TWILIO, "SIMULATOR": "on"}, True),
    ],
)
def test_the_simulator_is_off_beside_a_real_channel_unless_asked_for(
    tmp_path: Path, env: dict, simulator: bool
) -> None:
    assert Settings.from_env({"DATA_DIR": str(tmp_path), **env}).simulator is simulator
