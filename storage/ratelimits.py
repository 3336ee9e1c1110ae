"""The send schedule shared by every worker process (generic cell rate algorithm).

A sender reserves, in one statement, the time its next batch needs on each scope: the scope's
schedule moves on by cost x interval, and the sender learns when its share starts. A 429 pushes
the schedule past the pause for everyone, and announces the pause (`pauses`) so that a worker
in the middle of a batch it booked earlier stops too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.db import upsert_insert
from storage.models import RateLimit

# A pause is also kept as a row of its own, "pause:<scope>", whose next_at is when it ends:
# the schedule row alone cannot tell a pause from a busy schedule.
PAUSE = "pause:"
NOTIFY_CHANNEL = "hotline_rate_pause"


class SharedSchedule:
    def __init__(self, engine: AsyncEngine, poll_seconds: float = 0.25) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = upsert_insert(engine.dialect.name)
        self._greatest = func.greatest if self._postgres else func.max
        self._poll = poll_seconds

    async def reserve(self, demands: Mapping[str, float], now: float) -> dict[str, float]:
        """`demands` maps a scope to the seconds of its budget wanted (cost x interval);
        returns when each reservation starts."""
        if not demands:
            return {}
        stmt = self._insert(RateLimit)
        stmt = stmt.on_conflict_do_update(
            index_elements=[RateLimit.scope],
            set_={"next_at": self._greatest(RateLimit.next_at, now)
                  + (stmt.excluded.next_at - now)},
        ).returning(RateLimit.scope, RateLimit.next_at)
        rows = [{"scope": scope, "next_at": now + seconds}
                for scope, seconds in sorted(demands.items())]  # one lock order for all
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt, rows) if len(rows) > 1 else None
            ends = (
                {r.scope: r.next_at for r in result}
                if result is not None
                else {r.scope: r.next_at for r in await conn.execute(stmt.values(rows[0]))}
            )
        return {scope: ends[scope] - demands[scope] for scope in demands}

    async def pause(self, scope: str, seconds: float, now: float) -> float:
        """Nothing goes out on `scope` for `seconds` from `now`, from any worker: what was
        already booked moves back by the pause, and the pause is announced. Returns its end."""
        until = now + seconds
        shift = self._insert(RateLimit).values(scope=scope, next_at=until)
        shift = shift.on_conflict_do_update(
            index_elements=[RateLimit.scope],
            set_={"next_at": self._greatest(RateLimit.next_at, now) + seconds},
        )
        mark = self._insert(RateLimit).values(scope=PAUSE + scope, next_at=until)
        mark = mark.on_conflict_do_update(
            index_elements=[RateLimit.scope],
            set_={"next_at": self._greatest(RateLimit.next_at, mark.excluded.next_at)},
        )
        async with self._engine.begin() as conn:
            await conn.execute(shift)  # the schedule moves back by the pause
            await conn.execute(mark)  # the pause row holds its end
            if self._postgres:  # delivered to the listeners when this commits
                await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                                   {"channel": NOTIFY_CHANNEL, "payload": f"{scope} {until!r}"})
        return until

    async def pauses(self) -> AsyncIterator[tuple[str, float]]:
        """(scope, until) for every pause in force now, then for each one announced later by
        any worker: at once on PostgreSQL (LISTEN/NOTIFY), within `poll_seconds` on SQLite.
        Runs until cancelled; raises if the database connection is lost."""
        if self._postgres:
            async for pause in self._listen():
                yield pause
            return
        seen: dict[str, float] = {}
        while True:
            async with self._engine.connect() as conn:
                # A plain read: no write lock (SQLite's transactions here begin IMMEDIATE).
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                current = await _in_force(conn)
            for scope, until in current:
                if seen.get(scope) != until:
                    seen[scope] = until
                    yield scope, until
            await asyncio.sleep(self._poll)

    async def _listen(self) -> AsyncIterator[tuple[str, float]]:
        async with self._engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            driver = (await conn.get_raw_connection()).driver_connection
            announced: asyncio.Queue[str] = asyncio.Queue()

            def heard(_conn: object, _pid: int, _channel: str, payload: str) -> None:
                announced.put_nowait(payload)

            await driver.add_listener(NOTIFY_CHANNEL, heard)  # before reading: none is missed
            try:
                for pause in await _in_force(conn):
                    yield pause
                while True:
                    try:
                        payload = await asyncio.wait_for(announced.get(), 30.0)
                    except TimeoutError:
                        if driver.is_closed():
                            raise ConnectionError("the pause listener lost its connection")
                        continue
                    scope, _, until = payload.rpartition(" ")
                    yield scope, float(until)
            finally:
                if not driver.is_closed():
                    await driver.remove_listener(NOTIFY_CHANNEL, heard)


async def _in_force(conn: AsyncConnection) -> list[tuple[str, float]]:
    rows = await conn.execute(
        select(RateLimit.scope, RateLimit.next_at)
        .where(RateLimit.scope.startswith(PAUSE), RateLimit.next_at > time.time())
    )
    return [(scope[len(PAUSE):], until) for scope, until in rows]
