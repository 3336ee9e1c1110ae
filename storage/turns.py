"""One inbound message, one atomic write: the new state, the message log and the outbox commit
together, or not at all.

Both databases read optimistically: one SELECT reads the contact, its state and whether the
channel's message id was seen before; the step runs with no transaction open (so a slow step
holds no lock); the writes apply only if the conversation's version is still the one read.
PostgreSQL writes state, profile, log and outbox in one statement (data-modifying CTEs: 2 round
trips a message); SQLite in one short BEGIN IMMEDIATE transaction. If another process got there
first, or recorded the same message id, the turn runs again under a row lock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, exists, func, insert, literal, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.crypto import Vault, bound
from storage.db import upsert_insert
from storage.erasure import Person, erase_person, erases, holds_nothing_personal
from storage.models import Contact, Conversation, ErasedKey, Message
from storage.outbox import (
    PRIORITY_REPLY,
    address_blob,
    insert_rows,
    outbox_rows,
    payload_blob,
)
from storage.records import OutgoingReply, Profile, State

T = TypeVar("T")


@dataclass(frozen=True)
class Address:
    channel: str
    address: str


class Conflict(Exception):
    """The conversation changed (or the message was recorded) since this turn read it."""


class Turn:
    """One inbound message's view of its contact and the writes it makes. Use through
    `Turns.run`.

    Optimistic (the usual way, both databases): the state is read without a lock, the step runs
    with no transaction open (so a slow step holds no write lock), and the write applies only if
    the conversation's version is unchanged, else `Conflict`. Locked (after a lost race): the
    caller's transaction holds the conversation row and every read and write goes through it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        vault: Vault,
        address: Address,
        address_hash: bytes,
        dedupe_key: bytes | None,
        *,
        redelivery_window: timedelta,
        locked: AsyncConnection | None = None,
    ) -> None:
        self._engine = engine
        self._locked = locked
        self._vault = vault
        self._address = address
        self.address_hash = address_hash
        self._dedupe_key = dedupe_key
        self._window = redelivery_window
        self.contact_id: int = 0
        self.is_new = False
        self.duplicate = False
        self.profile = Profile()
        self.state = State()

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        if self._locked is not None:
            yield self._locked
            return
        async with self._engine.connect() as conn:
            # A plain read: no write lock (SQLite's transactions here begin IMMEDIATE).
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        if self._locked is not None:
            yield self._locked
            return
        async with self._engine.begin() as conn:
            yield conn

    async def _load(self, now: datetime) -> None:
        async with self._reading() as conn:
            row = await self._select(conn)
            if row is None:
                if await self._erased_recently(conn):
                    self.duplicate = True  # a redelivery after the person erased everything
                    return
                await self._create(conn, now)
                row = await self._select(conn)
                if row is None:  # pragma: no cover - the row was just created or found
                    raise RuntimeError("contact vanished while its turn was open")
        self.contact_id = row.id
        self.duplicate = bool(row.seen)
        self.profile = Profile(
            locale=row.locale, country=row.country, status=row.status,
            safe_to_text=row.safe_to_text,
        )
        self.state = State(
            flow=row.flow, step=row.step, data=dict(row.data or {}), version=row.version,
            updated_at=_aware(row.updated_at),
        )

    async def _select(self, conn: AsyncConnection) -> Any:
        params = {"b_address_hash": self.address_hash, "b_dedupe_key": self._dedupe_key}
        stmt = _SELECT_STATE if self._locked is None else _SELECT_LOCKED
        return (await conn.execute(stmt, params)).first()

    async def _erased_recently(self, conn: AsyncConnection) -> bool:
        if self._dedupe_key is None:
            return False
        return (await conn.execute(
            select(ErasedKey.dedupe_key).where(ErasedKey.dedupe_key == self._dedupe_key)
        )).first() is not None

    async def _create(self, conn: AsyncConnection, now: datetime) -> None:
        """Insert the contact and its conversation; safe to repeat, and safe if a crash came
        between the two (the conversation insert finds the contact by its hash)."""
        dialect_insert = upsert_insert(conn.dialect.name)
        contact_id = (await conn.execute(
            dialect_insert(Contact)
            .values(
                channel=self._address.channel,
                address_hash=self.address_hash,
                address_enc=self._vault.encrypt(
                    self._address.address, bound("contacts.address_enc", self.address_hash)),
                status="active",
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[Contact.address_hash])
            .returning(Contact.id)
        )).scalar()
        self.is_new = contact_id is not None
        await conn.execute(
            dialect_insert(Conversation)
            .from_select(
                ["contact_id", "flow", "step", "data", "version", "updated_at"],
                select(Contact.id, literal(None), literal(None),
                       literal({}, Conversation.data.type),
                       literal(0), literal(now, Conversation.updated_at.type))
                .where(Contact.address_hash == self.address_hash),
            )
            .on_conflict_do_nothing(index_elements=[Conversation.contact_id])
        )

    async def count_messages(self) -> int:
        stmt = select(func.count()).where(Message.contact_id == self.contact_id)
        async with self._reading() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    def _body(self, text_: str) -> bytes:
        return self._vault.encrypt(text_, bound("messages.body_enc", self.contact_id))

    async def save(
        self,
        *,
        now: datetime,
        inbound_text: str,
        state: State,
        profile: Profile,
        replies: Sequence[OutgoingReply],
    ) -> list[int]:
        """Write everything this message changed; returns the outbox ids. Raises `Conflict`
        (nothing written) if the conversation changed since it was read."""
        if self._locked is None and self._engine.dialect.name == "postgresql":
            return await self._save_in_one_statement(now, inbound_text, state, profile, replies)
        async with self._writing() as conn:
            applied = await conn.execute(_UPDATE_STATE, {
                "b_contact_id": self.contact_id, "b_flow": state.flow, "b_step": state.step,
                "b_data": state.data, "b_now": now, "b_version": self.state.version,
            })
            if applied.rowcount != 1:
                raise Conflict  # rolls the transaction back
            changes = profile.changes_from(self.profile)
            if changes:
                await conn.execute(
                    update(Contact).where(Contact.id == self.contact_id).values(**changes)
                )
            log = [
                {"contact_id": self.contact_id, "direction": "in", "dedupe_key": self._dedupe_key,
                 "body_enc": self._body(inbound_text), "created_at": now}
            ] + [
                {"contact_id": self.contact_id, "direction": "out", "dedupe_key": None,
                 "body_enc": self._body(r.text), "created_at": now}
                for r in replies
            ]
            await conn.execute(_INSERT_MESSAGE, log)
            return await insert_rows(conn, self._outbox_rows(replies, now, self.contact_id))

    async def _save_in_one_statement(
        self, now: datetime, inbound_text: str, state: State, profile: Profile,
        replies: Sequence[OutgoingReply],
    ) -> list[int]:
        async with self._engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            row = (await conn.execute(_SAVE_IF_UNCHANGED, {
                "contact_id": self.contact_id, "version": self.state.version,
                "flow": state.flow, "step": state.step, "data": json.dumps(state.data),
                "now": now, "profile_changed": bool(profile.changes_from(self.profile)),
                "locale": profile.locale, "country": profile.country, "status": profile.status,
                "safe_to_text": profile.safe_to_text,
                "directions": ["in"] + ["out"] * len(replies),
                "dedupe_keys": [self._dedupe_key] + [None] * len(replies),
                "bodies": [self._body(inbound_text)]
                + [self._body(r.text) for r in replies],
                "channel": self._address.channel, "address_hash": self.address_hash,
                "address_enc": address_blob(self._vault, self.address_hash,
                                            self._address.address),
                "payloads": [payload_blob(self._vault, self.address_hash, r) for r in replies],
                "priority": PRIORITY_REPLY,
            })).one()
        if not row.applied:
            raise Conflict
        return list(row.outbox_ids or [])

    async def erase(self, *, now: datetime, farewell: Sequence[OutgoingReply]) -> list[int]:
        """Delete everything about this contact (every table registered in storage.erasure);
        only the farewell remains, deleted as soon as it is delivered or has failed."""
        async with self._writing() as conn:
            version = (await conn.execute(
                select(Conversation.version)
                .where(Conversation.contact_id == self.contact_id)
                .with_for_update()
            )).scalar()
            if version != self.state.version:
                raise Conflict
            recent: list[bytes] = [k for k in (await conn.execute(
                select(Message.dedupe_key).where(
                    Message.contact_id == self.contact_id, Message.direction == "in",
                    Message.dedupe_key.is_not(None), Message.created_at >= now - self._window)
            )).scalars() if k is not None]
            await erase_person(
                conn, Person(self.contact_id, self._address.channel, self.address_hash),
                redeliverable=[*recent, *([self._dedupe_key] if self._dedupe_key else [])],
                keep_keys_until=now + self._window,
            )
            return await insert_rows(conn, self._outbox_rows(farewell, now, None,
                                                             erase_after_send=True))

    def _outbox_rows(self, replies: Sequence[OutgoingReply], now: datetime,
                     contact_id: int | None, erase_after_send: bool = False
                     ) -> list[dict[str, object]]:
        return outbox_rows(self._vault, channel=self._address.channel,
                           address=self._address.address, address_hash=self.address_hash,
                           replies=replies, now=now, priority=PRIORITY_REPLY,
                           contact_id=contact_id, erase_after_send=erase_after_send)


