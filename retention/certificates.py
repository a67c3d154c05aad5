"""Erasure certificates: what retention did and still keeps of one subject, sealed, checkable.

`retention subject TYPE ID --certificate FILE` writes a JSON document (and a readable ``.txt``
beside it) naming every dataset that holds or held the subject's records: which live runs
cleared them, when and under which rule (each audit entry by sequence number and hash), what is
still kept and why (a hold, a keep rule, not yet due and when), whether a fresh evaluation
finds anything due left, the datasets whose records cannot be attributed, and the audit chain
head it rests on. It is sealed with the Ed25519 checkpoint key (``audit.signing_key``) when
one is configured, else with HMAC-SHA256 under ``hmac_key``.

`retention audit verify-certificate FILE` (:func:`verify`) checks that the file is exactly as
written (canonical JSON: any changed byte is found), the seal, and the state DB: the audit chain
verifies, the head it names is still there, and every entry it cites is there with the same
hash and fields and still records as many of the subject's records as it says, and as many of
them acted on late, by as much.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, select

from .audit import AuditEntry, AuditLog
from .auditkeys import KeyRing, hmac_key_id, load_private_key, public_key_id, sign
from .auditkeys import verify_signature as ed25519_ok
from .errors import AuditError, AuditKeyError, ConfigError
from .settings import Settings
from .statetables import audit
from .subjects import (
    ANONYMIZED,
    DUE,
    HELD,
    KEPT,
    NO_RULE,
    SubjectReport,
    subject_count,
    subject_lateness,
)

FORMAT = "retention-erasure-certificate/1"
_LABEL = b"retention erasure certificate\n"


def build(report: SubjectReport, issued: dt.datetime) -> dict[str, Any]:
    """The certificate's content (unsealed) from a subject lookup."""
    datasets = []
    for view in report.held():
        kept = [g.as_dict() for g in view.groups if g.state != DUE]
        datasets.append(
            {
                "dataset": view.dataset,
                "store": view.store,
                "via": view.via,
                "records_now": view.records,
                "due_now": view.due,
                "cleared": [a.as_dict() for a in view.history],
                "kept": kept,
                "restorable_for": view.restorable_for,
            }
        )
    empty = [v.dataset for v in report.datasets if not v.records and not v.history]
    return {
        "format": FORMAT,
        "subject": {
            "type": report.subject_type,
            "id": report.subject_id,
            "digest": report.digest,
        },
        "issued_at": issued.astimezone(dt.UTC).isoformat(),
        "as_of": report.now.astimezone(dt.UTC).isoformat(),
        "audit_head": {"seq": report.audit_head[0], "hash": report.audit_head[1]},
        "datasets": datasets,
        "checked_and_empty": empty,
        "not_attributed": [u.as_dict() for u in report.unattributed],
        "nothing_due": report.nothing_due,
        "records_kept": sum(v.records for v in report.datasets),
        "notes": list(report.notes),
    }


@dataclass(frozen=True)
class Sealer:
    """Seals certificates: Ed25519 with ``audit.signing_key``, else HMAC with ``hmac_key``."""

    settings: Settings

    def seal(self, body: dict[str, Any]) -> dict[str, Any]:
        """`body` with its ``seal``."""
        payload = _payload(body)
        audit_settings = self.settings.audit
        if audit_settings.signing_key is not None:
            key = load_private_key(audit_settings.signing_key.get_secret_value())
            seal = {
                "algorithm": "ed25519",
                "key_id": public_key_id(key.public_key()),
                "value": sign(key, payload),
            }
        elif self.settings.hmac_key is not None:
            secret = self.settings.hmac_key.get_secret_value().encode()
            seal = {
                "algorithm": "hmac-sha256",
                "key_id": hmac_key_id(secret),
                "value": hmac.new(secret, _LABEL + payload, hashlib.sha256).hexdigest(),
            }
        else:
            raise ConfigError(
                "a certificate must be sealed: set audit.signing_key (Ed25519) or hmac_key",
                field="audit.signing_key",
            )
        return {**body, "seal": seal}


