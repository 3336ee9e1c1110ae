"""Alembic, driven from code: `hotline db upgrade` and the start-up check use this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import create_engine, normalise_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | URL, master_key: bytes | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = normalise_url(url)
    # Migrations that re-encrypt stored data read the key from here (0006).
    config.attributes["master_key"] = master_key
    return config


def upgrade(url: str | URL, revision: str = "head", master_key: bytes | None = None) -> None:
    """Blocking: call it before the event loop starts, or in a thread."""
    command.upgrade(alembic_config(url, master_key), revision)


def downgrade(url: str | URL, revision: str, master_key: bytes | None = None) -> None:
    command.downgrade(alembic_config(url, master_key), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def current_revision(url: str | URL) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await revision_of(conn)
    finally:
        await engine.dispose()


async def revision_of(conn: AsyncConnection) -> str | None:
    """The revision of a connection's database: for checks that already hold an engine."""
    return await conn.run_sync(
        lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
    )
