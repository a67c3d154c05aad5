"""Checkpoints: the audit chain's head, signed, kept outside the state DB.

The chain and its seals catch any edit inside the log, but someone who can write to the state
DB can still cut its end off, or delete everything, and leave a valid (shorter) chain behind.
A checkpoint is a small JSON document, written somewhere else (a directory, or an S3 prefix
with Object Lock: :mod:`retention.anchors`), that records the head at one moment::

    {"format": "retention-checkpoint/1", "seq": 1042, "hash": "…", "entries": 1042,
     "at": "2026-12-01T03:00:07+00:00", "algorithm": "ed25519", "key_id": "ed25519:…",
     "signature": "…"}

It is signed with ``audit.signing_key`` (Ed25519: anyone with the public key can check it, and
only the holder of the private key can make one) or, without one, sealed with ``hmac_key``.
`audit verify --checkpoints` reads every checkpoint there: a chain shorter than one
(truncated, or emptied) or with another entry at its sequence number (rewritten) is tampering;
a checkpoint signed with a key not held here is a key problem, named by both key ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, func, select

from .audit import AuditLog, Verification
from .auditkeys import (
    KeyRing,
    hmac_key_id,
    hmac_keys,
    load_private_key,
    public_key_id,
    sign,
    verify_signature,
)
from .errors import AuditKeyError, ConfigError
from .settings import Settings
from .statetables import audit

FORMAT = "retention-checkpoint/1"
Algorithm = Literal["ed25519", "hmac-sha256"]
_HMAC_LABEL = b"retention checkpoint\n"


@dataclass(frozen=True)
class Checkpoint:
    """One signed record of the chain head."""

    seq: int
    hash: str
    entries: int
    at: str
    algorithm: Algorithm
    key_id: str
    signature: str = ""

    def payload(self) -> bytes:
        """What the signature covers: every field but the signature, as canonical JSON."""
        data = {k: v for k, v in asdict(self).items() if k != "signature"}
        data["format"] = FORMAT
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    def document(self) -> bytes:
        """The JSON document as written."""
        data = {**asdict(self), "format": FORMAT}
        return (json.dumps(data, sort_keys=True, indent=1) + "\n").encode()

    def name(self) -> str:
        """A file or object name no other checkpoint has (they are never overwritten)."""
        moment = dt.datetime.fromisoformat(self.at).strftime("%Y%m%dT%H%M%S%fZ")
        return f"checkpoint-{self.seq:012d}-{moment}-{uuid.uuid4().hex[:8]}.json"


def parse(data: bytes) -> Checkpoint:
    """A checkpoint from its document; ValueError if it is not one."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    try:
        checkpoint = Checkpoint(
            seq=int(raw["seq"]),
            hash=str(raw["hash"]),
            entries=int(raw["entries"]),
            at=str(raw["at"]),
            algorithm=raw["algorithm"],
            key_id=str(raw["key_id"]),
            signature=str(raw["signature"]),
        )
        dt.datetime.fromisoformat(checkpoint.at)
    except (KeyError, TypeError, ValueError):
        raise ValueError("a field is missing or malformed") from None
    if checkpoint.algorithm not in ("ed25519", "hmac-sha256"):
        raise ValueError(f"unknown algorithm {checkpoint.algorithm!r}")
    return checkpoint


