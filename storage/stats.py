"""What an operator of the service asks the database: does it answer, is its schema the one the
code needs, and how deep is the outbox."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.migrate import head_revision, revision_of
from storage.models import OutboxItem

# The rows still to send, being sent, or given up on. Not "sent": those are history that grows
# by every message (a million in one wave of health messages), and counting them scans the
# table at every scrape (2 s for a million rows on SQLite, 0.6 s on PostgreSQL, against under
# 10 ms for these three through ix_outbox_due); hotline_sends_total counts sends as they go.
# Each is shown, at zero too, for every channel that has any of them, so that an alert on
# "queued" sees a 0 rather than a series that vanished.
OUTBOX_STATUSES = ("queued", "sending", "failed")


@dataclass(frozen=True)
class OutboxStats:
    rows: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, status) -> rows
    # Per channel with rows: seconds since the oldest queued row was written, 0 when none is.
    oldest_queued_seconds: dict[str, float] = field(default_factory=dict)


async def outbox_stats(engine: AsyncEngine, now: datetime) -> OutboxStats:
    """One grouped read of the outbox: rows by channel and status (OUTBOX_STATUSES), and the
    oldest queued."""
    query = (
        select(OutboxItem.channel, OutboxItem.status, func.count(),
               func.min(OutboxItem.created_at))
        .where(OutboxItem.status.in_(OUTBOX_STATUSES))
        .group_by(OutboxItem.channel, OutboxItem.status)
    )
    async with engine.connect() as conn:
        # A read needs no transaction; on SQLite ours would take the write lock (BEGIN
        # IMMEDIATE, see storage.db) and queue behind every turn.
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        result = (await conn.execute(query)).all()
    rows: dict[tuple[str, str], int] = {}
    oldest: dict[str, float] = {}
    for channel, status, count, first in result:
        rows[(channel, status)] = int(count)
        oldest.setdefault(channel, 0.0)
        if status == "queued" and first is not None:
            if first.tzinfo is None:  # SQLite keeps the UTC time without its zone
                first = first.replace(tzinfo=UTC)
            oldest[channel] = max(0.0, (now - first).total_seconds())
    for channel in oldest:
        for status in OUTBOX_STATUSES:
            rows.setdefault((channel, status), 0)
    return OutboxStats(rows, oldest)


@dataclass(frozen=True)
class DatabaseHealth:
    answers: bool
    schema: str | None  # the revision the database is at, when it answered
    problem: str | None = None  # why it is not healthy, for the operator (no data in it)

    @property
    def ok(self) -> bool:
        return self.problem is None


async def database_health(engine: AsyncEngine, *, timeout: float = 2.0) -> DatabaseHealth:
    """Whether the database answers within `timeout` and its schema is the one this code needs.
    Reading Alembic's revision is itself a query, so no separate `SELECT 1` is needed."""
    head = _head_revision()
    try:
        async with asyncio.timeout(timeout):
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                schema = await revision_of(conn)
    except TimeoutError:
        return DatabaseHealth(False, None, f"the database did not answer within {timeout:g} s")
    except Exception as exc:  # the driver's own kinds; their text may name a host or SQL
        return DatabaseHealth(False, None,
                              f"the database cannot be reached ({type(exc).__name__})")
    if schema != head:
        return DatabaseHealth(True, schema, f"the database schema is at {schema or 'nothing'}, "
                                            f"the code needs {head}: run `hotline db upgrade`")
    return DatabaseHealth(True, schema)


# The migrations this process was started with are the ones its code needs: read them once.
_head_revision = functools.cache(head_revision)
