"""Migration 0006 re-encrypts what earlier releases stored (no associated data) so that every
ciphertext is bound to its column and owner, and refuses to run without the key when there is
something to re-encrypt."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.crypto import Vault, _legacy_encrypt_v1, bound
from storage.db import create_engine
from storage.migrate import upgrade

KEY = bytes(range(32))


def test_stored_ciphertexts_are_bound_by_the_migration(tmp_path: Path) -> None:
    # Alembic runs its own event loop, so this test is synchronous around it.
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0005")
    vault = Vault(KEY)
    address_hash = vault.keyed_hash("sms", "+77011234567")
    asyncio.run(store_the_old_way(url, vault, address_hash))
    with pytest.raises(RuntimeError, match="needs the key"):
        upgrade(url)
    upgrade(url, master_key=KEY)
    contact, body, address, payload = asyncio.run(read(url))
    assert vault.decrypt(contact, bound("contacts.address_enc", address_hash)) == "+77011234567"
    assert vault.decrypt(body, bound("messages.body_enc", 1)) == "my passport"
    assert vault.decrypt(address, bound("outbox.address_enc", address_hash)) == "+77011234567"
    assert json.loads(vault.decrypt(payload, bound("outbox.payload_enc", address_hash))) == {
        "text": "hello"}


async def store_the_old_way(url: str, vault: Vault, address_hash: bytes) -> None:
    now = datetime.now(UTC)
    old = lambda value: _legacy_encrypt_v1(vault, value)  # noqa: E731
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO contacts (id, channel, address_hash, address_enc, status, created_at) "
            "VALUES (1, 'sms', :h, :a, 'active', :now)"),
            {"h": address_hash, "a": old("+77011234567"), "now": now})
        await conn.execute(text(
            "INSERT INTO messages (contact_id, direction, body_enc, created_at) "
            "VALUES (1, 'in', :b, :now)"), {"b": old("my passport"), "now": now})
        await conn.execute(text(
            "INSERT INTO outbox (contact_id, channel, address_hash, address_enc, payload_enc, "
            "priority, status, attempts, erase_after_send, created_at, next_attempt_at) VALUES "
            "(1, 'sms', :h, :a, :p, 0, 'queued', 0, 0, :now, :now)"),
            {"h": address_hash, "a": old("+77011234567"),
             "p": old(json.dumps({"text": "hello"})), "now": now})
    await engine.dispose()


async def read(url: str) -> tuple[bytes, bytes, bytes, bytes]:
    engine = create_engine(url)
    async with engine.connect() as conn:
        contact = (await conn.execute(text("SELECT address_enc FROM contacts"))).scalar_one()
        body = (await conn.execute(text("SELECT body_enc FROM messages"))).scalar_one()
        address, payload = (await conn.execute(
            text("SELECT address_enc, payload_enc FROM outbox"))).one()
    await engine.dispose()
    return contact, body, address, payload
