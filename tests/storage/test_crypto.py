import pytest
from cryptography.exceptions import InvalidTag

from storage.crypto import KeyError_, Vault, new_master_key, parse_master_key


def test_encrypt_round_trip_and_no_plaintext() -> None:
    vault = Vault(parse_master_key(new_master_key()))
    blob = vault.encrypt("Мой паспорт забрали 🙁")
    assert "паспорт".encode() not in blob
    assert vault.decrypt(blob) == "Мой паспорт забрали 🙁"
    assert vault.encrypt("same") != vault.encrypt("same")  # a fresh nonce each time


def test_tampering_and_a_wrong_key_are_detected() -> None:
    vault = Vault(bytes(32))
    blob = bytearray(vault.encrypt("hello"))
    blob[-1] ^= 1
    with pytest.raises(InvalidTag):
        vault.decrypt(bytes(blob))
    with pytest.raises(InvalidTag):
        Vault(bytes([1] * 32)).decrypt(vault.encrypt("hello"))


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