@dataclass(frozen=True)
class Signer:
    """Makes checkpoints' signatures: Ed25519 with ``audit.signing_key``, else HMAC."""

    algorithm: Algorithm
    key_id: str
    private_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    hmac_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer:
        """The signer `settings` allow; a ConfigError when they hold no key at all."""
        if settings.audit.signing_key is not None:
            key = load_private_key(settings.audit.signing_key.get_secret_value())
            return cls("ed25519", public_key_id(key.public_key()), private_key=key)
        if settings.hmac_key is not None:
            secret = settings.hmac_key.get_secret_value().encode()
            return cls("hmac-sha256", hmac_key_id(secret), hmac_key=secret)
        raise ConfigError(
            "a checkpoint must be signed: set audit.signing_key (Ed25519, better: "
            "RETENTION_AUDIT__SIGNING_KEY) or hmac_key",
            field="audit.signing_key",
        )

    def sign(self, checkpoint: Checkpoint) -> Checkpoint:
        """`checkpoint` with its signature."""
        payload = checkpoint.payload()
        if self.private_key is not None:
            signature = sign(self.private_key, payload)
        else:
            assert self.hmac_key is not None
            signature = hmac.new(self.hmac_key, _HMAC_LABEL + payload, hashlib.sha256).hexdigest()
        return Checkpoint(**{**asdict(checkpoint), "signature": signature})

    def unsigned(self, *, seq: int, digest: str, entries: int, at: dt.datetime) -> Checkpoint:
        """A checkpoint of this head, naming this signer's algorithm and key, to :meth:`sign`."""
        return Checkpoint(
            seq=seq,
            hash=digest,
            entries=entries,
            at=at.astimezone(dt.UTC).isoformat(),
            algorithm=self.algorithm,
            key_id=self.key_id,
        )


@dataclass(frozen=True)
class Verifier:
    """The keys checkpoints are checked with: Ed25519 public keys and HMAC keys, by id."""

    public_keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    hmac: KeyRing = field(default_factory=lambda: KeyRing(None))

    @classmethod
    def from_settings(cls, settings: Settings, extra: Sequence[Ed25519PublicKey] = ()) -> Verifier:
        """Every key `settings` hold (the signing key's public half, the HMAC keys) and
        `extra` public keys (``--verify-key``)."""
        public = list(extra)
        if settings.audit.signing_key is not None:
            public.append(
                load_private_key(settings.audit.signing_key.get_secret_value()).public_key()
            )
        current = settings.hmac_key.get_secret_value().encode() if settings.hmac_key else None
        previous = hmac_keys([k.get_secret_value() for k in settings.audit.previous_hmac_keys])
        return cls({public_key_id(k): k for k in public}, KeyRing(current, previous))

    @property
    def ids(self) -> tuple[str, ...]:
        """The ids of every key held, Ed25519 first."""
        return (*self.public_keys, *self.hmac.ids)

    def authentic(self, checkpoint: Checkpoint) -> bool:
        """Whether the signature is good; AuditKeyError when no key here has its key id."""
        payload = checkpoint.payload()
        if checkpoint.algorithm == "ed25519":
            public = self.public_keys.get(checkpoint.key_id)
            if public is not None:
                return verify_signature(public, checkpoint.signature, payload)
        else:
            secret = self.hmac.key(checkpoint.key_id)
            if secret is not None:
                expected = hmac.new(secret, _HMAC_LABEL + payload, hashlib.sha256).hexdigest()
                return hmac.compare_digest(expected, checkpoint.signature)
        held = ", ".join(self.ids) or "none"
        raise AuditKeyError(
            f"signed with key {checkpoint.key_id}, which is not held here (held: {held})",
            signed_with=checkpoint.key_id,
            held=self.ids,
        )


def take(engine: Engine, signer: Signer, *, now: dt.datetime) -> Checkpoint:
    """A signed checkpoint of the chain's head now."""
    with engine.connect() as connection:
        head = connection.execute(
            select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
        ).first()
        entries = int(connection.execute(select(func.count()).select_from(audit)).scalar_one())
    seq, digest = (int(head[0]), str(head[1])) if head else (0, "0" * 64)
    return signer.sign(signer.unsigned(seq=seq, digest=digest, entries=entries, at=now))


Problem = Literal["tampered", "key"]


@dataclass(frozen=True)
class CheckpointReport:
    """What `audit verify --checkpoints` found: how many checkpoints agree with the chain,
    and the first problem (tampering wins over a key problem)."""

    checked: int
    problem: Problem | None = None
    reason: str | None = None
    bad_seq: int | None = None
    checkpoint: str | None = None
    latest: Checkpoint | None = None  # the newest checkpoint that agrees with the chain

    @property
    def ok(self) -> bool:
        """No problem found."""
        return self.problem is None


