"""Delivery records for the outbox. The engine writes rows inside its turn (storage.turns);
channels claim and settle them here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.crypto import Vault
from storage.models import Contact, OutboxItem
from storage.ratelimits import SharedSchedule
from storage.records import OutgoingReply


@dataclass(frozen=True)
class Delivery:
    id: int
    reply: OutgoingReply


class Outbox:
    def __init__(self, engine: AsyncEngine, vault: Vault) -> None:
        self._engine = engine
        self._vault = vault

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
            Delivery(r.id, OutgoingReply.from_json(json.loads(self._vault.decrypt(r.payload_enc))))
            for r in rows
            if r.payload_enc is not None
        ]


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


@dataclass(frozen=True)
class Settlement:
    """What happened to a claimed row: sent, to be retried at `retry_at`, or failed."""

    id: int
    status: str  # "sent" | "queued" (retry) | "failed"
    provider_id: str | None = None
    retry_at: datetime | None = None
    error: str | None = None
    erase: bool = False  # an erased contact's farewell: delete the row once sent
    not_tried: bool = False  # held back unsent (behind a failed message): no attempt spent
    parts_sent: int = 0  # of a long reply, accepted so far (a retry sends the rest)


class Sender:
    """The outbox as the sender sees it: lease due rows, settle them. Any number of processes
    may do this at once: PostgreSQL hands each row to one of them (FOR UPDATE SKIP LOCKED),
    SQLite's write lock does the same."""

    def __init__(self, engine: AsyncEngine, vault: Vault) -> None:
        self._engine = engine
        self._vault = vault

    async def claim(
        self, channels: Sequence[str], now: datetime, limit: int, lease: timedelta
    ) -> list[Claimed]:
        """Lease up to `limit` due rows, replies to people before bulk, oldest first. A row
        whose lease ran out (its sender died mid-send) is due again and counted as a resend."""
        due = (
            select(OutboxItem.id)
            .where(
                OutboxItem.status.in_(("queued", "sending")),
                OutboxItem.next_attempt_at <= now,
                OutboxItem.channel.in_(channels),
            )
            .order_by(OutboxItem.priority, OutboxItem.next_attempt_at, OutboxItem.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(OutboxItem)
            .where(OutboxItem.id.in_(due.scalar_subquery()))
            .values(
                status="sending",
                attempts=OutboxItem.attempts + 1,
                next_attempt_at=now + lease,
                resends=OutboxItem.resends
                + case((OutboxItem.status == "sending", 1), else_=0),
            )
            .returning(
                OutboxItem.id, OutboxItem.channel, OutboxItem.address_enc,
                OutboxItem.address_hash, OutboxItem.contact_id, OutboxItem.payload_enc,
                OutboxItem.attempts, OutboxItem.erase_after_send, OutboxItem.parts_sent,
            )
        )
        async with self._engine.begin() as conn:
            rows = (await conn.execute(claim)).all()
        claimed = [
            Claimed(
                id=r.id, channel=r.channel, address=self._vault.decrypt(r.address_enc),
                address_hash=r.address_hash, contact_id=r.contact_id,
                reply=OutgoingReply.from_json(json.loads(self._vault.decrypt(r.payload_enc))),
                attempts=r.attempts, erase_after_send=r.erase_after_send,
                parts_sent=r.parts_sent,
            )
            for r in rows
            if r.address_enc is not None and r.payload_enc is not None
        ]
        return sorted(claimed, key=lambda c: c.id)

    async def settle(self, settlements: Sequence[Settlement], now: datetime) -> None:
        """Record every outcome of a batch in one transaction (one statement per kind)."""
        if not settlements:
            return
        erased = [s.id for s in settlements if s.erase and s.status == "sent"]
        rows = [
            {"b_id": s.id, "b_status": s.status, "b_provider_id": s.provider_id,
             "b_sent_at": now if s.status == "sent" else None,
             "b_next": s.retry_at or now, "b_error": (s.error or "")[:200] or None,
             "b_refund": 1 if s.not_tried else 0, "b_parts": s.parts_sent}
            for s in settlements
            if s.id not in erased
        ]
        async with self._engine.begin() as conn:
            if rows:
                # Only a row still leased by us: a status callback may already have moved it on.
                await conn.execute(_SETTLE, rows)
            if erased:
                await conn.execute(delete(OutboxItem).where(OutboxItem.id.in_(erased)))

    def shared_schedule(self) -> SharedSchedule:
        """The rate-limit schedule that every sender on this database shares."""
        return SharedSchedule(self._engine)

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


# Twilio's message states in the order they happen; a report never moves a message back.
DELIVERY_ORDER = {"accepted": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4,
                  "read": 5, "undelivered": 4, "failed": 4}

_SETTLE = (
    update(OutboxItem)
    .where(OutboxItem.id == bindparam("b_id"), OutboxItem.status == "sending")
    .values(
        status=bindparam("b_status"),
        provider_id=bindparam("b_provider_id"),
        sent_at=bindparam("b_sent_at"),
        next_attempt_at=bindparam("b_next"),
        last_error=bindparam("b_error"),
        attempts=OutboxItem.attempts - bindparam("b_refund"),
        parts_sent=bindparam("b_parts"),
    )
)

