"""Encryption at rest for message bodies and contact addresses.

One master key (32 random bytes) is stretched with HKDF into two independent keys: one for
AES-GCM encryption, one for the keyed hash (HMAC-SHA256) that lets us find a contact by its
address without storing the address in a searchable form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# The first byte of every ciphertext names the format, so a later key rotation can tell old
# rows from new ones without a schema change. Version 1 had no associated data; migration 0006
# re-encrypted every stored value as version 2, and only the migration still reads version 1.
_FORMAT_V1 = b"\x01"
_FORMAT_V2 = b"\x02"
_NONCE_BYTES = 12


class KeyError_(ValueError):
    """The configured key is not usable."""


def new_master_key() -> str:
    """A fresh master key in the form the settings expect (URL-safe base64 of 32 bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def parse_master_key(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise KeyError_("the key is not URL-safe base64") from exc
    if len(raw) != 32:
        raise KeyError_(f"the key must decode to 32 bytes, not {len(raw)}")
    return raw


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


class Vault:
    """Encrypts, decrypts and hashes with keys derived from one master key."""

    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(_derive(master_key, b"hotline/encrypt/v1"))
        self._hash_key = _derive(master_key, b"hotline/address-hash/v1")

    def encrypt(self, plaintext: str, bound_to: bytes) -> bytes:
        """Encrypt for one place: `bound_to` (see `bound`) is authenticated with the text, so
        the ciphertext cannot be moved to another column or another person's row."""
        nonce = os.urandom(_NONCE_BYTES)
        data = plaintext.encode("utf-8", errors="surrogatepass")
        return _FORMAT_V2 + nonce + self._aead.encrypt(nonce, data, bound_to)

    def decrypt(self, blob: bytes, bound_to: bytes) -> str:
        if blob[:1] != _FORMAT_V2:
            raise ValueError("unknown ciphertext format")
        nonce = blob[1 : 1 + _NONCE_BYTES]
        data = self._aead.decrypt(nonce, blob[1 + _NONCE_BYTES :], bound_to)
        return data.decode("utf-8", errors="surrogatepass")

    def decrypt_v1(self, blob: bytes) -> str:
        """Read a value stored before associated data (migration 0006 only)."""
        if blob[:1] != _FORMAT_V1:
            raise ValueError("not a version 1 ciphertext")
        nonce = blob[1 : 1 + _NONCE_BYTES]
        data = self._aead.decrypt(nonce, blob[1 + _NONCE_BYTES :], None)
        return data.decode("utf-8", errors="surrogatepass")

    def keyed_hash(self, *parts: str) -> bytes:
        """A stable 32-byte look-up key for e.g. (channel, address); parts are length-prefixed
        so that ("ab", "c") and ("a", "bc") never collide."""
        mac = hmac.new(self._hash_key, digestmod=hashlib.sha256)
        for part in parts:
            data = part.encode("utf-8", errors="surrogatepass")
            mac.update(len(data).to_bytes(4, "big"))
            mac.update(data)
        return mac.digest()


def bound(column: str, owner: bytes | int) -> bytes:
    """Associated data for a ciphertext stored in `column` ("table.column") of the row that
    belongs to `owner`: the address hash for contact and outbox rows, the contact id for the
    message log. Row ids are not used because outbox and log rows get theirs only on insert."""
    owner_bytes = owner if isinstance(owner, bytes) else str(owner).encode("ascii")
    return column.encode("ascii") + b"\x00" + owner_bytes


def _legacy_encrypt_v1(vault: Vault, plaintext: str) -> bytes:
    """Version 1 (no associated data): only for downgrading migration 0006."""
    nonce = os.urandom(_NONCE_BYTES)
    data = plaintext.encode("utf-8", errors="surrogatepass")
    return _FORMAT_V1 + nonce + vault._aead.encrypt(nonce, data, None)
