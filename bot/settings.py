"""Settings from the environment (see .env.example). A wrong setting stops start-up with a
message that says which one and why."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from storage.crypto import KeyError_, new_master_key, parse_master_key
from storage.db import normalise_url, private_directory

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
    public_base_url: str | None = None
    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_bot_username: str | None = None  # without "@": posters link to t.me/<it>
    telegram_api_base: str | None = None
    telegram_per_second: float = 30.0
    telegram_per_chat_per_second: float = 1.0
    sender_lease_seconds: int = 120
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str | None = None
    twilio_segments_per_second: float = 1.0
    # The simulator page and API create contacts as anyone who calls them: from_env turns
    # them off beside a real channel unless SIMULATOR=on.
    simulator: bool = True

    @property
    def real_channel(self) -> bool:
        """Telegram or SMS is configured: the service talks to real people."""
        return bool(self.telegram_bot_token or self.twilio_account_sid)

    @property
    def telegram_webhook(self) -> bool:
        """Webhook mode when the service has a public address; long polling otherwise."""
        return bool(self.telegram_bot_token and self.public_base_url)

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
        settings = cls(
            database_url=database_url,
            secret_key=_secret_key(env.get("HOTLINE_SECRET_KEY"), data_dir, local),
            data_dir=data_dir,
            host=env.get("HOST", "127.0.0.1"),
            port=_int(env, "PORT", 8080, 1, 65535),
            organisation=env.get("ORGANISATION_NAME", "Hotline"),
            human_contact=env.get("HUMAN_CONTACT") or None,
            idle_minutes=_int(env, "IDLE_RESET_MINUTES", 24 * 60, 1, 60 * 24 * 365),
            sender_lease_seconds=_int(env, "SENDER_LEASE_SECONDS", 120, 5, 3600),
            **_telegram(env),
            **_twilio(env),
        )
        return replace(settings, simulator=_simulator(env, settings.real_channel))


def _simulator(env: Mapping[str, str], real_channel: bool) -> bool:
    raw = env.get("SIMULATOR") or ""
    if raw in ("on", "off"):
        return raw == "on"
    if raw:
        raise SettingsError(
            f"SIMULATOR must be 'on' or 'off', not {raw!r}. Unset, the simulator is on unless "
            "Telegram or Twilio is configured: on a live service anyone who opens it talks to "
            "the real database."
        )
    return not real_channel


_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
_BOT_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{5,}$")
_BOT_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{1,28}[Bb][Oo][Tt]$")


def _telegram(env: Mapping[str, str]) -> dict[str, Any]:
    public = (env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None
    if public and not re.match(r"^https?://[^/\s]+", public):
        raise SettingsError(f"PUBLIC_BASE_URL must be an http(s) URL, not {public!r}")
    token = env.get("TELEGRAM_BOT_TOKEN") or None
    secret = env.get("TELEGRAM_WEBHOOK_SECRET") or None
    api_base = (env.get("TELEGRAM_API_BASE") or "").rstrip("/") or None
    username = (env.get("TELEGRAM_BOT_USERNAME") or "").strip().removeprefix("@") or None
    if username and not _BOT_USERNAME.match(username):
        raise SettingsError(
            f"TELEGRAM_BOT_USERNAME must be the bot's username as BotFather gave it (5 to 32 "
            f"letters, digits or '_', ending in 'bot'), not {username!r}"
        )
    if token and not _BOT_TOKEN.match(token):
        raise SettingsError("TELEGRAM_BOT_TOKEN does not look like a bot token (123456:ABC...)")
    if token and public and not secret:
        raise SettingsError(
            "TELEGRAM_WEBHOOK_SECRET is required for the Telegram webhook (PUBLIC_BASE_URL is "
            "set): without it anyone could post fake updates. Use 16 to 256 letters, digits, "
            "'_' or '-'."
        )
    if secret and not _SECRET_TOKEN.match(secret):
        raise SettingsError(
            "TELEGRAM_WEBHOOK_SECRET must be 16 to 256 letters, digits, '_' or '-'"
        )
    if api_base and not re.match(r"^https?://", api_base):
        raise SettingsError(f"TELEGRAM_API_BASE must be an http(s) URL, not {api_base!r}")
    return {
        "public_base_url": public,
        "telegram_bot_token": token,
        "telegram_webhook_secret": secret,
        "telegram_bot_username": username,
        "telegram_api_base": api_base,
        "telegram_per_second": _float(env, "TELEGRAM_RATE_PER_SECOND", 30.0),
        "telegram_per_chat_per_second": _float(env, "TELEGRAM_RATE_PER_CHAT_PER_SECOND", 1.0),
    }


def _twilio(env: Mapping[str, str]) -> dict[str, Any]:
    sid = env.get("TWILIO_ACCOUNT_SID") or None
    token = env.get("TWILIO_AUTH_TOKEN") or None
    sender = env.get("TWILIO_FROM") or None
    service = env.get("TWILIO_MESSAGING_SERVICE_SID") or None
    api_base = (env.get("TWILIO_API_BASE") or "").rstrip("/") or None
    if not (sid or token or sender or service):
        return {}
    if not sid or not re.match(r"^AC[0-9a-fA-F]{32}$", sid):
        raise SettingsError("TWILIO_ACCOUNT_SID must be your account's SID (AC and 32 hex digits)")
    if not token:
        raise SettingsError(
            "TWILIO_AUTH_TOKEN is required: the SMS webhooks check Twilio's signature with it "
            "and refuse to start without it"
        )
    if not env.get("PUBLIC_BASE_URL"):
        raise SettingsError(
            "PUBLIC_BASE_URL is required for SMS: Twilio signs the public URL of each webhook "
            "and posts delivery reports to it"
        )
    if bool(sender) == bool(service):
        raise SettingsError("set exactly one of TWILIO_FROM (a number in E.164, e.g. "
                            "+15005550006) and TWILIO_MESSAGING_SERVICE_SID (MG...)")
    if sender and not re.match(r"^\+[1-9]\d{6,14}$", sender):
        raise SettingsError(f"TWILIO_FROM must be a number in E.164 form, not {sender!r}")
    if service and not re.match(r"^MG[0-9a-fA-F]{32}$", service):
        raise SettingsError("TWILIO_MESSAGING_SERVICE_SID must be MG and 32 hex digits")
    if api_base and not re.match(r"^https?://", api_base):
        raise SettingsError(f"TWILIO_API_BASE must be an http(s) URL, not {api_base!r}")
    return {
        "twilio_account_sid": sid, "twilio_auth_token": token, "twilio_from": sender,
        "twilio_messaging_service_sid": service, "twilio_api_base": api_base,
        "twilio_segments_per_second": _float(env, "TWILIO_SEGMENTS_PER_SECOND", 1.0),
    }


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None
    if not 0 < value <= 100_000:
        raise SettingsError(f"{name} must be above 0 and at most 100000, not {value}")
    return value


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
    private_directory(data_dir)
    path = data_dir / "secret.key"
    if path.exists():
        try:
            return parse_master_key(path.read_text())
        except KeyError_ as exc:
            raise SettingsError(f"{path} is unusable: {exc}") from None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(new_master_key() + "\n")
    log.warning(
        "Generated a new encryption key in %s. Back it up: without it the stored messages "
        "cannot be read. In production set HOTLINE_SECRET_KEY instead.", path
    )
    return parse_master_key(path.read_text())
