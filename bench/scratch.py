"""Scratch databases for a benchmark: created, migrated, dropped afterwards."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy import text

from storage.db import create_engine, normalise_url
from storage.migrate import upgrade


async def scratch_postgres(server_url: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Returns the new database's URL and a coroutine function that drops it."""
    server = normalise_url(server_url)
    name = f"hotline_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)

    async def drop() -> None:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()

    await asyncio.to_thread(upgrade, url)
    return url, drop


async def scratch_databases(postgres_url: str | None) -> AsyncIterator[tuple[str, str]]:
    """(name, url) of a fresh SQLite database, then of a fresh PostgreSQL one on the server at
    `postgres_url` if given; each is removed once the loop moves past it."""
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{tmp}/bench.db"
        await asyncio.to_thread(upgrade, sqlite_url)
        yield "SQLite", sqlite_url
    if postgres_url:
        url, drop = await scratch_postgres(postgres_url)
        try:
            yield "PostgreSQL", url
        finally:
            await drop()
