"""Key ids and key loading: a key is named without being revealed, in every accepted form."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from retention.auditkeys import (
    KeyRing,
    hmac_key_id,
    load_private_key,
    load_public_key,
    public_key_id,
    seal,
)
from retention.errors import ConfigError


def test_hmac_key_ids_name_the_key_without_revealing_it() -> None:
    """An HMAC key's id is stable, differs between keys and contains nothing of the key."""
    first, second = hmac_key_id(b"first-key"), hmac_key_id(b"second-key")
    assert first == hmac_key_id(b"first-key") and first != second
    assert first.startswith("hmac:") and len(first) == len("hmac:") + 16
    assert "first" not in first


def test_a_key_ring_finds_keys_by_id_and_by_seal() -> None:
    """The current key and the previous ones are all found by id, the current one seals, and
    a seal made before seals named their key is matched to the key that made it."""
    ring = KeyRing(b"new", (b"old",))
    assert ring.current_id == hmac_key_id(b"new")
    assert ring.ids == (hmac_key_id(b"new"), hmac_key_id(b"old"))
    assert ring.key(hmac_key_id(b"old")) == b"old"
    assert ring.key("hmac:0000000000000000") is None
    assert ring.matching("a" * 64, seal(b"old", "a" * 64)) == hmac_key_id(b"old")
    assert ring.matching("a" * 64, "0" * 64) is None
    assert KeyRing(None).ids == () and KeyRing(None).current_id is None


def test_ed25519_keys_load_from_pem_or_base64_with_one_id() -> None:
    """A private key loads from PKCS#8 PEM or base64 of its raw bytes, a public key from
    SubjectPublicKeyInfo PEM, raw base64 or the private key; all give the same key id."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    raw = base64.b64encode(
        key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    ).decode()
    public = key.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    public_raw = base64.b64encode(
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()
    expected = public_key_id(public)
    assert public_key_id(load_private_key(pem).public_key()) == expected
    assert public_key_id(load_private_key(raw).public_key()) == expected
    for text in (public_pem, public_raw, pem):
        assert public_key_id(load_public_key(text)) == expected


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_key_is_a_config_error_that_does_not_repeat_it(text: str) -> None:
    """A key that is neither PEM nor 32 bytes of base64 is a ConfigError naming the setting,
    without the value."""
    with pytest.raises(ConfigError) as caught:
        load_private_key(text)
    assert caught.value.field == "audit.signing_key"
    assert "value not shown" in str(caught.value)
    assert (text not in str(caught.value)) or not text