@erases("contacts")
async def _erase_contact(conn: AsyncConnection, person: Person) -> None:
    # The conversation and the message log go with the contact (ON DELETE CASCADE); said
    # explicitly as well, so that erasing does not depend on SQLite's foreign_keys pragma.
    await conn.execute(delete(Message).where(Message.contact_id == person.contact_id))
    await conn.execute(delete(Conversation).where(Conversation.contact_id == person.contact_id))
    await conn.execute(delete(Contact).where(Contact.id == person.contact_id))


holds_nothing_personal("conversations", "erased with their contact (see _erase_contact)")
holds_nothing_personal("messages", "erased with their contact (see _erase_contact)")
holds_nothing_personal("alembic_version", "the schema's revision")


class Turns:
    """Runs turns. The caller serialises turns of one contact within a process (in arrival
    order); across processes the version check keeps every turn working on the state the
    previous one left, and a turn that lost the race runs again under a row lock."""

    def __init__(self, engine: AsyncEngine, vault: Vault,
                 redelivery_window: timedelta = timedelta(hours=24)) -> None:
        self._engine = engine
        self._vault = vault
        self._window = redelivery_window

    def address_hash(self, channel: str, address: str) -> bytes:
        return self._vault.keyed_hash(channel, address)

    async def run(self, channel: str, address: str, message_id: str | None, now: datetime,
                  body: Callable[[Turn], Awaitable[T]]) -> T | None:
        """Load the turn and `await body(turn)`, whose writes are atomic; None, with nothing
        written, if the message was processed before."""
        address_ = Address(channel, address)
        address_hash = self._vault.keyed_hash(channel, address)
        dedupe_key = (
            self._vault.keyed_hash(channel, address, message_id) if message_id else None
        )
        turn = Turn(self._engine, self._vault, address_, address_hash, dedupe_key,
                    redelivery_window=self._window)
        await turn._load(now)
        if turn.duplicate:
            return None
        try:
            return await body(turn)
        except Conflict:
            pass  # another process changed this conversation meanwhile
        except IntegrityError as exc:
            # Another process recorded the same message id meanwhile; the locked read below
            # sees it and answers "duplicate".
            if "dedupe_key" not in str(exc.orig):
                raise
        # After a lost race: lock the conversation, so this turn cannot lose again (a busy
        # contact would otherwise starve one process's retries).
        async with self._engine.connect() as conn, conn.begin():
            turn = Turn(self._engine, self._vault, address_, address_hash, dedupe_key,
                        redelivery_window=self._window, locked=conn)
            await turn._load(now)
            return None if turn.duplicate else await body(turn)


