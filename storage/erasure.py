"""Erasing a person: one function, and one registry that every table holding anything about a
person registers with.

A module that adds such a table registers an eraser for it (`@erases("table")`); a table that
holds nothing that names or can be matched to a person says so (`holds_nothing_personal`). A
test checks that every table of the schema is one or the other, so a table added later cannot
be forgotten.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import upsert_insert
from storage.models import ErasedKey


@dataclass(frozen=True)
class Person:
    """Whom to erase: their contact row, and the address hash that outbox rows, rate-limit
    scopes and de-duplication keys are derived from."""

    contact_id: int
    channel: str
    address_hash: bytes


Eraser = Callable[[AsyncConnection, Person], Awaitable[None]]
_ERASERS: dict[str, Eraser] = {}
_NOTHING_PERSONAL: dict[str, str] = {}


def erases(table: str) -> Callable[[Eraser], Eraser]:
    def register(eraser: Eraser) -> Eraser:
        if table in _ERASERS:
            raise ValueError(f"table {table!r} has two erasers")
        _ERASERS[table] = eraser
        return eraser

    return register


def holds_nothing_personal(table: str, why: str) -> None:
    _NOTHING_PERSONAL[table] = why


def _load_registrations() -> None:
    # Each module registers the tables it owns when imported.
    import storage.outbox
    import storage.ratelimits
    import storage.turns  # noqa: F401


def registered() -> tuple[dict[str, Eraser], dict[str, str]]:
    _load_registrations()
    return dict(_ERASERS), dict(_NOTHING_PERSONAL)


async def erase_person(conn: AsyncConnection, person: Person, *,
                       redeliverable: Iterable[bytes], keep_keys_until: datetime) -> None:
    """Delete everything about `person` inside the caller's transaction. `redeliverable` are
    the de-duplication keys of their last messages, which a provider may still redeliver:
    they are kept (alone, naming nobody) until `keep_keys_until`, so a redelivery cannot
    create the person again."""
    erasers, _ = registered()
    for eraser in erasers.values():
        await eraser(conn, person)
    keys = [{"dedupe_key": k, "expires_at": keep_keys_until} for k in set(redeliverable) if k]
    if keys:
        insert = upsert_insert(conn.dialect.name)
        await conn.execute(insert(ErasedKey).on_conflict_do_nothing(), keys)


async def purge_expired_keys(conn: AsyncConnection, now: datetime) -> None:
    await conn.execute(delete(ErasedKey).where(ErasedKey.expires_at < now))


holds_nothing_personal(
    "erased_keys", "keyed hashes of an erased person's last message ids, deleted after the "
                   "redelivery window; they name nobody and link to no other row")
for _table in ("directory_organizations", "directory_services", "directory_coverage"):
    holds_nothing_personal(
        _table, "the directory of organisations (storage.directory): it names organisations "
                "and their public lines, never a person who wrote to us")
