"""One inbound message, one transaction: lock the contact, check the dedupe key, then write the
new state, the message log and the outbox together.

Round trips on the usual path (a known contact): BEGIN, one SELECT that locks the contact and
answers "seen this message id before?", the writes, COMMIT.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.crypto import Vault
from storage.models import Contact, Conversation, Message, OutboxItem
from storage.records import OutgoingReply, Profile, State

PRIORITY_REPLY = 0
PRIORITY_BULK = 10


@dataclass(frozen=True)
class Address:
    channel: str
    address: str


class Turn:
    """The open transaction for one inbound message. Use through `Turns.open`."""

    def __init__(
        self,
        conn: AsyncConnection,
        vault: Vault,
        address: Address,
        address_hash: bytes,
        dedupe_key: bytes | None,
    ) -> None:
        self._conn = conn
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
        return (await self._conn.execute(_SELECT_LOCKED, params)).first()

    async def _create(self, now: datetime) -> None:
        dialect = self._conn.dialect.name
        ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Contact)
        stmt = (
            ins.values(
                channel=self._address.channel,
                address_hash=self.address_hash,
                address_enc=self._vault.encrypt(self._address.address),
                status="active",
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[Contact.address_hash])
            .returning(Contact.id)
        )
        contact_id = (await self._conn.execute(stmt)).scalar()
        if contact_id is None:
            return  # created by a concurrent turn; the caller selects it (and waits its lock)
        self.is_new = True
        await self._conn.execute(
            insert(Conversation).values(
                contact_id=contact_id, flow=None, step=None, data={}, version=0, updated_at=now
            )
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
        return await self._enqueue(replies, now, contact_id=self.contact_id)

    async def erase(self, *, now: datetime, farewell: Sequence[OutgoingReply]) -> list[int]:
        """Delete everything about this contact; only the farewell remains, to be deleted as
        soon as it is delivered."""
        await self._conn.execute(delete(OutboxItem).where(OutboxItem.contact_id == self.contact_id))
        # Conversation and messages go by ON DELETE CASCADE.
        await self._conn.execute(delete(Contact).where(Contact.id == self.contact_id))
        return await self._enqueue(farewell, now, contact_id=None, erase_after_send=True)

    async def _enqueue(
        self,
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
                "payload_enc": self._vault.encrypt(json.dumps(r.to_json(), ensure_ascii=False)),
                "priority": PRIORITY_REPLY,
                "status": "queued",
                "attempts": 0,
                "erase_after_send": erase_after_send,
                "created_at": now,
                "next_attempt_at": now,
            }
            for r in replies
        ]
        result = await self._conn.execute(_INSERT_OUTBOX, rows)
        return sorted(result.scalars().all())


class Turns:
    """Opens turns. The caller serialises turns of one contact within a process; the row lock
    (PostgreSQL) or the write lock (SQLite) serialises them across processes."""

    def __init__(self, engine: AsyncEngine, vault: Vault) -> None:
        self._engine = engine
        self._vault = vault

    def address_hash(self, channel: str, address: str) -> bytes:
        return self._vault.keyed_hash(channel, address)

    async def run(self, channel: str, address: str, message_id: str | None, now: datetime,
                  body: Any) -> Any:
        """Open a turn, call `await body(turn)` inside its transaction and commit, unless the
        message is a duplicate, in which case nothing is written."""
        address_hash = self._vault.keyed_hash(channel, address)
        dedupe_key = (
            self._vault.keyed_hash(channel, address, message_id) if message_id else None
        )
        async with self._engine.connect() as conn:
            async with conn.begin():
                turn = Turn(conn, self._vault, Address(channel, address), address_hash,
                            dedupe_key)
                await turn._load(now)
                if turn.duplicate:
                    return None
                return await body(turn)


# Built once: constructing statements costs more than running them on a warm connection.
# A NULL dedupe key (a message without a channel id) matches no row, so `seen` is false.
_SELECT_LOCKED = (
    select(
        Contact.id, Contact.locale, Contact.country, Contact.status, Contact.safe_to_text,
        Conversation.flow, Conversation.step, Conversation.data, Conversation.version,
        Conversation.updated_at,
        exists().where(Message.dedupe_key == bindparam("b_dedupe_key")).label("seen"),
    )
    .join(Conversation, Conversation.contact_id == Contact.id)
    .where(Contact.address_hash == bindparam("b_address_hash"))
    .with_for_update(of=Contact)  # SQLite: BEGIN IMMEDIATE already serialises writers
)
_UPDATE_STATE = (
    update(Conversation)
    .where(Conversation.contact_id == bindparam("b_contact_id"))
    .values(flow=bindparam("b_flow"), step=bindparam("b_step"), data=bindparam("b_data",
            type_=Conversation.data.type), version=Conversation.version + 1,
            updated_at=bindparam("b_now"))
)
_INSERT_MESSAGE = insert(Message)
_INSERT_OUTBOX = insert(OutboxItem).returning(OutboxItem.id, sort_by_parameter_order=True)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for what we stored as UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value
