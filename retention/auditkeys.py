"""The keys that vouch for the audit log: HMAC seal keys, Ed25519 checkpoint keys, their ids.

A *key id* names a key without revealing it, so a seal or a checkpoint can say which key made
it and `audit verify` can tell "made with a key you do not hold" (a rotated or wrong key: exit
5) from "made by someone without the key" (tampering: exit 1):

- an HMAC key's id is ``hmac:`` and the first 16 hex digits of HMAC-SHA256(key, a fixed label):
  it can only be computed by whoever holds the key, and says nothing about it;
- an Ed25519 key's id is ``ed25519:`` and the first 16 hex digits of SHA-256 of its raw public
  key, the same for the private key that signs and the public key that verifies.

:class:`KeyRing` holds the HMAC keys a process may verify with: the current one (``hmac_key``,
which seals new entries) and the previous ones (``audit.previous_hmac_keys``), so a log sealed
partly before a key rotation still verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ConfigError

_ID_LABEL = b"retention audit key id"


def hmac_key_id(key: bytes) -> str:
    """The id of an HMAC key (``hmac:`` + 16 hex digits)."""
    return "hmac:" + hmac.new(key, _ID_LABEL, hashlib.sha256).hexdigest()[:16]


def public_key_id(key: Ed25519PublicKey) -> str:
    """The id of an Ed25519 key pair, from its public half (``ed25519:`` + 16 hex digits)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def seal(key: bytes, digest: str) -> str:
    """An entry's seal: HMAC-SHA256(key, its hash), as hex."""
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class KeyRing:
    """The HMAC keys this process holds: `current` seals, every one of them verifies."""

    current: bytes | None
    previous: tuple[bytes, ...] = ()
    _by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = ([self.current] if self.current is not None else []) + list(self.previous)
        object.__setattr__(self, "_by_id", {hmac_key_id(k): k for k in keys})

    @property
    def current_id(self) -> str | None:
        """The id of the key that seals new entries, or None without one."""
        return hmac_key_id(self.current) if self.current is not None else None

    @property
    def ids(self) -> tuple[str, ...]:
        """The ids of every key held, the current one first."""
        return tuple(self._by_id)

    def key(self, key_id: str) -> bytes | None:
        """The held key with this id, or None."""
        return self._by_id.get(key_id)

    def matching(self, digest: str, found: str) -> str | None:
        """The id of a held key whose seal of `digest` is `found` (entries sealed before seals
        named their key), or None."""
        for key_id, key in self._by_id.items():
            if hmac.compare_digest(seal(key, digest), found):
                return key_id
        return None


def load_private_key(text: str, *, field: str = "audit.signing_key") -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS#8) or base64 of its 32 raw bytes."""
    key = _load(text, private=True, field=field)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def load_public_key(text: str, *, field: str = "--verify-key") -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo) or base64 of its 32 raw bytes; a
    private key is accepted too (its public half is used)."""
    try:
        key = _load(text, private=False, field=field)
    except ConfigError:
        key = _load(text, private=True, field=field)
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    return key


def _load(text: str, *, private: bool, field: str) -> Ed25519PrivateKey | Ed25519PublicKey:
    stripped = text.strip()
    what = "private" if private else "public"
    problem = f"not an Ed25519 {what} key: give PEM or base64 of the 32 raw bytes (value not shown)"
    try:
        if stripped.startswith("-----BEGIN"):
            data = stripped.encode()
            loaded = (
                serialization.load_pem_private_key(data, password=None)
                if private
                else serialization.load_pem_public_key(data)
            )
            if not isinstance(loaded, Ed25519PrivateKey | Ed25519PublicKey):
                raise ValueError("not Ed25519")
            return loaded
        raw = base64.b64decode(stripped, validate=True)
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
        if private:
            return Ed25519PrivateKey.from_private_bytes(raw)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError, binascii.Error):
        raise ConfigError(problem, field=field) from None


def verify_signature(key: Ed25519PublicKey, signature: str, payload: bytes) -> bool:
    """Whether `signature` (base64) is `key`'s Ed25519 signature of `payload`."""
    try:
        key.verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def sign(key: Ed25519PrivateKey, payload: bytes) -> str:
    """`key`'s Ed25519 signature of `payload`, base64."""
    return base64.b64encode(key.sign(payload)).decode()


def hmac_keys(values: Sequence[str]) -> tuple[bytes, ...]:
    """Secret strings as the key bytes the log uses (UTF-8, as ``hmac_key`` always was)."""
    return tuple(value.encode() for value in values)
