"""The schema. Bodies and addresses are stored only encrypted (see storage.crypto)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants BIGINT for large tables.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Contact(Base):
    """A person reaching us on one channel. `address_hash` is the keyed hash of
    (channel, address); the address itself is kept only encrypted, for replies."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    address_enc: Mapped[bytes] = mapped_column(LargeBinary)
    locale: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(16), default="active")
    safe_to_text: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Conversation(Base):
    """Where a contact is in which flow: plain data, so any process can continue it."""

    __tablename__ = "conversations"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    flow: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """The message log, both directions. An inbound row carries `dedupe_key`, the keyed hash of
    (channel, address, channel message id): the unique index is what makes a redelivered
    message a no-op."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    dedupe_key: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    body_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RateLimit(Base):
    """The shared send schedule of one rate-limit scope (the bot, a chat, an SMS sender): the
    earliest time, in seconds since the epoch, at which the next send may go out."""

    __tablename__ = "rate_limits"

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float)
    # On a pause row ("pause:<scope>", whose next_at is when it ends): how long it is. Every
    # worker moves its planned sends back by this same length, however late it hears of it, so
    # the sends of all workers keep their spacing.
    paused_for: Mapped[float | None] = mapped_column(Float)


class OutboxItem(Base):
    """A reply waiting to be delivered, or its delivery record. The payload is channel-neutral
    (text, options, direction) and rendered for the channel by the sender."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "priority", "next_attempt_at", "id"),
        Index("ix_outbox_recipient", "address_hash", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # NULL once the contact erased their data: the last confirmation still goes out.
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    address_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    address_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    payload_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Lower goes first: 0 replies to people, 10 bulk (health messages).
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    erase_after_send: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(200))
    # The provider's id for the sent message (Telegram message id, Twilio SID): status
    # callbacks find the row by it.
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Times a lease ran out while the row was being sent (a worker died mid-send): each is a
    # message that may have reached the person twice.
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the provider reported after accepting it (Twilio's status callbacks): queued, sent,
    # delivered, undelivered or failed. It only moves forward, whatever order reports arrive in.
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    # Parts of a reply too long for one message (Telegram 4,096 characters, Twilio 1,600) that
    # the provider accepted: a retry sends only the rest, so nobody gets a part twice.
    parts_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Who holds the lease while status is "sending" (a random token per claim): only its holder
    # may settle the row, so a sender whose lease ran out cannot overwrite what the next
    # holder did. `next_attempt_at` is when the lease runs out.
    claim_token: Mapped[str | None] = mapped_column(String(32))


class ErasedKey(Base):
    """The de-duplication keys of an erased person's last messages, kept only for the window in
    which a provider may still redeliver them: without it a redelivered "yes, delete" would
    create the person again. A key is a keyed hash and names nobody; it expires."""

    __tablename__ = "erased_keys"

    dedupe_key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class DirectoryOrganization(Base):
    """An organisation of the directory (storage.directory): its whole Open Referral HSDS 3.0
    record, full, nested and normalised (storage.hsds), kept as JSON so that what we do not
    query still survives an export. Organisations, not people: nothing here is personal."""

    __tablename__ = "directory_organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the HSDS id, a UUID
    name: Mapped[str] = mapped_column(Text)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    # sha256 of the record (and of the code's format version): an import that would write the
    # same is "unchanged" without comparing records.
    digest: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DirectoryService(Base):
    """A service of a directory organisation, as the bot lists it: derived from the record on
    every import, never edited by itself."""

    __tablename__ = "directory_services"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("directory_organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean)
    open_24_7: Mapped[bool] = mapped_column(Boolean)
    # {"country": [regions, or none for all of it]}
    areas: Mapped[dict[str, Any]] = mapped_column(JSON)
    listing: Mapped[dict[str, Any]] = mapped_column(JSON)


class DirectoryCoverage(Base):
    """The index the bot's question "who takes this kind of case in this country" reads: one
    row per service, country it serves and kind of case it takes."""

    __tablename__ = "directory_coverage"

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("directory_services.id", ondelete="CASCADE"), primary_key=True, index=True
    )
