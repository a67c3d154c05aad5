"""Writing a :class:`~retention.discover.Draft` as a commented first configuration.

:func:`write_draft` writes three files into a directory: ``retention.yaml`` (settings, the
store, the subject type and one dataset per table), ``rules/draft.yaml`` (a rule pack with no
active rules and a commented suggestion per dataset) and ``holds.yaml`` (no holds). Every
guessed value has a ``# guess:`` comment with its evidence. The files pass `retention validate`
as written; nothing in them is a sampled value (only names from the schema and counts).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from pathlib import Path

from .discover import Draft, DraftDataset, Guess
from .errors import ConfigError
from .personaldata import Finding, snake

STORE = "db"
FILES = ("retention.yaml", "rules/draft.yaml", "holds.yaml")


def q(value: str) -> str:
    """`value` as a YAML scalar that reads back as exactly this text (a JSON string is one)."""
    return json.dumps(value, ensure_ascii=False)


def comment(text: str) -> str:
    """`text` safe on one comment line: no line breaks or control characters."""
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", text)


def write_draft(draft: Draft, directory: Path, now: dt.datetime) -> list[Path]:
    """Write the draft's files into `directory`; refuse to overwrite any of them."""
    paths = [directory / name for name in FILES]
    existing = [p for p in paths if p.exists()]
    if existing:
        raise ConfigError(
            "already exists: refusing to overwrite a config; choose an empty directory",
            file=str(existing[0]),
        )
    if directory.exists() and not directory.is_dir():
        raise ConfigError("exists and is not a directory", file=str(directory))
    (directory / "rules").mkdir(parents=True, exist_ok=True)
    texts = (config_text(draft, now), rules_text(draft), HOLDS)
    for path, text in zip(paths, texts, strict=True):
        path.write_text(text, encoding="utf-8")
    return paths


HOLDS = """\
# Legal holds (owned by legal; re-read before every batch). None yet: `holds: []` says so.
freeze: false
holds: []
"""


def config_text(draft: Draft, now: dt.datetime) -> str:
    """The draft's ``retention.yaml``."""
    where = f"schema {draft.schema!r} of a {draft.dialect}" if draft.schema else draft.dialect
    lines = [
        f"# Draft configuration written by `retention discover` on {now:%Y-%m-%d} from the",
        f"# {comment(where)} database below. Every line marked `guess:` was inferred from the",
        "# schema and a small sample of values (never written here); check each one against",
        "# the database and your privacy policy, then `retention validate -c retention.yaml`.",
        "state_db: sqlite:///retention-state.db",
        "rules: [rules/]",
        "holds: holds.yaml",
        "dry_run: true                 # nothing is changed until an operator sets false",
        "audit: {keys: hmac}           # set RETENTION_HMAC_KEY before `plan` or `run`",
        "stores:",
        f"  {STORE}:",
        "    kind: sql",
        f"    url: {q(draft.url)}"
        + (
            f"  # password not written: set RETENTION_STORES__{STORE.upper()}__URL"
            if draft.password_dropped
            else ""
        ),
    ]
    subject = draft.subject
    if subject is None:
        lines += [
            "# guess: no table looks like the accounts or customers records belong to",
            "subjects: {}",
        ]
    else:
        lines += [
            "subjects:",
            f"  # guess: {comment(subject.evidence)}",
            f"  {q(subject.name)}:",
            f"    store: {STORE}",
            f"    table: {q(_qualified(draft, subject.table))}",
            f"    key: {q(subject.key)}",
            *_mapping("events", subject.events, indent=4),
        ]
    lines.append("datasets:" if draft.datasets else "datasets: {}")
    for table, why in draft.skipped:
        lines.append(f"  # not a dataset: table {comment(table)!s}: {comment(why)}")
    for ds in draft.datasets:
        lines += _dataset(draft, ds)
    return "\n".join(lines) + "\n"


def _qualified(draft: Draft, table: str) -> str:
    return f"{draft.schema}.{table}" if draft.schema else table


def _guessed(value: str, guess: Guess) -> str:
    return f"{q(value)}  # guess: {comment(guess.evidence)}"


