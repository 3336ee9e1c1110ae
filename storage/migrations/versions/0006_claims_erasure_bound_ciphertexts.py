"""outbox claim tokens, pause lengths, erased de-duplication keys, ciphertexts bound to rows

Every stored ciphertext is re-encrypted with associated data naming its column and owner
(storage.crypto.bound), so that it can no longer be pasted into another row. That needs the
master key: `hotline db upgrade` passes it; a database with nothing encrypted needs none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""
from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import context, op

from storage.crypto import Vault, bound

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
    with op.batch_alter_table("rate_limits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_for", sa.Float(), nullable=True))
    op.create_table(
        "erased_keys",
        sa.Column("dedupe_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dedupe_key", name=op.f("pk_erased_keys")),
    )
    op.create_index(op.f("ix_erased_keys_expires_at"), "erased_keys", ["expires_at"])
    _rebind_ciphertexts(transform=_to_v2)


def downgrade() -> None:
    _rebind_ciphertexts(transform=_to_v1)
    op.drop_index(op.f("ix_erased_keys_expires_at"), table_name="erased_keys")
    op.drop_table("erased_keys")
    with op.batch_alter_table("rate_limits", schema=None) as batch_op:
        batch_op.drop_column("paused_for")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claim_token")


Transform = Callable[[Vault, bytes, bytes], bytes]


def _to_v2(vault: Vault, blob: bytes, context_: bytes) -> bytes:
    return vault.encrypt(vault.decrypt_v1(blob), context_) if blob[:1] == b"\x01" else blob


def _to_v1(vault: Vault, blob: bytes, context_: bytes) -> bytes:
    from storage.crypto import _legacy_encrypt_v1

    return _legacy_encrypt_v1(vault, vault.decrypt(blob, context_)) if blob[:1] == b"\x02" \
        else blob


def _rebind_ciphertexts(transform: Transform) -> None:
    bind = op.get_bind()
    tables = {
        # table: (id column, [(column, owner column)])
        "contacts": ("id", [("address_enc", "address_hash")]),
        "outbox": ("id", [("address_enc", "address_hash"), ("payload_enc", "address_hash")]),
        "messages": ("id", [("body_enc", "contact_id")]),
    }
    if not any(bind.execute(sa.text(f"SELECT 1 FROM {t} LIMIT 1")).first() for t in tables):
        return  # nothing stored: no key needed
    key = context.config.attributes.get("master_key")
    if key is None:
        raise RuntimeError("migration 0006 re-encrypts stored data and needs the key: run "
                           "`hotline db upgrade` with HOTLINE_SECRET_KEY (or the data folder's "
                           "secret.key) available")
    vault = Vault(key)
    for table, (id_column, columns) in tables.items():
        names = [id_column] + [c for pair in columns for c in pair]
        last = None
        while True:
            query = f"SELECT {', '.join(names)} FROM {table}"
            query += f" WHERE {id_column} > :last" if last is not None else ""
            query += f" ORDER BY {id_column} LIMIT {_BATCH}"
            rows = bind.execute(sa.text(query), {"last": last}).mappings().all()
            if not rows:
                break
            updates = []
            for row in rows:
                values = {"row_id": row[id_column]}
                for column, owner in columns:
                    blob = row[column]
                    if blob is not None:
                        values[column] = transform(vault, bytes(blob),
                                                   bound(f"{table}.{column}", row[owner]))
                    else:
                        values[column] = None
                updates.append(values)
            assignments = ", ".join(f"{column} = :{column}" for column, _ in columns)
            bind.execute(sa.text(f"UPDATE {table} SET {assignments} WHERE {id_column} = :row_id"),
                         updates)
            last = rows[-1][id_column]
