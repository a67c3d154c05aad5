"""The audit log: one append-only, hash-chained entry per batch and per run event, in the state DB.

Each entry's ``hash`` is SHA-256 over its canonical JSON and the previous entry's hash, so
editing, deleting, inserting or reordering any entry breaks the chain at that point. When an
``hmac_key`` is configured every entry is also sealed with HMAC-SHA256(key, hash), and names the
key by its id (``key_id``, :mod:`retention.auditkeys`): someone who can write to the state DB
but does not hold the key cannot rebuild a valid chain, and an entry sealed with a key this
process does not hold (rotated: ``audit.previous_hmac_keys``) is told apart from a forgery.

Runs are in the chain too (:mod:`retention.runevents`): `verify` holds every row of
``retention_runs`` against its start and end entries. Each finished run records the chain head,
and checkpoints (:mod:`retention.checkpoints`) anchor it outside the state DB, so removing
entries from the end is detected too.

Record keys are kept as configured (``audit.keys``): ``plain``, ``hmac`` (HMAC-SHA256 with the
settings key, so a DPO can check whether a given key was acted on without the log revealing it)
or ``none`` (counts only).

An entry that acted on records also carries, per record and in the order of its keys, the
record's facts (``records``, :mod:`retention.recordfacts`): ``[subject, due, late]``, the
subject's id in the keys' form (its HMAC under ``hmac``, null under ``none``), the due time
(UTC ISO 8601) and how many seconds after its deadline it was acted on (null: on time, or no
deadline). The hash covers ``records`` only when an entry has them, so entries written before
they existed (revision 0004) verify as they did.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from typing import IO, Any, Literal

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from .auditkeys import KeyRing, hmac_keys, seal
from .errors import ConfigError
from .hmackeys import HmacHelper, KeyHmac
from .ids import canonical_id
from .logs import get_logger
from .recordfacts import FactTable, RecordFacts
from .runevents import MARKER_ACTION, MARKER_RUN_ID, RunEvents
from .settings import Settings
from .statetables import audit, runs

GENESIS = "0" * 64
# Batches with at least this many keys are hashed by the HMAC helper process (hmackeys.py).
HELPER_FROM_KEYS = 1000
SUBJECT_FORMS = 16_384
"""Subject HMACs a log keeps between batches (a run meets the same subjects batch after batch);
past it the memo starts again, so memory stays bounded however many subjects there are."""
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
    key_id: str | None = None
    records: str | None = None  # per record [subject, due, late seconds]; hashed when present

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["keys"] = json.loads(self.keys)
        data["records"] = json.loads(self.records) if self.records is not None else None
        return data

    def facts(self) -> list[tuple[str | None, str | None, int | None]]:
        """Each record's (subject, due, late seconds), in the order of the keys; empty for
        entries without them."""
        if self.records is None:
            return []
        try:
            return [(r[0], r[1], r[2]) for r in json.loads(self.records)]
        except (ValueError, TypeError, IndexError, KeyError):
            return []


Problem = Literal["tampered", "key"]


@dataclass(frozen=True)
class Verification:
    """The result of `audit verify`: `problem` is ``tampered`` (exit 1) or ``key`` (sealed with
    a key not held here, exit 6); `bad_seq` the entry and `run_id` the run it concerns."""

    ok: bool
    entries: int
    bad_seq: int | None = None
    reason: str | None = None
    run_id: str | None = None
    problem: Problem | None = None


def _tampered(
    entries: int, seq: int | None, reason: str, run_id: str | None = None
) -> Verification:
    return Verification(False, entries, seq, reason, run_id, "tampered")


_HASH_ORDER = tuple(sorted(_HASHED_FIELDS))
_HASH_ORDER_WITH_RECORDS = tuple(sorted((*_HASHED_FIELDS, "records")))
_UNREADABLE = "{} holds a value that is not of its column's type (written behind retention's back)"


def entry_hash(fields: dict[str, Any], *, encoded_keys: str | None = None) -> str:
    """SHA-256 over the canonical JSON of an entry's hashed fields.

    Canonical: ``json.dumps(fields, sort_keys=True, separators=(",", ":"))``. It is written out
    field by field so the ``keys`` field, the bulk of a batch's entry, can come already
    JSON-encoded (`encoded_keys`, see :class:`ProtectedKeys`) instead of being escaped again.
    """
    parts = []
    order = _HASH_ORDER if fields.get("records") is None else _HASH_ORDER_WITH_RECORDS
    for name in order:
        if name == "keys" and encoded_keys is not None:
            parts.append(f'"keys":{encoded_keys}')
        else:
            parts.append(f'"{name}":{json.dumps(fields[name])}')
    payload = "{" + ",".join(parts) + "}"
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class ProtectedKeys:
    """A batch's record keys as the log stores them (`text`, per ``audit.keys``), and that text
    as a JSON string (`encoded`, how it enters the entry hash). Made once per batch, possibly
    by the HMAC helper process, so the chain append only concatenates."""

    count: int
    text: str
    encoded: str


def _hex_list(count: int, text: str) -> ProtectedKeys:
    """A JSON list of hex digests with its JSON encoding: only its quotes need escaping."""
    return ProtectedKeys(count, text, '"' + text.replace('"', '\\"') + '"')


class AuditLog:
    """Appends to and reads the audit table of one state DB."""

    def __init__(
        self,
        engine: Engine,
        *,
        keys: KeyMode,
        hmac_key: bytes | None,
        previous_keys: Sequence[bytes] = (),
    ) -> None:
        if keys == "hmac" and hmac_key is None:
            raise ConfigError(
                "audit.keys is hmac but no hmac_key is set: set RETENTION_HMAC_KEY, "
                "or choose audit.keys: plain or none",
                field="audit.keys",
            )
        self.engine = engine
        self.key_mode = keys
        self.hmac_key = hmac_key
        self.keyring = KeyRing(hmac_key, tuple(previous_keys))
        self._hmac = KeyHmac(hmac_key) if hmac_key is not None else None
        self._helper: HmacHelper | None = None
        self._unannounced: list[AuditEntry] = []  # appended in a caller's open transaction
        self._subject_forms: dict[str, str] = {}  # HMACs of subjects seen, up to SUBJECT_FORMS

    @classmethod
    def from_settings(
        cls, engine: Engine, settings: Settings, *, writing: bool = False
    ) -> AuditLog:
        """The log as `settings` configure it: key mode, sealing key and previous keys.

        To read and verify, ``audit.keys: hmac`` without an ``hmac_key`` reads as ``none``. To
        write (`writing`: a run, live or dry) it is refused with a ConfigError: entries with no
        keys would prove nothing about which records went."""
        key = settings.hmac_key.get_secret_value().encode() if settings.hmac_key else None
        mode = settings.audit.keys
        if not writing and key is None and mode == "hmac":
            mode = "none"
        previous = hmac_keys([k.get_secret_value() for k in settings.audit.previous_hmac_keys])
        return cls(engine, keys=mode, hmac_key=key, previous_keys=previous)

    def protect(self, keys: Sequence[str]) -> ProtectedKeys:
        """Record keys as the log stores them, per `audit.keys`, with their JSON encoding."""
        if self.key_mode == "none" or not keys:
            return ProtectedKeys(len(keys), "[]", '"[]"')
        if self.key_mode == "hmac":
            assert self._hmac is not None
            return _hex_list(len(keys), self._hmac.json_list(keys))
        text = json.dumps(list(keys))
        return ProtectedKeys(len(keys), text, json.dumps(text))

    def protect_later(self, keys: list[str]) -> Callable[[], ProtectedKeys]:
        """:meth:`protect`, for a large batch under ``audit.keys: hmac`` computed by the helper
        process while the caller goes on; call the result to collect it."""
        if self.key_mode != "hmac" or len(keys) < HELPER_FROM_KEYS:
            protected = self.protect(keys)
            return lambda: protected
        assert self.hmac_key is not None
        if self._helper is None:
            self._helper = HmacHelper(self.hmac_key)
        helper, ticket = self._helper, self._helper.submit(keys)
        return lambda: _hex_list(len(keys), helper.result(ticket))

    @property
    def helper_pid(self) -> int | None:
        """The process id of the HMAC helper this log started, while it runs."""
        return self._helper.pid if self._helper is not None else None

    def close(self) -> None:
        """Stop the HMAC helper process, if one was started."""
        if self._helper is not None:
            self._helper.close()
            self._helper = None

    def logged_form(self, keys: Sequence[str]) -> list[str]:
        """How each of `keys` appears in the log's entries (their HMACs under ``audit.keys:
        hmac``, else as they are): what `replay` matches a store's keys against."""
        if self.key_mode == "hmac" and self._hmac is not None and keys:
            return list(self._hmac.digests(list(keys)))
        return list(keys)

    def protect_records(self, facts: Sequence[RecordFacts]) -> str | None:
        """The per-record facts of a batch as the log stores them (None when there are none):
        subjects in the keys' form, each distinct subject hashed once."""
        if not facts:
            return None
        table = FactTable.of(facts)
        subjects = {s for s in table.subjects if s is not None}
        form: dict[str, str]
        if self.key_mode == "hmac" and self._hmac is not None:
            form = self._subject_forms
            new = list(subjects.difference(form))
            if len(form) + len(new) > SUBJECT_FORMS:
                form.clear()
                new = list(subjects)
            form.update(zip(new, self._hmac.digests(new), strict=True))
        elif self.key_mode == "plain":
            form = {subject: subject for subject in subjects}
        else:
            form = {}
        forms = [None if s is None else form.get(s) for s in table.subjects]
        # as `export` decodes and a reader re-encodes it
        return json.dumps(list(zip(forms, table.dues, table.lates, strict=True)))

    def subject_digest(self, subject: str) -> str:
        """How the subject id `subject` appears in entries' records (``retention subject``)."""
        return self.key_digest(canonical_id(subject))

    def key_digest(self, key: str) -> str:
        """How `key` appears in the log under `audit.keys: hmac` (for `audit show --key`)."""
        if self.key_mode == "hmac" and self._hmac is not None:
            return self._hmac.digests([key])[0]
        return key

    def append(
        self,
        *,
        run_id: str,
        action: str,
        outcome: str,
        dry_run: bool,
        keys: Sequence[str] | ProtectedKeys = (),
        count: int | None = None,
        rule: str | None = None,
        dataset: str | None = None,
        detail: str | None = None,
        at: dt.datetime | None = None,
        connection: Connection | None = None,
        records: str | None = None,
    ) -> AuditEntry:
        """Append one entry at the head of the chain (retrying if another writer was first)."""
        protected = keys if isinstance(keys, ProtectedKeys) else self.protect(keys)
        moment = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat()
        fields: dict[str, Any] = {
            "run_id": run_id,
            "at": moment,
            "rule": rule,
            "dataset": dataset,
            "action": action,
            "dry_run": dry_run,
            "count": protected.count if count is None else count,
            "keys": protected.text,
            "outcome": outcome,
            "detail": detail,
            "records": records,
        }
        if connection is not None and connection.dialect.name == "sqlite":
            # the state DB's transactions begin IMMEDIATE: no other writer can take the next
            # sequence number while this one is open, so no savepoint is needed for a retry
            entry = self._append(connection, fields, protected.encoded)
            self._unannounced.append(entry)
            return entry
        if connection is not None:
            for _ in range(20):
                try:
                    # a savepoint: a retry does not lose the caller's other work
                    with connection.begin_nested():
                        entry = self._append(connection, fields, protected.encoded)
                    self._unannounced.append(entry)  # logged once the caller commits
                    return entry
                except IntegrityError:
                    continue
            raise RuntimeError("could not append to the audit log: too much contention")
        for _ in range(20):
            try:
                with self.engine.begin() as conn:
                    entry = self._append(conn, fields, protected.encoded)
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

    def _append(
        self, connection: Connection, fields: dict[str, Any], encoded_keys: str
    ) -> AuditEntry:
        head = connection.execute(
            select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
        ).first()
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        row = {**fields, "seq": seq, "prev_hash": prev}
        row["hash"] = entry_hash(row, encoded_keys=encoded_keys)
        row["seal"] = seal(self.hmac_key, row["hash"]) if self.hmac_key is not None else None
        row["key_id"] = self.keyring.current_id
        connection.execute(insert(audit).values(**row))
        return AuditEntry(**row)

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
    ) -> Generator[AuditEntry]:
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
            try:
                for row in result.mappings():
                    if needle is not None and needle not in row["keys"]:
                        continue
                    yield AuditEntry(**dict(row))
            finally:
                result.close()  # also when the caller stops early: no cursor left open

    def verify(self) -> Verification:
        """Walk the whole chain, then hold the runs against it; report the first entry that
        was edited, removed, added or moved, or the first run whose row disagrees.

        Seals are checked with every key held (the current and the previous ones). An entry
        sealed with a key not held is a key problem, not tampering; the walk goes on, so
        tampering found later still wins. Without any key only the chain is checked."""
        walk = _Walk(self.keyring)
        try:
            # closed on an early return: the server-side cursor behind it must not linger
            with closing(self.entries()) as entries:
                for entry in entries:
                    problem = walk.step(entry)
                    if problem is not None:
                        return problem
        except (ValueError, TypeError):  # the driver could not even read a value back
            return _tampered(walk.count, walk.expected_seq, _UNREADABLE.format("retention_audit"))
        problem = walk.finish()
        if problem is not None:
            return problem
        try:
            head = self._check_run_heads(walk.expected_seq - 1)
            with self.engine.connect() as connection:
                rows = [dict(r) for r in connection.execute(select(runs)).mappings()]
        except (ValueError, TypeError):
            return _tampered(walk.count, None, _UNREADABLE.format("retention_runs"))
        if head is not None:
            return _tampered(walk.count, head[0], head[1])
        run = walk.runs.check(rows)
        if run is not None:
            return _tampered(walk.count, run.seq, run.reason, run.run_id)
        if walk.key_problem is not None:
            return walk.key_problem
        return Verification(True, walk.count)

    def _check_run_heads(self, last_seq: int) -> tuple[int, str] | None:
        """Each finished run noted the chain head; entries up to it must still be there."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(runs.c.id, runs.c.counts).where(runs.c.finished_at.is_not(None))
            ).all()
            for run_id, counts in rows:
                try:
                    head = json.loads(counts or "{}").get("audit_head")
                    seq, digest = int(head[0]), head[1]
                except (ValueError, TypeError, AttributeError, IndexError, KeyError):
                    continue  # no head recorded (or not readable: the run check names it)
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


class _Walk:
    """One pass along the chain: sequence, links, hashes, seals, and the run events seen."""

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self.expected_seq, self.prev, self.count = 1, GENESIS, 0
        self.runs = RunEvents()
        self.key_problem: Verification | None = None
        # entries sealed before seals named their key: (seq, sealed with a held key?)
        self.unnamed: list[tuple[int, bool]] = []

    def step(self, entry: AuditEntry) -> Verification | None:
        self.count += 1
        count = self.count
        if entry.seq != self.expected_seq:
            missing = "removed" if entry.seq > self.expected_seq else "duplicated or moved"
            return _tampered(count, self.expected_seq, f"entry {self.expected_seq} was {missing}")
        if entry.prev_hash != self.prev:
            return _tampered(
                count,
                entry.seq,
                "entry does not follow the one before it (inserted, removed or reordered)",
            )
        fields = asdict(entry)
        if entry_hash(fields) != entry.hash:
            return _tampered(count, entry.seq, "entry was edited (hash mismatch)")
        if self.keyring.ids:
            problem = self._check_seal(entry)
            if problem is not None:
                return problem
        self.runs.see(entry.seq, entry.run_id, entry.action, entry.outcome, entry.detail)
        if entry.action == MARKER_ACTION and entry.run_id == MARKER_RUN_ID:
            problem = self._settle_unnamed()
            if problem is not None:
                return problem
        self.expected_seq, self.prev = entry.seq + 1, entry.hash
        return None

    def finish(self) -> Verification | None:
        if self.unnamed and self.runs.marker_seq is None:
            # only entries an upgrade found may name no key: without its marker, none did
            return _tampered(
                self.count, self.unnamed[0][0], "seal names no key (rewritten without the key)"
            )
        return self._settle_unnamed()

    def _check_seal(self, entry: AuditEntry) -> Verification | None:
        count, keyring = self.count, self.keyring
        is_marker = entry.action == MARKER_ACTION and entry.run_id == MARKER_RUN_ID
        if entry.seal is None:
            if is_marker and self.runs.marker_seq is None and not self.runs.starts:
                return None  # written by the schema upgrade, which holds no key
            return _tampered(
                count, entry.seq, "entry has lost its seal (removed, or written without the key)"
            )
        if entry.key_id is None:
            if self.runs.marker_seq is None and not self.runs.starts:
                # sealed before seals named their key: judged once all such entries are seen
                self.unnamed.append(
                    (entry.seq, keyring.matching(entry.hash, entry.seal) is not None)
                )
                return None
            return _tampered(count, entry.seq, "seal does not match (rewritten without the key)")
        key = keyring.key(entry.key_id)
        if key is None:
            if self.key_problem is None:
                self.key_problem = Verification(
                    False,
                    count,
                    entry.seq,
                    f"entry is sealed with key {entry.key_id}, which is not held here "
                    f"(held: {', '.join(keyring.ids)}); add it to audit.previous_hmac_keys",
                    None,
                    "key",
                )
            return None
        if not hmac.compare_digest(entry.seal, seal(key, entry.hash)):
            return _tampered(count, entry.seq, "seal does not match (rewritten without the key)")
        return None

    def _settle_unnamed(self) -> Verification | None:
        """Entries sealed before seals named their key: if none matches a held key, the log
        was sealed with another key (a key problem); if some do, the others were forged."""
        unnamed, self.unnamed = self.unnamed, []
        bad = [seq for seq, matched in unnamed if not matched]
        if not bad:
            return None
        if len(bad) < len(unnamed):
            return _tampered(self.count, bad[0], "seal does not match (rewritten without the key)")
        if self.key_problem is None:
            self.key_problem = Verification(
                False,
                self.count,
                bad[0],
                f"entries {bad[0]}–{bad[-1]} were sealed before seals named their key, and "
                f"with none of the keys held here ({', '.join(self.keyring.ids)})",
                None,
                "key",
            )
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
    names = (*_HASHED_FIELDS, "hash", "seal", "key_id", "records")
    writer.writerow(names)
    for entry in entries:
        data = asdict(entry)
        writer.writerow([data[name] for name in names])
        count += 1
    return count