def _mapping(name: str, entries: Mapping[str, Guess], indent: int) -> list[str]:
    pad = " " * indent
    if not entries:
        return [f"{pad}{name}: {{}}"]
    return [f"{pad}{name}:"] + [
        f"{pad}  {q(key)}: {_guessed(guess.value, guess)}" for key, guess in entries.items()
    ]


def personal_fields(ds: DraftDataset) -> dict[str, Finding]:
    """Field name → finding: the kind of data where it is unique in the table, else the column."""
    kinds = [f.kind for f in ds.personal]
    fields: dict[str, Finding] = {}
    for finding in ds.personal:
        name = finding.kind if kinds.count(finding.kind) == 1 else snake(finding.column)
        while not name or name in fields:
            name = f"{name or 'field'}_{len(fields) + 1}"
        fields[name] = finding
    return fields


def _dataset(draft: Draft, ds: DraftDataset) -> list[str]:
    key = q(ds.key[0]) if len(ds.key) == 1 else "[" + ", ".join(q(k) for k in ds.key) + "]"
    lines = [
        f"  {q(ds.name)}:",
        f"    store: {STORE}",
        f"    table: {q(_qualified(draft, ds.table))}",
        f"    key: {key}  # the primary key",
        f"    category: {_guessed(ds.category.value, ds.category)}",
    ]
    if ds.subject_column is not None and draft.subject is not None:
        lines.append(
            f"    subject: {{type: {q(draft.subject.name)}, column: "
            f"{q(ds.subject_column.value)}}}  # guess: {comment(ds.subject_column.evidence)}"
        )
    lines += _mapping("timestamps", ds.timestamps, indent=4)
    fields = personal_fields(ds)
    if fields:
        lines.append("    personal:")
        for name, f in fields.items():
            lines.append(
                f"      {q(name)}: {q(f.column)}  # guess: {comment(f.evidence)}; "
                f"suggested strategy: {f.strategy}"
            )
    if ds.cascade:
        lines.append("    cascade:  # children deleted first, in the same transaction")
        for c in ds.cascade:
            lines.append(
                f"      - {{dataset: {q(c.dataset)}, column: {q(c.column)}}}"
                f"  # guess: {comment(c.evidence)}"
            )
    lines += [f"    # note: {comment(note)}" for note in ds.notes]
    return lines


def rules_text(draft: Draft) -> str:
    """The draft rule pack: no rules in force, a commented suggestion per dataset."""
    from .discover import shipped_rule_ids

    shipped = shipped_rule_ids()
    lines = [
        "# Draft rule pack written by `retention discover`. It holds no rules on purpose: a rule",
        "# deletes or anonymizes, so each one must come from your privacy policy. Below, one",
        "# commented suggestion per dataset; uncomment it, set `retain` from the policy, and",
        "# run `retention plan` to see what it would do before anything is executed.",
        "policy:",
        '  name: "Draft policy (discovered)"',
        "rules: []",
    ]
    subject = draft.subject
    for ds in draft.datasets:
        clock = "record.created" if "created" in ds.timestamps else None
        if (
            clock is None
            and ds.subject_column is not None
            and subject
            and "closed" in subject.events
        ):
            clock = "subject.closed"
        lines.append(f"# {comment(ds.name)} ({comment(ds.category.value)}):")
        ids = shipped.get(ds.category.value, ())
        if ids:
            lines.append(f"#   shipped rules for this category: {', '.join(ids[:4])}")
        if clock is None:
            lines.append("#   no clock found: declare a timestamp or a subject event first")
            continue
        fields = personal_fields(ds)
        action = "anonymize" if fields and ds.category.value != "account_profile" else "delete"
        lines += [
            f"#  - id: draft.{comment(ds.name)}.{action}",
            f"#    applies_to: {{dataset: {comment(ds.name)}}}",
            f"#    after: {clock}",
            "#    retain: P1Y          # from your policy",
            f"#    action: {action}",
        ]
        if action == "anonymize":
            strategies = ", ".join(f"{comment(n)}: {f.strategy}" for n, f in fields.items())
            lines.append(f"#    anonymize: {{{strategies}}}")
    return "\n".join(lines) + "\n"


__all__ = ["FILES", "config_text", "personal_fields", "rules_text", "write_draft"]
