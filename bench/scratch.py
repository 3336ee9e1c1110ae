"""A scratch PostgreSQL database for a benchmark: created, migrated, dropped afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

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
