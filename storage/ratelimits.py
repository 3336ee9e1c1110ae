"""The send schedule shared by every worker process (generic cell rate algorithm).

A sender reserves, in one statement, the time its next batch needs on each scope: the scope's
schedule moves on by cost x interval, and the sender learns when its share starts. A 429
restarts the schedule at the pause's end for everyone and announces the pause (`pauses`), so
that a worker in the middle of a batch it booked earlier stops too and books those sends again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping

from sqlalchemy import case, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.db import upsert_insert
from storage.erasure import Person, erases
from storage.models import RateLimit

# A pause is also kept as a row of its own, "pause:<scope>", whose next_at is when it ends:
# the schedule row alone cannot tell a pause from a busy schedule.
PAUSE = "pause:"
NOTIFY_CHANNEL = "hotline_rate_pause"
# A schedule whose next free time is this far in the past says nothing any more (the scope is
# free): its row is deleted, so per-person scopes do not outlive their conversations.
STALE_SECONDS = 60.0


def recipient_scope(channel: str, address_hash: bytes) -> str:
    """The rate-limit scope of one recipient (Telegram's per-chat limit). Named from the
    address hash, so erasing the person can find and delete it."""
    return f"{channel}:{address_hash.hex()}"


def recipient_scopes(channel: str, address_hash: bytes) -> list[str]:
    scope = recipient_scope(channel, address_hash)
    return [scope, PAUSE + scope]


@erases("rate_limits")
async def _erase_schedules(conn: AsyncConnection, person: Person) -> None:
    await conn.execute(delete(RateLimit).where(
        RateLimit.scope.in_(recipient_scopes(person.channel, person.address_hash))))


async def purge_stale(conn: AsyncConnection, now: float) -> None:
    await conn.execute(delete(RateLimit).where(RateLimit.next_at < now - STALE_SECONDS))


class SharedSchedule:
    def __init__(self, engine: AsyncEngine, poll_seconds: float = 0.25,
                 clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
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
        """Nothing goes out on `scope` for `seconds` from `now`, from any worker, and the pause
        is announced. Every slot booked before it is void (each worker books its sends again
        after it), so the schedule starts again at the pause's end. Returns the end."""
        until = now + seconds
        mark = self._insert(RateLimit).values(scope=PAUSE + scope, next_at=until,
                                              paused_for=seconds)
        later = mark.excluded.next_at > RateLimit.next_at
        mark = mark.on_conflict_do_update(
            index_elements=[RateLimit.scope],
            set_={"next_at": case((later, mark.excluded.next_at), else_=RateLimit.next_at),
                  "paused_for": case((later, mark.excluded.paused_for),
                                     else_=RateLimit.paused_for)},
        ).returning(RateLimit.next_at)
        async with self._engine.begin() as conn:
            end = (await conn.execute(mark)).scalar_one()  # the longest pause in force
            restart = self._insert(RateLimit).values(scope=scope, next_at=end)
            await conn.execute(restart.on_conflict_do_update(
                index_elements=[RateLimit.scope], set_={"next_at": end}))
            if self._postgres:  # delivered to the listeners when this commits
                await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                                   {"channel": NOTIFY_CHANNEL,
                                    "payload": f"{scope} {until!r} {seconds!r}"})
        return until

    async def pauses(self, stop: asyncio.Event) -> AsyncIterator[tuple[str, float, float]]:
        """(scope, until, length) for every pause in force now, then for each one announced
        later by
        any worker: at once on PostgreSQL (LISTEN/NOTIFY), within `poll_seconds` on SQLite.
        Runs until `stop` is set (it is not cancelled: a query cut off half-way can keep its
        connection from the pool); raises if the database connection is lost."""
        if self._postgres:
            async for pause in self._listen(stop):
                yield pause
            return
        seen: dict[str, float] = {}
        while not stop.is_set():
            async with self._engine.connect() as conn:
                # A plain read: no write lock (SQLite's transactions here begin IMMEDIATE).
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                current = await _in_force(conn, self._clock())
            for scope, until, length in current:
                if seen.get(scope) != until:
                    seen[scope] = until
                    yield scope, until, length
            try:
                await asyncio.wait_for(stop.wait(), self._poll)
            except TimeoutError:
                pass

    async def _listen(self, stop: asyncio.Event) -> AsyncIterator[tuple[str, float, float]]:
        async with self._engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            driver = (await conn.get_raw_connection()).driver_connection
            if driver is None:
                raise ConnectionError("no database connection to listen on")
            announced: asyncio.Queue[str] = asyncio.Queue()

            def heard(_conn: object, _pid: int, _channel: str, payload: str) -> None:
                announced.put_nowait(payload)

            await driver.add_listener(NOTIFY_CHANNEL, heard)  # before reading: none is missed
            try:
                for pause in await _in_force(conn, self._clock()):
                    yield pause
                while not stop.is_set():
                    try:
                        payload = await asyncio.wait_for(announced.get(), 1.0)
                    except TimeoutError:
                        if driver.is_closed():
                            raise ConnectionError(
                                "the pause listener lost its connection") from None
                        continue
                    scope, until, length = payload.rsplit(" ", 2)
                    yield scope, float(until), float(length)
            finally:
                if not driver.is_closed():
                    await driver.remove_listener(NOTIFY_CHANNEL, heard)


async def _in_force(conn: AsyncConnection, now: float) -> list[tuple[str, float, float]]:
    rows = await conn.execute(
        select(RateLimit.scope, RateLimit.next_at, RateLimit.paused_for)
        .where(RateLimit.scope.startswith(PAUSE), RateLimit.next_at > now)
    )
    return [(scope[len(PAUSE):], until, length if length is not None else until - now)
            for scope, until, length in rows]
