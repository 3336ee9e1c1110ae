"""The outbox: replies and bulk messages waiting to be sent, and their delivery records.

The engine writes rows inside its turn (storage.turns); `enqueue` writes them outside a turn
(bulk messages, a group's one-off answer). Senders lease due rows and settle them here:

- A row is leased to one claim (`claim_token`) until `next_attempt_at`; only the holder of that
  token can settle it, so a sender whose lease ran out cannot overwrite the next holder's work.
- One person's rows go one at a time, in order: a row is claimable only while no earlier row of
  the same recipient is queued, waiting to retry or being sent (replies rank before bulk, so a
  failing bulk message never holds a reply back), and no row of theirs is being sent elsewhere.
- A row that cannot be decrypted or read fails alone, with its reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased
from sqlalchemy.sql import ColumnElement, Select

from storage.crypto import Vault, bound
from storage.erasure import Person, erases, purge_expired_keys
from storage.models import Contact, OutboxItem, RateLimit
from storage.ratelimits import SharedSchedule, purge_stale, recipient_scopes
from storage.records import OutgoingReply

PRIORITY_REPLY = 0
PRIORITY_BULK = 10


def address_blob(vault: Vault, address_hash: bytes, address: str) -> bytes:
    return vault.encrypt(address, bound("outbox.address_enc", address_hash))


def payload_blob(vault: Vault, address_hash: bytes, reply: OutgoingReply) -> bytes:
    return vault.encrypt(json.dumps(reply.to_json(), ensure_ascii=False),
                         bound("outbox.payload_enc", address_hash))


def read_payload(vault: Vault, address_hash: bytes, blob: bytes) -> OutgoingReply:
    return OutgoingReply.from_json(
        json.loads(vault.decrypt(blob, bound("outbox.payload_enc", address_hash))))


def outbox_rows(vault: Vault, *, channel: str, address: str, address_hash: bytes,
                replies: Sequence[OutgoingReply], now: datetime, priority: int,
                contact_id: int | None, erase_after_send: bool = False) -> list[dict[str, object]]:
    """Rows for `replies` to one recipient, due now, in the order given."""
    address_enc = address_blob(vault, address_hash, address)
    return [
        {
            "contact_id": contact_id, "channel": channel, "address_hash": address_hash,
            "address_enc": address_enc, "payload_enc": payload_blob(vault, address_hash, r),
            "priority": priority, "status": "queued", "attempts": 0,
            "erase_after_send": erase_after_send, "created_at": now, "next_attempt_at": now,
        }
        for r in replies
    ]


_INSERT = insert(OutboxItem).returning(OutboxItem.id, sort_by_parameter_order=True)


async def insert_rows(conn: AsyncConnection, rows: list[dict[str, object]]) -> list[int]:
    if not rows:
        return []
    return sorted((await conn.execute(_INSERT, rows)).scalars().all())


@erases("outbox")
async def _erase_outbox(conn: AsyncConnection, person: Person) -> None:
    # Rows still being sent go too: their sender checks the row is still its own just before
    # it sends, so a reply claimed before the erase does not follow the farewell.
    await conn.execute(delete(OutboxItem).where(or_(
        OutboxItem.contact_id == person.contact_id,
        and_(OutboxItem.channel == person.channel,
             OutboxItem.address_hash == person.address_hash),
    )))


@dataclass(frozen=True)
class Delivery:
    id: int
    reply: OutgoingReply


class Outbox:
    def __init__(self, engine: AsyncEngine, vault: Vault) -> None:
        self._engine = engine
        self._vault = vault

    async def enqueue(self, channel: str, address: str, replies: Sequence[OutgoingReply],
                      now: datetime, *, priority: int = PRIORITY_BULK,
                      erase_after_send: bool = False) -> list[int]:
        """Queue messages to an address outside a conversation's turn. With
        `erase_after_send` the row (and the address in it) is deleted once sent or failed:
        for someone we must not keep (a group chat)."""
        address_hash = self._vault.keyed_hash(channel, address)
        rows = outbox_rows(self._vault, channel=channel, address=address,
                           address_hash=address_hash, replies=replies, now=now,
                           priority=priority, contact_id=None, erase_after_send=erase_after_send)
        async with self._engine.begin() as conn:
            if not erase_after_send:  # linked to the contact, so erasing them finds the rows
                contact_id = await _contact_id(conn, address_hash)
                rows = [{**row, "contact_id": contact_id} for row in rows]
            return await insert_rows(conn, rows)

    async def deliver_to_recipient(
        self, channel: str, address_hash: bytes, now: datetime
    ) -> list[Delivery]:
        """For channels that answer in the same exchange (the simulator): take every queued
        reply for one recipient, oldest first, and mark it sent, in one statement. Rows of an
        erased contact are then deleted."""
        async with self._engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = sorted(
                (await conn.execute(_CLAIM_FOR_RECIPIENT, {
                    "b_channel": channel, "b_address_hash": address_hash, "b_now": now,
                })).all(),
                key=lambda r: r.id,
            )
            erased = [r.id for r in rows if r.erase_after_send]
            if erased:
                await conn.execute(delete(OutboxItem).where(OutboxItem.id.in_(erased)))
        return [
            Delivery(r.id, read_payload(self._vault, address_hash, r.payload_enc))
            for r in rows
            if r.payload_enc is not None
        ]


async def _contact_id(conn: AsyncConnection, address_hash: bytes) -> int | None:
    return (await conn.execute(
        select(Contact.id).where(Contact.address_hash == address_hash))).scalar()


_CLAIM_FOR_RECIPIENT = (
    update(OutboxItem)
    .where(
        OutboxItem.channel == bindparam("b_channel"),
        OutboxItem.address_hash == bindparam("b_address_hash"),
        OutboxItem.status == "queued",
    )
    .values(status="sent", sent_at=bindparam("b_now"), attempts=OutboxItem.attempts + 1)
    .returning(OutboxItem.id, OutboxItem.payload_enc, OutboxItem.erase_after_send)
)


@dataclass(frozen=True)
class Claimed:
    """An outbox row leased to one sender."""

    id: int
    channel: str
    address: str
    address_hash: bytes
    contact_id: int | None
    reply: OutgoingReply
    attempts: int  # including this one
    erase_after_send: bool
    parts_sent: int = 0  # of a long reply, accepted by the provider in earlier attempts
    token: str = ""  # the claim that holds the lease
    taken_over: bool = False  # its previous lease ran out mid-send: it may reach them twice


@dataclass(frozen=True)
class Unreadable:
    """A claimed row that could not be decrypted or parsed: it fails alone."""

    id: int
    channel: str
    token: str
    reason: str


@dataclass
class Claim:
    rows: list[Claimed] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)


@dataclass(frozen=True)
class Settlement:
    """What happened to a claimed row: sent, to be retried at `retry_at`, failed, or released
    unsent (`not_tried`: no attempt spent)."""

    id: int
    token: str
    status: str  # "sent" | "queued" (retry or release) | "failed"
    provider_id: str | None = None
    retry_at: datetime | None = None
    error: str | None = None
    erase: bool = False  # a row we must not keep: delete it once sent or failed
    not_tried: bool = False
    # Of a long reply, accepted so far (a retry sends the rest); None leaves it as it was.
    parts_sent: int | None = None
    channel: str = ""
    address_hash: bytes = b""


class Sender:
    """The outbox as senders see it. Any number of processes may claim at once: PostgreSQL
    hands each row to one of them (FOR UPDATE SKIP LOCKED), SQLite's write lock does the same."""

    def __init__(self, engine: AsyncEngine, vault: Vault) -> None:
        self._engine = engine
        self._vault = vault

    async def claim(self, channels: Sequence[str], now: datetime, limit: int,
                    lease: timedelta, token: str) -> Claim:
        """Lease up to `limit` due rows under `token`, replies to people before bulk, oldest
        first, at most one row per recipient. A row whose lease ran out (its sender died
        mid-send) is due again and counted as a resend."""
        async with self._engine.begin() as conn:
            picked = (await conn.execute(_due(channels, now, limit))).all()
            if not picked:
                return Claim()
            rows = (await conn.execute(
                update(OutboxItem)
                .where(OutboxItem.id.in_([p.id for p in picked]))
                .values(status="sending", attempts=OutboxItem.attempts + 1,
                        next_attempt_at=now + lease, claim_token=token,
                        resends=OutboxItem.resends
                        + case((OutboxItem.status == "sending", 1), else_=0))
                .returning(
                    OutboxItem.id, OutboxItem.channel, OutboxItem.address_enc,
                    OutboxItem.address_hash, OutboxItem.contact_id, OutboxItem.payload_enc,
                    OutboxItem.attempts, OutboxItem.erase_after_send, OutboxItem.parts_sent,
                )
            )).all()
        taken_over = {p.id for p in picked if p.status == "sending"}
        claim = Claim()
        for r in sorted(rows, key=lambda r: r.id):
            try:
                if r.address_enc is None or r.payload_enc is None:
                    raise ValueError("nothing to send")
                claim.rows.append(Claimed(
                    id=r.id, channel=r.channel,
                    address=self._vault.decrypt(
                        r.address_enc, bound("outbox.address_enc", r.address_hash)),
                    address_hash=r.address_hash, contact_id=r.contact_id,
                    reply=read_payload(self._vault, r.address_hash, r.payload_enc),
                    attempts=r.attempts, erase_after_send=r.erase_after_send,
                    parts_sent=r.parts_sent, token=token, taken_over=r.id in taken_over,
                ))
            except Exception as exc:  # a wrong key, a payload from a newer release, damage
                claim.unreadable.append(Unreadable(
                    r.id, r.channel, token, f"unreadable: {type(exc).__name__}"))
        return claim

    async def renew(self, tokens: Collection[str], until: datetime) -> set[tuple[int, str]]:
        """Extend the lease of every row still held under `tokens`; returns (id, token) of
        those (a row missing was erased, or taken over after a lapse)."""
        if not tokens:
            return set()
        async with self._engine.begin() as conn:
            rows = await conn.execute(
                update(OutboxItem)
                .where(OutboxItem.status == "sending", OutboxItem.claim_token.in_(list(tokens)))
                .values(next_attempt_at=until)
                .returning(OutboxItem.id, OutboxItem.claim_token)
            )
            return {(r.id, r.claim_token) for r in rows}

    async def still_held(self, claims: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
        """Which of (id, token) this sender still holds: checked just before a send, so a row
        erased meanwhile is not sent."""
        pairs = list(claims)
        if not pairs:
            return set()
        async with self._engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = await conn.execute(
                select(OutboxItem.id, OutboxItem.claim_token)
                .where(tuple_(OutboxItem.id, OutboxItem.claim_token).in_(pairs),
                       OutboxItem.status == "sending")
            )
            return {(r.id, r.claim_token) for r in rows}

    async def settle(self, settlements: Sequence[Settlement], now: datetime) -> None:
        """Record outcomes in one transaction. Each applies only while its claim still holds
        the row: a status callback or a later holder may already have moved it on."""
        if not settlements:
            return
        gone = [s for s in settlements if s.erase and s.status in ("sent", "failed")]
        rows = [
            {"b_id": s.id, "b_token": s.token, "b_status": s.status,
             "b_provider_id": s.provider_id,
             "b_sent_at": now if s.status == "sent" else None,
             "b_next": s.retry_at or now, "b_error": (s.error or "")[:200] or None,
             "b_refund": 1 if s.not_tried else 0, "b_parts": s.parts_sent}
            for s in settlements
            if s not in gone
        ]
        async with self._engine.begin() as conn:
            if rows:
                await conn.execute(_SETTLE, rows)
            if gone:
                await conn.execute(_DELETE_HELD, [{"b_id": s.id, "b_token": s.token}
                                                  for s in gone])
                scopes = {scope for s in gone
                          for scope in recipient_scopes(s.channel, s.address_hash)}
                await conn.execute(delete(RateLimit).where(RateLimit.scope.in_(scopes)))

    def shared_schedule(self, clock: Callable[[], float] = time.time) -> SharedSchedule:
        """The rate-limit schedule that every sender on this database shares."""
        return SharedSchedule(self._engine, clock=clock)

    async def purge(self, now: datetime) -> None:
        """Housekeeping: rate-limit schedules long past, de-duplication keys of erased people
        past their window."""
        async with self._engine.begin() as conn:
            await purge_stale(conn, now.timestamp())
            await purge_expired_keys(conn, now)

    async def record_delivery(self, provider_id: str, status: str,
                              error_code: str | None) -> bool:
        """Apply a provider's delivery report; False if it is unknown or would move
        backwards."""
        rank = DELIVERY_ORDER.get(status)
        if rank is None:
            return False
        behind = [s for s, r in DELIVERY_ORDER.items() if r < rank]
        values: dict[str, object] = {"delivery_status": status}
        if status in ("undelivered", "failed"):
            values["last_error"] = f"{status}: error {error_code or 'unknown'}"
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(OutboxItem)
                .where(
                    OutboxItem.provider_id == provider_id,
                    OutboxItem.delivery_status.is_(None)
                    | OutboxItem.delivery_status.in_(behind),
                )
                .values(**values)
            )
        return bool(result.rowcount)

    async def mark_contact_stopped(self, contact_id: int) -> None:
        """The person blocked the bot or opted out at the provider: send them nothing more."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(Contact).where(Contact.id == contact_id).values(status="stopped")
            )
            await conn.execute(
                update(OutboxItem)
                .where(OutboxItem.contact_id == contact_id, OutboxItem.status == "queued")
                .values(status="failed", last_error="contact stopped")
            )

    async def stop_address(self, channel: str, address_hash: bytes) -> None:
        """Like mark_contact_stopped, for a provider event that names only the address."""
        async with self._engine.connect() as conn:
            contact_id = (await conn.execute(
                select(Contact.id).where(Contact.address_hash == address_hash,
                                         Contact.channel == channel)
            )).scalar()
        if contact_id is not None:
            await self.mark_contact_stopped(contact_id)


def _due(channels: Sequence[str], now: datetime, limit: int) -> Select[int, str]:
    row, other = OutboxItem, aliased(OutboxItem)
    pending = ("queued", "sending")

    def theirs(*condition: ColumnElement[bool]) -> ColumnElement[bool]:
        # Each test is a plain conjunction on the recipient index (address_hash, status, id),
        # so it is one index probe per candidate whatever the planner knows of the table.
        return exists().where(other.address_hash == row.address_hash,
                              other.channel == row.channel, *condition)

    held_back = or_(
        # Being sent by someone (a live lease): one message of a person in flight at once.
        theirs(other.status == "sending", other.next_attempt_at > now, other.id != row.id),
        # An earlier message of theirs still to go: replies before bulk, then oldest first.
        theirs(other.status.in_(pending), other.priority < row.priority),
        theirs(other.status.in_(pending), other.priority == row.priority, other.id < row.id),
    )
    return (
        select(row.id, row.status)
        .where(row.status.in_(pending), row.next_attempt_at <= now,
               row.channel.in_(channels), ~held_back)
        .order_by(row.priority, row.next_attempt_at, row.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=row)
    )


# Twilio's message states in the order they happen; a report never moves a message back.
DELIVERY_ORDER = {"accepted": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4,
                  "read": 5, "undelivered": 4, "failed": 4}

_HELD = and_(OutboxItem.id == bindparam("b_id"), OutboxItem.claim_token == bindparam("b_token"),
             OutboxItem.status == "sending")
_SETTLE = (
    update(OutboxItem)
    .where(_HELD)
    .values(
        status=bindparam("b_status"),
        provider_id=bindparam("b_provider_id"),
        sent_at=bindparam("b_sent_at"),
        next_attempt_at=bindparam("b_next"),
        last_error=bindparam("b_error"),
        attempts=OutboxItem.attempts - bindparam("b_refund"),
        parts_sent=func.coalesce(bindparam("b_parts", type_=Integer), OutboxItem.parts_sent),
        claim_token=None,
    )
)
_DELETE_HELD = delete(OutboxItem).where(_HELD)
