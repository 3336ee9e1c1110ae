"""Delivery records for the outbox. The engine writes rows inside its turn (storage.turns);
channels claim and settle them here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, update
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.crypto import Vault
from storage.models import OutboxItem
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
