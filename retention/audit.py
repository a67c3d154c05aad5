"""The audit log: one append-only, hash-chained entry per batch, in the state DB.

Each entry's ``hash`` is SHA-256 over its canonical JSON and the previous entry's hash, so
editing, deleting, inserting or reordering any entry breaks the chain at that point. When an
``hmac_key`` is configured every entry is also sealed with HMAC-SHA256(key, hash): someone who
can write to the state DB but does not hold the key cannot rebuild a valid chain. Each finished
run records the chain head, so removing entries from the end is detected too.

Record keys are kept as configured (``audit.keys``): ``plain``, ``hmac`` (HMAC-SHA256 with the
settings key, so a DPO can check whether a given key was acted on without the log revealing it)
or ``none`` (counts only).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import IO, Any, Literal

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from .errors import ConfigError
from .logs import get_logger
from .statedb import audit, runs

GENESIS = "0" * 64
KeyMode = Literal["plain", "hmac", "none"]
_HASHED_FIELDS = (
    "seq",
    "run_id",
    "at",
    "rule",
    "dataset",
    "action",
    "dry_run",
    "count",
    "keys",
    "outcome",
    "detail",
    "prev_hash",
)


@dataclass(frozen=True)
class AuditEntry:
    """One audited batch (or one run-level event: refusal, lingering records, recovery)."""

    seq: int
    run_id: str
    at: str
    rule: str | None
    dataset: str | None
    action: str
    dry_run: bool
    count: int
    keys: str
    outcome: str
    detail: str | None
    prev_hash: str
    hash: str
    seal: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["keys"] = json.loads(self.keys)
        return data


@dataclass(frozen=True)
class Verification:
    """The result of `audit verify`."""

    ok: bool
    entries: int
    bad_seq: int | None = None
    reason: str | None = None


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _hmac_pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after the inner and outer padded key of HMAC-SHA256 (RFC 2104)."""
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def entry_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of an entry's hashed fields."""
    payload = json.dumps(
        {name: fields[name] for name in _HASHED_FIELDS}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class AuditLog:
    """Appends to and reads the audit table of one state DB."""

    def __init__(self, engine: Engine, *, keys: KeyMode, hmac_key: bytes | None) -> None:
        if keys == "hmac" and hmac_key is None:
            raise ConfigError(
                "audit.keys is hmac but no hmac_key is set: set RETENTION_HMAC_KEY, "
                "or choose audit.keys: plain or none",
                field="audit.keys",
            )
        self.engine = engine
        self.key_mode = keys
        self.hmac_key = hmac_key
        self._pads = _hmac_pads(hmac_key) if hmac_key is not None else None
        self._unannounced: list[AuditEntry] = []

    def protect_keys(self, keys: Sequence[str]) -> str:
        """Record keys as stored in the log, per `audit.keys`."""
        if self.key_mode == "none":
            return "[]"
        if self.key_mode == "hmac":
            return json.dumps(self._digests(keys))
        return json.dumps(list(keys))

    def key_digest(self, key: str) -> str:
        """How `key` appears in the log under `audit.keys: hmac` (for `audit show --key`)."""
        if self.key_mode == "hmac" and self._pads is not None:
            return self._digests([key])[0]
        return key

    def _digests(self, keys: Sequence[str]) -> list[str]:
        """HMAC-SHA256(hmac_key, key) in hex for each key: once per audited record, so the
        keyed pads are hashed once (RFC 2104, as :mod:`hmac` does) and only copied here."""
        assert self._pads is not None
        inner, outer = self._pads
        digests = []
        for key in keys:
            mac = inner.copy()
            mac.update(key.encode())
            final = outer.copy()
            final.update(mac.digest())
            digests.append(final.hexdigest())
        return digests

    def append(
        self,
        *,
        run_id: str,
        action: str,
        outcome: str,
        dry_run: bool,
        keys: Sequence[str] = (),
        count: int | None = None,
        rule: str | None = None,
        dataset: str | None = None,
        detail: str | None = None,
        at: dt.datetime | None = None,
        connection: Connection | None = None,
    ) -> AuditEntry:
        """Append one entry at the head of the chain (retrying if another writer was first)."""
        moment = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat()
        fields: dict[str, Any] = {
            "run_id": run_id,
            "at": moment,
            "rule": rule,
            "dataset": dataset,
            "action": action,
            "dry_run": dry_run,
            "count": len(keys) if count is None else count,
            "keys": self.protect_keys(keys),
            "outcome": outcome,
            "detail": detail,
        }
        if connection is not None:
            for _ in range(20):
                try:
                    # a savepoint: a retry does not lose the caller's other work
                    with connection.begin_nested():
                        entry = self._append(connection, fields)
                    self._unannounced.append(entry)  # logged once the caller commits
                    return entry
                except IntegrityError:
                    continue
            raise RuntimeError("could not append to the audit log: too much contention")
        for _ in range(20):
            try:
                with self.engine.begin() as conn:
                    entry = self._append(conn, fields)
                _announce(entry)
                return entry
            except IntegrityError:
                continue  # a concurrent writer took this sequence number; chain onto theirs
        raise RuntimeError("could not append to the audit log: too much contention")

    def announce(self) -> None:
        """Log the entries appended in a caller's transaction, now that it has committed."""
        for entry in self._unannounced:
            _announce(entry)
        self._unannounced.clear()

    def forget(self) -> None:
        """Drop unannounced entries: the caller's transaction rolled back."""
        self._unannounced.clear()

    def _append(self, connection: Connection, fields: dict[str, Any]) -> AuditEntry:
        head = connection.execute(
            select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
        ).first()
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        row = {**fields, "seq": seq, "prev_hash": prev}
        row["hash"] = entry_hash(row)
        row["seal"] = self._seal(row["hash"])
        connection.execute(insert(audit).values(**row))
        return AuditEntry(**row)

    def _seal(self, digest: str) -> str | None:
        if self.hmac_key is None:
            return None
        return hmac.new(self.hmac_key, digest.encode(), hashlib.sha256).hexdigest()

    def head(self) -> tuple[int, str]:
        """(last sequence number, its hash), or (0, GENESIS) for an empty log."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
            ).first()
        return (row[0], row[1]) if row else (0, GENESIS)

    def entries(
        self,
        *,
        run_id: str | None = None,
        rule: str | None = None,
        dataset: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        key: str | None = None,
    ) -> Iterator[AuditEntry]:
        """Entries in chain order, filtered; streamed, not loaded at once."""
        query = select(audit).order_by(audit.c.seq)
        if run_id:
            query = query.where(audit.c.run_id == run_id)
        if rule:
            query = query.where(audit.c.rule == rule)
        if dataset:
            query = query.where(audit.c.dataset == dataset)
        if since:
            query = query.where(audit.c.at >= since.astimezone(dt.UTC).isoformat())
        if until:
            query = query.where(audit.c.at < until.astimezone(dt.UTC).isoformat())
        needle = json.dumps(self.key_digest(key)) if key is not None else None
        with self.engine.connect() as connection:
            result = connection.execution_options(stream_results=True).execute(query)
            for row in result.mappings():
                if needle is not None and needle not in row["keys"]:
                    continue
                yield AuditEntry(**dict(row))

    def verify(self) -> Verification:
        """Walk the whole chain; report the first entry that was edited, removed, added or moved."""
        expected_seq, prev = 1, GENESIS
        count = 0
        for entry in self.entries():
            count += 1
            if entry.seq != expected_seq:
                missing = "removed" if entry.seq > expected_seq else "duplicated or moved"
                return Verification(
                    False, count, expected_seq, f"entry {expected_seq} was {missing}"
                )
            if entry.prev_hash != prev:
                return Verification(
                    False,
                    count,
                    entry.seq,
                    "entry does not follow the one before it (inserted, removed or reordered)",
                )
            fields = asdict(entry)
            if entry_hash(fields) != entry.hash:
                return Verification(False, count, entry.seq, "entry was edited (hash mismatch)")
            if self.hmac_key is not None:
                if entry.seal is None:
                    return Verification(
                        False,
                        count,
                        entry.seq,
                        "entry has lost its seal (removed, or written without the key)",
                    )
                if not hmac.compare_digest(entry.seal, self._seal(entry.hash) or ""):
                    return Verification(
                        False,
                        count,
                        entry.seq,
                        "seal does not match (rewritten without the key)",
                    )
            expected_seq, prev = entry.seq + 1, entry.hash
        problem = self._check_run_heads(expected_seq - 1)
        if problem is not None:
            return Verification(False, count, problem[0], problem[1])
        return Verification(True, count)

    def _check_run_heads(self, last_seq: int) -> tuple[int, str] | None:
        """Each finished run noted the chain head; entries up to it must still be there."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(runs.c.id, runs.c.counts).where(runs.c.finished_at.is_not(None))
            ).all()
            for run_id, counts in rows:
                head = json.loads(counts or "{}").get("audit_head")
                if not head:
                    continue
                seq, digest = int(head[0]), head[1]
                if seq == 0:  # the run ended with an empty log
                    continue
                if seq > last_seq:
                    return (
                        seq,
                        f"entries after {last_seq} were removed (run {run_id} ended at {seq})",
                    )
                found = connection.execute(
                    select(audit.c.hash).where(audit.c.seq == seq)
                ).scalar_one_or_none()
                if found != digest:
                    return seq, f"entry differs from the head recorded by run {run_id}"
        return None


def _announce(entry: AuditEntry) -> None:
    """The structlog event mirroring one committed entry (counts and names, never keys)."""
    get_logger(run_id=entry.run_id, rule=entry.rule, dataset=entry.dataset).info(
        "audit",
        seq=entry.seq,
        action=entry.action,
        outcome=entry.outcome,
        dry_run=entry.dry_run,
        count=entry.count,
    )


def export(entries: Iterator[AuditEntry], stream: IO[str], fmt: Literal["jsonl", "csv"]) -> int:
    """Write entries as JSON lines or CSV; returns how many were written."""
    count = 0
    if fmt == "jsonl":
        for entry in entries:
            stream.write(json.dumps(entry.as_dict(), sort_keys=True) + "\n")
            count += 1
        return count
    writer = csv.writer(stream)
    writer.writerow([*_HASHED_FIELDS, "hash", "seal"])
    for entry in entries:
        data = asdict(entry)
        writer.writerow([data[name] for name in (*_HASHED_FIELDS, "hash", "seal")])
        count += 1
    return count
