"""The send schedule shared by every worker process (generic cell rate algorithm).

A sender reserves, in one statement, the time its next batch needs on each scope: the scope's
schedule moves on by cost x interval, and the sender learns when its share starts. A 429 pushes
the schedule past the pause for everyone.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import upsert_insert
from storage.models import RateLimit


class SharedSchedule:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        self._insert = upsert_insert(dialect)
        self._greatest = func.greatest if dialect == "postgresql" else func.max

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

    async def pause(self, scope: str, until: float) -> None:
        stmt = self._insert(RateLimit).values(scope=scope, next_at=until)
        stmt = stmt.on_conflict_do_update(
            index_elements=[RateLimit.scope],
            set_={"next_at": self._greatest(RateLimit.next_at, stmt.excluded.next_at)},
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)
