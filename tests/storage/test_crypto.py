import pytest
from cryptography.exceptions import InvalidTag

from storage.crypto import KeyError_, Vault, bound, new_master_key, parse_master_key

HERE = bound("outbox.payload_enc", b"hash-of-a")


def test_encrypt_round_trip_and_no_plaintext() -> None:
    vault = Vault(parse_master_key(new_master_key()))
    blob = vault.encrypt("Мой паспорт забрали 🙁", HERE)
    assert "паспорт".encode() not in blob
    assert vault.decrypt(blob, HERE) == "Мой паспорт забрали 🙁"
    assert vault.encrypt("same", HERE) != vault.encrypt("same", HERE)  # a fresh nonce each time


def test_tampering_and_a_wrong_key_are_detected() -> None:
    vault = Vault(bytes(32))
    blob = bytearray(vault.encrypt("hello", HERE))
    blob[-1] ^= 1
    with pytest.raises(InvalidTag):
        vault.decrypt(bytes(blob), HERE)
    with pytest.raises(InvalidTag):
        Vault(bytes([1] * 32)).decrypt(vault.encrypt("hello", HERE), HERE)


def test_a_ciphertext_cannot_be_moved_to_another_row_or_column() -> None:
    vault = Vault(bytes(32))
    blob = vault.encrypt("+77011234567", bound("outbox.address_enc", b"hash-of-a"))
    with pytest.raises(InvalidTag):  # pasted into another person's row
        vault.decrypt(blob, bound("outbox.address_enc", b"hash-of-b"))
    with pytest.raises(InvalidTag):  # or into another column of the same row
        vault.decrypt(blob, bound("outbox.payload_enc", b"hash-of-a"))
    with pytest.raises(InvalidTag):  # the message log binds to the contact id
        vault.decrypt(vault.encrypt("hi", bound("messages.body_enc", 1)),
                      bound("messages.body_enc", 2))


def test_keyed_hash_is_stable_keyed_and_unambiguous() -> None:
    a, b = Vault(bytes(32)), Vault(bytes([1] * 32))
    assert a.keyed_hash("sms", "+77011234567") == a.keyed_hash("sms", "+77011234567")
    assert a.keyed_hash("sms", "+77011234567") != b.keyed_hash("sms", "+77011234567")
    assert a.keyed_hash("ab", "c") != a.keyed_hash("a", "bc")


def test_bad_keys_are_refused() -> None:
    with pytest.raises(KeyError_):
        parse_master_key("not base64!")
    with pytest.raises(KeyError_):
        parse_master_key("c2hvcnQ=")
