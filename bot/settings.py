"""Settings from the environment (see .env.example). A wrong setting stops start-up with a
message that says which one and why."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from storage.crypto import KeyError_, new_master_key, parse_master_key
from storage.db import normalise_url

log = logging.getLogger(__name__)


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: bytes
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    organisation: str = "Hotline"
    human_contact: str | None = None
    idle_minutes: int = 24 * 60
    max_text_chars: int = 10_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("DATA_DIR", "var")).resolve()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'hotline.db'}"
        try:
            url = normalise_url(database_url)
        except Exception as exc:  # sqlalchemy raises several kinds for a bad URL
            raise SettingsError(f"DATABASE_URL is not a database URL we can use: {exc}") from exc
        local = url.get_backend_name() == "sqlite"
        return cls(
            database_url=database_url,
            secret_key=_secret_key(env.get("HOTLINE_SECRET_KEY"), data_dir, local),
            data_dir=data_dir,
            host=env.get("HOST", "127.0.0.1"),
            port=_int(env, "PORT", 8080, 1, 65535),
            organisation=env.get("ORGANISATION_NAME", "Hotline"),
            human_contact=env.get("HUMAN_CONTACT") or None,
            idle_minutes=_int(env, "IDLE_RESET_MINUTES", 24 * 60, 1, 60 * 24 * 365),
        )


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _secret_key(configured: str | None, data_dir: Path, local: bool) -> bytes:
    if configured:
        try:
            return parse_master_key(configured)
        except KeyError_ as exc:
            raise SettingsError(f"HOTLINE_SECRET_KEY is unusable: {exc}") from None
    if not local:
        raise SettingsError(
            "HOTLINE_SECRET_KEY is required with a PostgreSQL DATABASE_URL: message bodies "
            "and phone numbers are encrypted with it. Generate one with "
            "`hotline key new` and keep it safe."
        )
    path = data_dir / "secret.key"
    if path.exists():
        try:
            return parse_master_key(path.read_text())
        except KeyError_ as exc:
            raise SettingsError(f"{path} is unusable: {exc}") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(new_master_key() + "\n")
    log.warning(
        "Generated a new encryption key in %s. Back it up: without it the stored messages "
        "cannot be read. In production set HOTLINE_SECRET_KEY instead.", path
    )
    return parse_master_key(path.read_text())