def document(sealed: dict[str, Any]) -> str:
    """The certificate as written: canonical JSON, so any edited byte is detected."""
    return json.dumps(sealed, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def write(sealed: dict[str, Any], path: Path) -> tuple[Path, Path]:
    """Write the JSON certificate to `path` and its readable text beside it (``.txt``)."""
    text_path = path.with_suffix(".txt")
    try:
        path.write_text(document(sealed), encoding="utf-8")
        text_path.write_text(readable(sealed), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the certificate: {exc.strerror}", file=str(path)) from None
    return path, text_path


def _payload(body: dict[str, Any]) -> bytes:
    data = {k: v for k, v in body.items() if k != "seal"}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def readable(sealed: dict[str, Any]) -> str:
    """The certificate in words, for a person; the JSON beside it is what is verified."""
    subject = sealed["subject"]
    lines = [
        f"Erasure certificate: {subject['type']} {subject['id']}",
        f"Issued {sealed['issued_at']}, evaluated as of {sealed['as_of']}.",
        f"Rests on the audit chain up to entry {sealed['audit_head']['seq']} "
        f"(hash {sealed['audit_head']['hash']}).",
        "",
    ]
    for item in sealed["datasets"]:
        lines.append(f"{item['dataset']} (store {item['store']}, by {item['via']}):")
        for acted in item["cleared"]:
            count = (
                f"its rows, with entry {acted['cascade_of']}"
                if acted["records"] is None
                else _records(acted["records"])
                + (f" with entry {acted['cascade_of']}" if acted["cascade_of"] is not None else "")
            )
            lines.append(
                f"  {acted['action']}: {count} by run {acted['run_id']} at {acted['at']} "
                f"under rule {acted['rule']} (audit entry {acted['seq']}){_lateness(acted)}"
            )
        for group in item["kept"]:
            lines.append("  " + _kept_line(group))
        if item["restorable_for"] and any(a["action"] != "anonymize" for a in item["cleared"]):
            lines.append(
                f"  deleted rows stay restorable for {item['restorable_for']} after each delete "
                "(quarantine), then are purged"
            )
        if item["due_now"]:
            lines.append(f"  DUE NOW, not yet acted on: {_records(item['due_now'])}")
        if not item["records_now"]:
            lines.append("  nothing of the subject is left here")
    if sealed["checked_and_empty"]:
        lines.append(
            "Checked, never held the subject's records: " + ", ".join(sealed["checked_and_empty"])
        )
    for item in sealed["not_attributed"]:
        lines.append(f"Cannot be attributed: {item['dataset']} ({item['reason']})")
    lines.append("")
    if sealed["nothing_due"]:
        lines.append("A fresh evaluation finds nothing due left for this subject.")
    else:
        lines.append(
            "NOT COMPLETE: records of this subject are due and not yet acted on, or a store "
            "that holds them could not be read."
        )
    if sealed["records_kept"]:
        lines.append(f"{_records(sealed['records_kept'])} still kept, for the reasons above.")
    lines.extend(sealed["notes"])
    seal = sealed["seal"]
    lines += [
        "",
        f"Sealed ({seal['algorithm']}, key {seal['key_id']}): {seal['value']}",
        "Verify with: retention audit verify-certificate <the .json file beside this one>",
    ]
    return "\n".join(lines) + "\n"


def _lateness(acted: dict[str, Any]) -> str:
    """`; on time` or `; 2 late, by up to 3 days 4 h` (nothing for certificates written before
    entries said so, or a cascade entry not counted)."""
    late = acted.get("late")
    if late is None:
        return ""
    if not late:
        return "; on time"
    seconds = int(acted["late_by"])
    days, hours = seconds // 86400, seconds % 86400 // 3600
    return f"; {late} late, by up to {days} days {hours} h"


def _records(count: int) -> str:
    return f"{count} record" + "s" * (count != 1)


def _kept_line(group: dict[str, Any]) -> str:
    records, state, rule = _records(group["records"]), group["state"], group["rule"]
    if state == HELD:
        return f"kept: {records} held by {', '.join(group['holds'])} (rule {rule} would act)"
    if state == KEPT:
        return (
            f"kept: {records} by keep rule {', '.join(group['keep_rules'])} until "
            f"{group['to']} (then rule {rule})"
        )
    if state == ANONYMIZED:
        return f"kept anonymized: {records} (rule {rule})"
    if state == NO_RULE:
        return f"kept: {records} no rule removes"
    when = f", due {group['from']}" + (f" to {group['to']}" if group["to"] != group["from"] else "")
    return f"kept: {records} {state} (rule {rule}{when if group['from'] else ''})"


@dataclass(frozen=True)
class Checked:
    """A certificate that verified: whose, how many entries it cites, the head it rests on."""

    subject: str
    entries: int
    head: int


def verify(
    path: Path,
    settings: Settings,
    engine: Engine,
    extra: Sequence[Ed25519PublicKey] = (),
) -> Checked:
    """Check the certificate at `path`: its bytes, its seal and the state DB it rests on.

    Raises AuditError (exit 1) with one message for anything edited or missing, AuditKeyError
    (exit 6) when it is sealed with a key not held here, ConfigError when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the certificate: {exc.strerror}", file=str(path)) from None
    sealed = _parse(data)
    if data != document(sealed).encode():
        raise AuditError("certificate was edited: it is not byte for byte as retention wrote it")
    _check_seal(sealed, settings, extra)
    _check_state(sealed, settings, engine)
    text_path = path.with_suffix(".txt")
    if text_path.is_file() and text_path.read_text(encoding="utf-8") != readable(sealed):
        raise AuditError(f"{text_path.name} beside it differs from the sealed certificate")
    cited = sum(len(d["cleared"]) for d in sealed["datasets"])
    subject = f"{sealed['subject']['type']} {sealed['subject']['id']}"
    return Checked(subject, cited, int(sealed["audit_head"]["seq"]))


def _parse(data: bytes) -> dict[str, Any]:
    try:
        sealed = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise AuditError("certificate was edited: it is not JSON") from None
    if not isinstance(sealed, dict) or sealed.get("format") != FORMAT:
        raise AuditError(f"not a certificate: no format {FORMAT!r}")
    try:
        seal = sealed["seal"]
        for name in ("algorithm", "key_id", "value"):
            if not isinstance(seal[name], str):
                raise TypeError(name)
        readable(sealed)  # every field the text names is there and of its kind
        for item in sealed["datasets"]:
            for acted in item["cleared"]:
                int(acted["seq"]), str(acted["hash"])
        int(sealed["audit_head"]["seq"])
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
        RecursionError,
        OverflowError,  # a number edited to 1e999 reads as infinity
    ):
        raise AuditError("certificate was edited: a field is missing or malformed") from None
    return sealed


def _check_seal(
    sealed: dict[str, Any], settings: Settings, extra: Sequence[Ed25519PublicKey]
) -> None:
    seal, payload = sealed["seal"], _payload(sealed)
    if seal["algorithm"] == "ed25519":
        keys = {public_key_id(k): k for k in extra}
        if settings.audit.signing_key is not None:
            own = load_private_key(settings.audit.signing_key.get_secret_value()).public_key()
            keys[public_key_id(own)] = own
        public = keys.get(seal["key_id"])
        if public is None:
            _not_held(seal["key_id"], tuple(keys))
        if not ed25519_ok(public, seal["value"], payload):
            raise AuditError("certificate seal does not verify: the certificate was edited")
        return
    if seal["algorithm"] != "hmac-sha256":
        raise AuditError(f"certificate seal has an unknown algorithm {seal['algorithm']!r}")
    current = settings.hmac_key.get_secret_value().encode() if settings.hmac_key else None
    previous = tuple(k.get_secret_value().encode() for k in settings.audit.previous_hmac_keys)
    ring = KeyRing(current, previous)
    secret = ring.key(seal["key_id"])
    if secret is None:
        _not_held(seal["key_id"], ring.ids)
    expected = hmac.new(secret, _LABEL + payload, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, seal["value"]):
        raise AuditError("certificate seal does not verify: the certificate was edited")


def _not_held(key_id: str, held: tuple[str, ...]) -> NoReturn:
    raise AuditKeyError(
        f"certificate is sealed with key {key_id}, which is not held here "
        f"(held: {', '.join(held) or 'none'})",
        signed_with=key_id,
        held=held,
    )


def _check_state(sealed: dict[str, Any], settings: Settings, engine: Engine) -> None:
    """The state DB still holds what the certificate rests on."""
    log = AuditLog.from_settings(engine, settings)
    result = log.verify()
    if not result.ok:
        where = f"entry {result.bad_seq}: " if result.bad_seq is not None else ""
        raise AuditError(f"the audit log it rests on does not verify: {where}{result.reason}")
    head_seq, head_hash = int(sealed["audit_head"]["seq"]), sealed["audit_head"]["hash"]
    head = _entry(engine, head_seq) if head_seq else None
    if head_seq and head is None:
        raise AuditError(f"the audit chain head it names (entry {head_seq}) is not in the state DB")
    if head is not None and head.hash != head_hash:
        raise AuditError(f"entry {head_seq} is not the chain head the certificate names")
    digest = sealed["subject"]["digest"]
    for item in sealed["datasets"]:
        for acted in item["cleared"]:
            found = _entry(engine, int(acted["seq"]))
            if found is None or found.seq > head_seq:
                raise AuditError(f"audit entry {acted['seq']} it cites is not in the state DB")
            same = (
                found.hash == acted["hash"]
                and found.run_id == acted["run_id"]
                and found.at == acted["at"]
                and found.rule == acted["rule"]
                and found.dataset == acted["dataset"] == item["dataset"]
                and found.action == acted["action"]
                and not found.dry_run
                and found.outcome == "done"
            )
            count = None if acted["records"] is None else subject_count(found, digest)
            if count is not None and "late" in acted:  # written since entries said so
                same = same and [acted["late"], acted["late_by"]] == list(
                    subject_lateness(found, digest)
                )
            if not same or count != acted["records"]:
                raise AuditError(f"audit entry {acted['seq']} is not the one the certificate cites")


def _entry(engine: Engine, seq: int) -> AuditEntry | None:
    with engine.connect() as connection:
        row = connection.execute(select(audit).where(audit.c.seq == seq)).mappings().first()
    return AuditEntry(**dict(row)) if row is not None else None


__all__ = ["FORMAT", "Checked", "Sealer", "build", "document", "readable", "verify", "write"]