def check(
    engine: Engine, documents: Iterable[tuple[str, bytes]], verifier: Verifier, where: str
) -> CheckpointReport:
    """Hold every checkpoint document against the chain in `engine`'s state DB.

    Without any key at all (an auditor with only the state DB URL), signatures cannot be
    checked and every checkpoint is compared as it is; otherwise only authentic ones are
    (a forged checkpoint is tampering, one signed with a key not held a key problem)."""
    with engine.connect() as connection:
        last = int(connection.execute(select(func.max(audit.c.seq))).scalar() or 0)
    checked = 0
    latest: Checkpoint | None = None
    key_problem: CheckpointReport | None = None
    for name, data in documents:
        try:
            checkpoint = parse(data)
        except ValueError as exc:
            return CheckpointReport(
                checked, "tampered", f"checkpoint {name} is not a checkpoint document ({exc})"
            )
        if verifier.ids:
            try:
                if not verifier.authentic(checkpoint):
                    return CheckpointReport(
                        checked,
                        "tampered",
                        f"checkpoint {name}: its signature does not verify (forged or edited)",
                        checkpoint.seq,
                        name,
                    )
            except AuditKeyError as exc:
                if key_problem is None:
                    key_problem = CheckpointReport(
                        checked, "key", f"checkpoint {name}: {exc}", checkpoint.seq, name
                    )
                continue
        problem = _against_chain(engine, checkpoint, name, last)
        if problem is not None:
            return CheckpointReport(checked, "tampered", problem, checkpoint.seq, name)
        checked += 1
        if latest is None or (checkpoint.seq, checkpoint.at) > (latest.seq, latest.at):
            latest = checkpoint
    if key_problem is not None:
        return replace(key_problem, checked=checked, latest=latest)
    if checked == 0:
        return CheckpointReport(0, "tampered", f"no checkpoint found in {where}")
    return CheckpointReport(checked, latest=latest)


def _against_chain(engine: Engine, checkpoint: Checkpoint, name: str, last: int) -> str | None:
    if checkpoint.seq == 0:
        return None
    if checkpoint.seq > last:
        if last == 0:
            return (
                f"every entry was removed: checkpoint {name} ({checkpoint.at}) recorded "
                f"{checkpoint.seq} entries"
            )
        return (
            f"entries after {last} were removed: checkpoint {name} ({checkpoint.at}) recorded "
            f"the chain up to entry {checkpoint.seq}"
        )
    with engine.connect() as connection:
        found = connection.execute(
            select(audit.c.hash).where(audit.c.seq == checkpoint.seq)
        ).scalar_one_or_none()
    if found != checkpoint.hash:
        return (
            f"entry {checkpoint.seq} is not the one checkpoint {name} ({checkpoint.at}) "
            "recorded: the chain was rewritten"
        )
    return None


def write(
    engine: Engine, settings: Settings, where: str | None, *, now: dt.datetime
) -> tuple[Checkpoint, str]:
    """Take a checkpoint of `engine`'s chain and write it to `where` (else
    ``audit.checkpoints``); the checkpoint and where it went."""
    from .anchors import open_destination

    destination = open_destination(where, settings.audit)
    checkpoint = take(engine, Signer.from_settings(settings), now=now)
    return checkpoint, destination.put(checkpoint.name(), checkpoint.document())


def verify_everything(
    engine: Engine,
    settings: Settings,
    where: str | None = None,
    extra: Sequence[Ed25519PublicKey] = (),
) -> tuple[Verification, CheckpointReport]:
    """The chain and its runs verified, and held against every checkpoint in `where` (else
    ``audit.checkpoints``; none configured: an empty report) — what `audit verify` and the
    DPO report say."""
    from .anchors import open_destination

    result = AuditLog.from_settings(engine, settings).verify()
    target = where or settings.audit.checkpoints
    if not target:
        return result, CheckpointReport(0)
    documents = open_destination(target, settings.audit).documents()
    return result, check(engine, documents, Verifier.from_settings(settings, extra), target)


__all__ = [
    "FORMAT",
    "Checkpoint",
    "CheckpointReport",
    "Signer",
    "Verifier",
    "check",
    "parse",
    "take",
    "verify_everything",
    "write",
]