# Built once: constructing statements costs more than running them on a warm connection.
# A NULL dedupe key (a message without a channel id) matches no row, so `seen` is false.
_SELECT_STATE = (
    select(
        Contact.id, Contact.locale, Contact.country, Contact.status, Contact.safe_to_text,
        Conversation.flow, Conversation.step, Conversation.data, Conversation.version,
        Conversation.updated_at,
        exists().where(Message.dedupe_key == bindparam("b_dedupe_key")).label("seen"),
    )
    .join(Conversation, Conversation.contact_id == Contact.id)
    .where(Contact.address_hash == bindparam("b_address_hash"))
)
# The conversation row is the lock, in both paths: the one-statement save takes it first (its
# UPDATE) and the contact row only at the end (foreign-key checks), so the locked path must
# take them in the same order or the two deadlock. SQLite ignores FOR UPDATE: BEGIN IMMEDIATE.
_SELECT_LOCKED = _SELECT_STATE.with_for_update(of=Conversation)

_UPDATE_STATE = (
    update(Conversation)
    .where(Conversation.contact_id == bindparam("b_contact_id"),
           Conversation.version == bindparam("b_version"))
    .values(flow=bindparam("b_flow"), step=bindparam("b_step"), data=bindparam("b_data",
            type_=Conversation.data.type), version=Conversation.version + 1,
            updated_at=bindparam("b_now"))
)
_INSERT_MESSAGE = insert(Message)
# PostgreSQL: the whole turn in one statement. Every CTE reads `state`, so nothing is written
# unless the version still matched.
_SAVE_IF_UNCHANGED = text("""
WITH state AS (
    UPDATE conversations
       SET flow = CAST(:flow AS VARCHAR), step = CAST(:step AS VARCHAR),
           data = CAST(:data AS JSON), version = version + 1,
           updated_at = CAST(:now AS TIMESTAMPTZ)
     WHERE contact_id = :contact_id AND version = :version
 RETURNING contact_id
), profile AS (
    UPDATE contacts
       SET locale = CAST(:locale AS VARCHAR), country = CAST(:country AS VARCHAR),
           status = CAST(:status AS VARCHAR), safe_to_text = CAST(:safe_to_text AS BOOLEAN)
     WHERE id IN (SELECT contact_id FROM state) AND CAST(:profile_changed AS BOOLEAN)
), log AS (
    INSERT INTO messages (contact_id, direction, dedupe_key, body_enc, created_at)
    SELECT state.contact_id, m.direction, m.dedupe_key, m.body_enc, CAST(:now AS TIMESTAMPTZ)
      FROM state,
           unnest(CAST(:directions AS VARCHAR[]), CAST(:dedupe_keys AS BYTEA[]),
                  CAST(:bodies AS BYTEA[])) AS m(direction, dedupe_key, body_enc)
), queued AS (
    INSERT INTO outbox (contact_id, channel, address_hash, address_enc, payload_enc, priority,
                        status, attempts, erase_after_send, created_at, next_attempt_at)
    SELECT state.contact_id, CAST(:channel AS VARCHAR), CAST(:address_hash AS BYTEA),
           CAST(:address_enc AS BYTEA), p.payload, CAST(:priority AS SMALLINT), 'queued', 0,
           false, CAST(:now AS TIMESTAMPTZ), CAST(:now AS TIMESTAMPTZ)
      FROM state, unnest(CAST(:payloads AS BYTEA[])) WITH ORDINALITY AS p(payload, n)
     ORDER BY p.n
 RETURNING id
)
SELECT (SELECT count(*) FROM state) AS applied,
       (SELECT array_agg(id ORDER BY id) FROM queued) AS outbox_ids
""")


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for what we stored as UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
