"""The database's clock, as every process should read it.

Leases, due times and the shared rate schedule are compared across processes, which may run on
machines whose clocks disagree. They all use the database server's clock instead: each process
measures its offset from it now and then (one query, in the background) and reads
`now()` = its own clock + that offset, so the hot paths pay no round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

_EPOCH_SQL = {
    "postgresql": "SELECT extract(epoch FROM clock_timestamp())",
    # julianday has millisecond resolution, which is all the schedule needs.
    "sqlite": "SELECT (julianday('now') - 2440587.5) * 86400.0",
}


class DatabaseClock:
    def __init__(self, engine: AsyncEngine, *, resync_seconds: float = 60.0,
                 local: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._local = local
        self._resync = resync_seconds
        self._offset = 0.0
        self._synced_at: float | None = None
        self._syncing: asyncio.Task[None] | None = None

    async def sync(self) -> float:
        """Measure the offset now (the midpoint of one round trip); returns it."""
        async with self._engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            before = self._local()
            remote = float((await conn.execute(text(_EPOCH_SQL[self._engine.dialect.name])))
                           .scalar_one())
            after = self._local()
        self._offset = remote - (before + after) / 2
        self._synced_at = after
        return self._offset

    def time(self) -> float:
        """Seconds since the epoch on the database's clock."""
        local = self._local()
        if self._synced_at is None or local - self._synced_at > self._resync:
            self._sync_soon()
        return local + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def _sync_soon(self) -> None:
        if self._syncing is not None and not self._syncing.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not in a loop (a script): the offset stays as it is
        self._syncing = loop.create_task(self._sync_quietly())

    async def _sync_quietly(self) -> None:
        try:
            await self.sync()
        except Exception as exc:  # the database is away: keep the last offset, try again later
            log.warning("could not read the database clock (%s)", type(exc).__name__)
            self._synced_at = self._local()

    async def close(self) -> None:
        # Waited for, not cancelled: a cancelled query leaves aiosqlite's thread running on
        # into a closed event loop. It is one short query.
        if self._syncing is not None:
            await asyncio.wait([self._syncing], timeout=5.0)
