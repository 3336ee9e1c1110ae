"""One inbound message, one atomic write: the new state, the message log and the outbox commit
together, or not at all.

PostgreSQL (optimistic, 2 round trips): one SELECT reads the contact, its state and whether the
channel's message id was seen before; the step runs with no transaction open; one statement
(data-modifying CTEs) writes state, profile, log and outbox only if the conversation's version is
still the one read. If another process got there first, or recorded the same message id, the
turn starts again from a fresh read.

SQLite (one writer at a time anyway): BEGIN IMMEDIATE, the same SELECT, the writes, COMMIT.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, exists, func, insert, literal, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.crypto import Vault
from storage.db import upsert_insert
from storage.models import Contact, Conversation, Message, OutboxItem
from storage.records import OutgoingReply, Profile, State

T = TypeVar("T")

PRIORITY_REPLY = 0
PRIORITY_BULK = 10


@dataclass(frozen=True)
class Address:
    channel: str
    address: str


class Conflict(Exception):
    """The conversation changed (or the message was recorded) since this turn read it."""


class Turn:
    """One inbound message's view of its contact and the writes it makes. Use through
    `Turns.run`."""

    def __init__(
        self,
        conn: AsyncConnection,
        vault: Vault,
        address: Address,
        address_hash: bytes,
        dedupe_key: bytes | None,
        optimistic_engine: AsyncEngine | None = None,
    ) -> None:
        self._conn = conn
        # Set when the turn runs without a transaction (PostgreSQL): writes check the version.
        self._optimistic_engine = optimistic_engine
        self._vault = vault
        self._address = address
        self.address_hash = address_hash
        self._dedupe_key = dedupe_key
        self.contact_id: int = 0
        self.is_new = False
        self.duplicate = False
        self.profile = Profile()
        self.state = State()

    async def _load(self, now: datetime) -> None:
        row = await self._select_locked()
        if row is None:
            await self._create(now)
            row = await self._select_locked()
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

    async def _select_locked(self) -> Any:
        params = {"b_address_hash": self.address_hash, "b_dedupe_key": self._dedupe_key}
        stmt = _SELECT_STATE if self._optimistic_engine is not None else _SELECT_LOCKED
        return (await self._conn.execute(stmt, params)).first()

    async def _create(self, now: datetime) -> None:
        """Insert the contact and its conversation; safe to repeat, and safe if a crash came
        between the two (the conversation insert finds the contact by its hash)."""
        dialect_insert = upsert_insert(self._conn.dialect.name)
        contact_id = (await self._conn.execute(
            dialect_insert(Contact)
            .values(
                channel=self._address.channel,
                address_hash=self.address_hash,
                address_enc=self._vault.encrypt(self._address.address),
                status="active",
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[Contact.address_hash])
            .returning(Contact.id)
        )).scalar()
        self.is_new = contact_id is not None
        await self._conn.execute(
            dialect_insert(Conversation)
            .from_select(
                ["contact_id", "flow", "step", "data", "version", "updated_at"],
                select(Contact.id, literal(None), literal(None), literal({}, Conversation.data.type),
                       literal(0), literal(now, Conversation.updated_at.type))
                .where(Contact.address_hash == self.address_hash),
            )
            .on_conflict_do_nothing(index_elements=[Conversation.contact_id])
        )

    async def count_messages(self) -> int:
        stmt = select(func.count()).where(Message.contact_id == self.contact_id)
        return int((await self._conn.execute(stmt)).scalar_one())

    async def save(
        self,
        *,
        now: datetime,
        inbound_text: str,
        state: State,
        profile: Profile,
        replies: Sequence[OutgoingReply],
    ) -> list[int]:
        """Write everything this message changed; returns the outbox ids."""
        if self._optimistic_engine is not None:
            return await self._save_if_unchanged(now, inbound_text, state, profile, replies)
        changes = profile.changes_from(self.profile)
        if changes:
            await self._conn.execute(
                update(Contact).where(Contact.id == self.contact_id).values(**changes)
            )
        await self._conn.execute(_UPDATE_STATE, {
            "b_contact_id": self.contact_id, "b_flow": state.flow, "b_step": state.step,
            "b_data": state.data, "b_now": now,
        })
        log = [
            {"contact_id": self.contact_id, "direction": "in", "dedupe_key": self._dedupe_key,
             "body_enc": self._vault.encrypt(inbound_text), "created_at": now}
        ] + [
            {"contact_id": self.contact_id, "direction": "out", "dedupe_key": None,
             "body_enc": self._vault.encrypt(r.text), "created_at": now}
            for r in replies
        ]
        await self._conn.execute(_INSERT_MESSAGE, log)
        return await self._enqueue(self._conn, replies, now, contact_id=self.contact_id)

    async def _save_if_unchanged(
        self, now: datetime, inbound_text: str, state: State, profile: Profile,
        replies: Sequence[OutgoingReply],
    ) -> list[int]:
        row = (await self._conn.execute(_SAVE_IF_UNCHANGED, {
            "contact_id": self.contact_id, "version": self.state.version,
            "flow": state.flow, "step": state.step, "data": json.dumps(state.data),
            "now": now, "profile_changed": bool(profile.changes_from(self.profile)),
            "locale": profile.locale, "country": profile.country, "status": profile.status,
            "safe_to_text": profile.safe_to_text,
            "directions": ["in"] + ["out"] * len(replies),
            "dedupe_keys": [self._dedupe_key] + [None] * len(replies),
            "bodies": [self._vault.encrypt(t) for t in [inbound_text, *(r.text for r in replies)]],
            "channel": self._address.channel, "address_hash": self.address_hash,
            "address_enc": self._vault.encrypt(self._address.address),
            "payloads": [self._payload(r) for r in replies], "priority": PRIORITY_REPLY,
        })).one()
        if not row.applied:
            raise Conflict
        return list(row.outbox_ids or [])

    async def erase(self, *, now: datetime, farewell: Sequence[OutgoingReply]) -> list[int]:
        """Delete everything about this contact; only the farewell remains, to be deleted as
        soon as it is delivered."""
        if self._optimistic_engine is None:
            return await self._erase_on(self._conn, now, farewell)
        async with self._optimistic_engine.begin() as conn:
            version = (await conn.execute(
                select(Conversation.version)
                .where(Conversation.contact_id == self.contact_id)
                .with_for_update()
            )).scalar()
            if version != self.state.version:
                raise Conflict
            return await self._erase_on(conn, now, farewell)

    async def _erase_on(
        self, conn: AsyncConnection, now: datetime, farewell: Sequence[OutgoingReply]
    ) -> list[int]:
        await conn.execute(delete(OutboxItem).where(OutboxItem.contact_id == self.contact_id))
        # Conversation and messages go by ON DELETE CASCADE.
        await conn.execute(delete(Contact).where(Contact.id == self.contact_id))
        return await self._enqueue(conn, farewell, now, contact_id=None, erase_after_send=True)

    def _payload(self, reply: OutgoingReply) -> bytes:
        return self._vault.encrypt(json.dumps(reply.to_json(), ensure_ascii=False))

    async def _enqueue(
        self,
        conn: AsyncConnection,
        replies: Sequence[OutgoingReply],
        now: datetime,
        *,
        contact_id: int | None,
        erase_after_send: bool = False,
    ) -> list[int]:
        if not replies:
            return []
        address_enc = self._vault.encrypt(self._address.address)
        rows = [
            {
                "contact_id": contact_id,
                "channel": self._address.channel,
                "address_hash": self.address_hash,
                "address_enc": address_enc,
                "payload_enc": self._payload(r),
                "priority": PRIORITY_REPLY,
                "status": "queued",
                "attempts": 0,
                "erase_after_send": erase_after_send,
                "created_at": now,
                "next_attempt_at": now,
            }
            for r in replies
        ]
        result = await conn.execute(_INSERT_OUTBOX, rows)
        return sorted(result.scalars().all())


class Turns:
    """Runs turns. The caller serialises turns of one contact within a process (in arrival
    order); across processes the version check (PostgreSQL) or the write lock (SQLite) keeps
    every turn working on the state the previous one left."""

    def __init__(self, engine: AsyncEngine, vault: Vault) -> None:
        self._engine = engine
        self._vault = vault

    def address_hash(self, channel: str, address: str) -> bytes:
        return self._vault.keyed_hash(channel, address)

    async def run(self, channel: str, address: str, message_id: str | None, now: datetime,
                  body: Callable[[Turn], Awaitable[T]]) -> T | None:
        """Load the turn and `await body(turn)`, whose writes are atomic; None, with nothing
        written, if the message was processed before."""
        address = Address(channel, address)
        address_hash = self._vault.keyed_hash(channel, address.address)
        dedupe_key = (
            self._vault.keyed_hash(channel, address.address, message_id) if message_id else None
        )
        if self._engine.dialect.name == "postgresql":
            async with self._engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                turn = Turn(conn, self._vault, address, address_hash, dedupe_key,
                            optimistic_engine=self._engine)
                await turn._load(now)
                if turn.duplicate:
                    return None
                try:
                    return await body(turn)
                except Conflict:
                    pass  # another process changed this conversation meanwhile
                except IntegrityError as exc:
                    # Another process recorded the same message id meanwhile; the locked read
                    # below sees it and answers "duplicate".
                    if "dedupe_key" not in str(exc.orig):
                        raise
        # SQLite always, PostgreSQL after a lost race: lock the contact, so this turn cannot
        # lose again (a busy contact would otherwise starve one process's retries).
        async with self._engine.connect() as conn:
            async with conn.begin():
                turn = Turn(conn, self._vault, address, address_hash, dedupe_key)
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
    .where(Conversation.contact_id == bindparam("b_contact_id"))
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
_INSERT_OUTBOX = insert(OutboxItem).returning(OutboxItem.id, sort_by_parameter_order=True)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for what we stored as UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value
