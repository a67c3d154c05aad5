"""Reading a live database into a draft configuration: `retention discover`'s library half.

:func:`discover` reflects a database's tables (SQLAlchemy's inspector), reads a small sample of
each text column's values, and guesses what a person writing the first config would decide: the
subject type (the table most foreign keys lead to, named like an account or customer, with
lifecycle timestamps), each table's key, clocks, link to the subject (a column, or a path of
foreign keys), the cascades its foreign keys imply, its personal columns and a data category
taken from the shipped packs. Every guess carries its evidence in words. Sampled values are
used to decide and then dropped: nothing in a :class:`Draft` holds one.

:mod:`retention.draftconfig` writes a draft as commented YAML files.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, column, create_engine, func, inspect, select, table
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SAWarning, SQLAlchemyError
from sqlalchemy.sql import sqltypes
from sqlalchemy.sql.elements import ColumnClause

from .errors import ConfigError, StoreError
from .personaldata import Finding, recognise, snake

SAMPLE_SIZE = 50

SUBJECT_WORDS = ("account", "customer", "user", "member", "client", "subscriber", "person",
                 "people", "patient", "student", "tenant")  # fmt: skip

# lifecycle event (DESIGN.md's names) → snake-case column names that say it
EVENT_NAMES: dict[str, tuple[str, ...]] = {
    "created": ("created", "created_at", "create_date", "created_on", "creation_date",
                "signup_date", "signed_up_at", "registered_at", "registration_date", "joined_at"),
    "last_active": ("last_login", "last_login_at", "last_seen", "last_seen_at", "last_active",
                    "last_active_at", "last_activity", "last_activity_at"),
    "closed": ("closed", "closed_at", "close_date", "cancelled_at", "canceled_at",
               "deactivated_at"),
    "terminated": ("terminated", "terminated_at", "contract_ended_at", "contract_end",
                   "contract_end_date", "ended_at"),
    "deleted": ("deleted", "deleted_at", "delete_date"),
    "erasure_requested": ("erasure_requested_at", "deletion_requested_at", "erasure_requested"),
}  # fmt: skip
_CREATED_RECORD = ("inserted_at", "timestamp", "logged_at", "occurred_at", "sent_at")
_UPDATED = ("updated", "updated_at", "last_update", "last_updated", "modified", "modified_at")

# shipped category → words of a table name that suggest it, most specific first
CATEGORY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("payment_cards", ("card", "cards")),
    ("job_applications", ("application", "applicant", "candidate", "job")),
    ("referral_emails", ("referral",)),
    ("cookies_analytics", ("analytics", "cookie", "pageview", "tracking")),
    ("security_logs", ("security", "login", "session", "auth")),
    ("access_logs", ("access",)),
    ("usage_logs", ("usage", "activity", "event", "log", "rental", "play")),
    ("chat_transcripts", ("chat", "transcript", "conversation", "message")),
    ("support_data", ("support", "ticket", "complaint")),
    ("marketing", ("newsletter", "marketing", "campaign", "subscription")),
    ("public_posts", ("post", "forum", "comment", "review")),
    ("accounting", ("ledger", "accounting", "journal")),
    ("billing", ("invoice", "billing", "payment", "order", "purchase", "receipt")),
    ("backups", ("backup",)),
    ("customer_content", ("document", "file", "upload", "attachment", "content", "note")),
    ("contact_details", ("contact", "address", "phone")),
    ("account_profile", ("profile",)),
)


@dataclass(frozen=True)
class Guess:
    """A value discover chose, and why."""

    value: str
    evidence: str


@dataclass(frozen=True)
class Link:
    """A foreign key: `columns` of `table` refer to `target_columns` of `target`."""

    table: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]
    ondelete: str | None = None

    def __str__(self) -> str:
        return (
            f"{self.table}({', '.join(self.columns)}) → "
            f"{self.target}({', '.join(self.target_columns)})"
        )


@dataclass(frozen=True)
class DraftSubject:
    """The subject type: a table whose rows are the people or accounts records belong to."""

    name: str
    table: str
    key: str
    events: Mapping[str, Guess]
    evidence: str


@dataclass(frozen=True)
class DraftCascade:
    """Rows of child dataset `dataset` refer to this one's through `column`."""

    dataset: str
    column: str
    evidence: str


@dataclass(frozen=True)
class DraftDataset:
    """One table as a dataset, with every guess about it."""

    name: str
    table: str
    key: tuple[str, ...]
    category: Guess
    timestamps: Mapping[str, Guess]
    subject_column: Guess | None
    subject_path: tuple[Link, ...]  # the foreign keys leading to the subject, when no column does
    personal: tuple[Finding, ...]
    cascade: tuple[DraftCascade, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Draft:
    """What discover found in one database."""

    url: str  # without its password
    password_dropped: bool
    schema: str | None
    dialect: str
    subject: DraftSubject | None
    datasets: tuple[DraftDataset, ...]
    skipped: tuple[tuple[str, str], ...]  # (table, why it is not a dataset)
    categories: frozenset[str] = field(default_factory=frozenset)


@dataclass
class _Table:
    name: str
    columns: list[dict[str, Any]]
    key: tuple[str, ...]
    links: list[Link]


def discover(url: str, schema: str | None = None, sample_size: int = SAMPLE_SIZE) -> Draft:
    """Reflect the database at `url` (tables of `schema`, or the default one) into a draft.

    A bad URL or a missing driver is a :class:`ConfigError`; a database that cannot be reached
    or read is a :class:`StoreError`.
    """
    parsed = _parse(url)
    try:
        engine = create_engine(parsed)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"cannot open the database URL: {type(exc).__name__}", field="URL"
        ) from None
    try:
        with warnings.catch_warnings():
            # odd schemas make the reflection warn (a foreign key SQLite cannot parse back):
            # what it could not read is simply not guessed from
            warnings.simplefilter("ignore", SAWarning)
            tables = _reflect(engine, schema)
        return _draft(engine, parsed, schema, tables, sample_size)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the database: {type(exc).__name__}") from None
    finally:
        engine.dispose()


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise ConfigError("not a SQLAlchemy database URL", field="URL") from None


def _reflect(engine: Engine, schema: str | None) -> list[_Table]:
    inspector = inspect(engine)
    parents = _partitions(engine, schema)
    found: dict[str, _Table] = {}
    inherited: dict[str, list[Link]] = {}
    for name in sorted(inspector.get_table_names(schema=schema)):
        links = [
            Link(
                parents.get(name, name),
                tuple(fk["constrained_columns"]),
                parents.get(fk["referred_table"], fk["referred_table"]),
                tuple(fk["referred_columns"]),
                (fk.get("options") or {}).get("ondelete"),
            )
            for fk in inspector.get_foreign_keys(name, schema=schema)
            if fk.get("referred_table")
        ]
        if name in parents:  # a partition: its foreign keys are its parent's
            inherited.setdefault(parents[name], []).extend(links)
            continue
        key = inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
        columns = [dict(c) for c in inspector.get_columns(name, schema=schema)]
        found[name] = _Table(name, columns, tuple(key), links)
    for parent, links in inherited.items():
        if parent in found:
            own = found[parent].links
            own.extend(link for link in dict.fromkeys(links) if link not in own)
    return list(found.values())


def _partitions(engine: Engine, schema: str | None) -> dict[str, str]:
    """PostgreSQL partitions (and inheriting tables) of `schema`, each with its parent: the
    parent is the dataset, and the partitions' foreign keys are read as its own."""
    if engine.dialect.name != "postgresql":
        return {}
    child = table("pg_class", column("oid"), column("relname"), column("relnamespace")).alias()
    parent = table("pg_class", column("oid"), column("relname")).alias()
    inherits = table("pg_inherits", column("inhrelid"), column("inhparent"))
    spaces = table("pg_namespace", column("oid"), column("nspname"))
    query = (
        select(child.c.relname, parent.c.relname)
        .select_from(inherits)
        .join(child, child.c.oid == inherits.c.inhrelid)
        .join(parent, parent.c.oid == inherits.c.inhparent)
        .join(spaces, spaces.c.oid == child.c.relnamespace)
        .where(spaces.c.nspname == (schema if schema is not None else func.current_schema()))
    )
    with engine.connect() as connection:
        return {str(name): str(of) for name, of in connection.execute(query)}


def _draft(
    engine: Engine, url: URL, schema: str | None, tables: list[_Table], sample_size: int
) -> Draft:
    categories = list(shipped_rule_ids())
    skipped: list[tuple[str, str]] = []
    usable: dict[str, _Table] = {}
    for t in tables:
        if "." in t.name:
            skipped.append((t.name, "its name contains a dot, which config reads as schema.table"))
        elif not t.key:
            skipped.append((t.name, "no primary key: declare `key` by hand to enforce rules on it"))
        else:
            usable[t.name] = t
    names = _dataset_names(list(usable))
    samples = {t.name: _samples(engine, schema, t, sample_size) for t in usable.values()}
    subject = _subject(usable)
    datasets = tuple(
        _dataset(t, names, usable, samples[t.name], subject, categories) for t in usable.values()
    )
    datasets = _with_cascades(datasets, usable, names, subject.table if subject else None)
    return Draft(
        url=url.set(password=None).render_as_string(hide_password=False),
        password_dropped=url.password is not None,
        schema=schema,
        dialect=engine.dialect.name,
        subject=subject,
        datasets=datasets,
        skipped=tuple(skipped),
        categories=frozenset(categories),
    )


def shipped_rule_ids() -> dict[str, tuple[str, ...]]:
    """The data categories the shipped rule packs' rules apply to, each with those rules' ids."""
    import yaml

    from .catalog import pack_text, shipped_packs

    found: dict[str, list[str]] = {}
    for pack in shipped_packs():
        for rule in yaml.safe_load(pack_text(pack)).get("rules") or []:
            category = (rule.get("applies_to") or {}).get("category")
            if isinstance(category, str):
                found.setdefault(category, []).append(str(rule.get("id")))
    return {category: tuple(ids) for category, ids in sorted(found.items())}


def _dataset_names(tables: Sequence[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for name in tables:
        base = snake(name) or "table"
        if base[0].isdigit():
            base = f"t_{base}"
        candidate, n = base, 2
        while candidate in names.values():
            candidate, n = f"{base}_{n}", n + 1
        names[name] = candidate
    return names


def _is_dated(col: Mapping[str, Any]) -> bool:
    return isinstance(col["type"], (sqltypes.DateTime, sqltypes.Date))


def _is_text(col: Mapping[str, Any]) -> bool:
    return isinstance(col["type"], sqltypes.String)


def _samples(
    engine: Engine, schema: str | None, t: _Table, size: int
) -> dict[str, list[str] | None]:
    """Up to `size` non-null values of each text column (None for other columns)."""
    found: dict[str, list[str] | None] = {}
    source = table(t.name, schema=schema)
    with engine.connect() as connection:
        for col in t.columns:
            if not _is_text(col) or size <= 0:
                found[col["name"]] = None
                continue
            values: ColumnClause[Any] = column(col["name"])
            query = select(values).select_from(source).where(values.is_not(None)).limit(size)
            found[col["name"]] = [str(v) for (v,) in connection.execute(query)]
    return found


def _event(column_name: str) -> str | None:
    name = snake(column_name)
    for event, names in EVENT_NAMES.items():
        if name in names:
            return event
    return None


def _subject(tables: Mapping[str, _Table]) -> DraftSubject | None:
    inbound: dict[str, set[str]] = {}
    for t in tables.values():
        for link in t.links:
            if link.target != t.name:
                inbound.setdefault(link.target, set()).add(t.name)
    best: tuple[int, DraftSubject] | None = None
    for t in tables.values():
        if len(t.key) != 1:
            continue
        events = {
            event: Guess(col["name"], f"a date or timestamp column named like the {event} event")
            for col in t.columns
            if _is_dated(col) and (event := _event(col["name"])) is not None
        }
        tokens = {token.removesuffix("s") for token in snake(t.name).split("_")}
        word = next((w for w in SUBJECT_WORDS if w in tokens), None)
        referrers = len(inbound.get(t.name, ()))
        if word is None and not (referrers >= 2 and events):
            continue
        score = referrers + (5 if word else 0) + 2 * len(events)
        reasons = [
            f"{referrers} other table{' refers' if referrers == 1 else 's refer'} to it by "
            "foreign key"
        ]
        if word:
            reasons.append(f"its name says {word}")
        if events:
            reasons.append(f"lifecycle timestamps: {', '.join(g.value for g in events.values())}")
        else:
            reasons.append("no lifecycle timestamps found: add its events (closed, …) by hand")
        candidate = DraftSubject(
            name=snake(word or t.name).rstrip("s") or "subject",
            table=t.name,
            key=t.key[0],
            events=events,
            evidence="; ".join(reasons),
        )
        if best is None or score > best[0]:
            best = (score, candidate)
    return best[1] if best is not None else None


def _dataset(
    t: _Table,
    names: Mapping[str, str],
    tables: Mapping[str, _Table],
    samples: Mapping[str, list[str] | None],
    subject: DraftSubject | None,
    categories: Sequence[str],
) -> DraftDataset:
    is_subject = subject is not None and subject.table == t.name
    by_name = [
        recognise(c["name"], samples.get(c["name"]), dated=_is_dated(c), people=is_subject)
        for c in t.columns
        if c["name"] not in t.key
    ]
    people = is_subject or any(f is not None for f in by_name)
    personal = tuple(
        f
        for c in t.columns
        if c["name"] not in t.key
        and (f := recognise(c["name"], samples.get(c["name"]), dated=_is_dated(c), people=people))
        is not None
    )
    birth = {f.column for f in personal if f.kind == "birth_date"}
    timestamps = _timestamps(t, birth)
    link, path, notes = _subject_link(t, tables, subject)
    return DraftDataset(
        name=names[t.name],
        table=t.name,
        key=t.key,
        category=_category(t.name, personal, is_subject, categories, names[t.name]),
        timestamps=timestamps,
        subject_column=link,
        subject_path=path,
        personal=personal,
        cascade=(),
        notes=notes,
    )


def _timestamps(t: _Table, birth: set[str]) -> dict[str, Guess]:
    found: dict[str, Guess] = {}
    dated = [c["name"] for c in t.columns if _is_dated(c) and c["name"] not in birth]
    table_date = {f"{snake(t.name)}_date", f"{snake(t.name).rstrip('s')}_date"}
    for name in dated:
        snaked = snake(name)
        if "created" not in found and (
            snaked in EVENT_NAMES["created"] or snaked in _CREATED_RECORD or snaked in table_date
        ):
            found["created"] = Guess(name, "named like the moment the row was created")
    for name in dated:
        if any(g.value == name for g in found.values()):
            continue
        snaked = snake(name)
        if snaked in _UPDATED and "updated" not in found:
            found["updated"] = Guess(name, "named like the moment the row last changed")
            continue
        stamp = snaked.removesuffix("_at").removesuffix("_date").removesuffix("_on") or snaked
        if stamp in found:
            stamp = snaked
        if stamp not in found:
            found[stamp] = Guess(name, "a date or timestamp column")
    if "created" not in found and len(dated) == 1 and dated[0] not in birth:
        only = next(k for k, g in found.items() if g.value == dated[0])
        found["created"] = Guess(dated[0], "the table's only timestamp; check it is its creation")
        del found[only]
    return found


def _subject_link(
    t: _Table, tables: Mapping[str, _Table], subject: DraftSubject | None
) -> tuple[Guess | None, tuple[Link, ...], tuple[str, ...]]:
    if subject is None:
        return None, (), ()
    if t.name == subject.table:
        return Guess(subject.key, "this is the subject table: its key is the subject"), (), ()
    for link in t.links:
        if link.target == subject.table and len(link.columns) == 1:
            return Guess(link.columns[0], f"foreign key {link}"), (), ()
    path = _path_to(t.name, subject.table, tables)
    if path:
        steps = " then ".join(str(link) for link in path)
        note = (
            f"reaches {subject.name} only through foreign keys ({steps}); a dataset's subject "
            "must be a column of its own table, so none is declared: its rows go with their "
            "parent's by `cascade`"
        )
        return None, path, (note,)
    return None, (), (f"no foreign key path leads to {subject.table}: no subject declared",)


def _path_to(start: str, goal: str, tables: Mapping[str, _Table]) -> tuple[Link, ...]:
    """The shortest chain of single-column foreign keys from `start` to `goal` (≤ 4 steps)."""
    queue: deque[tuple[str, tuple[Link, ...]]] = deque([(start, ())])
    seen = {start}
    while queue:
        name, path = queue.popleft()
        if len(path) >= 4 or name not in tables:
            continue
        for link in tables[name].links:
            if len(link.columns) != 1 or link.target in seen:
                continue
            step = (*path, link)
            if link.target == goal:
                return step
            seen.add(link.target)
            queue.append((link.target, step))
    return ()


def _category(
    name: str,
    personal: Sequence[Finding],
    is_subject: bool,
    categories: Sequence[str],
    fallback: str,
) -> Guess:
    words = {w.rstrip("s") for w in snake(name).split("_")} | set(snake(name).split("_"))
    if is_subject:
        return Guess("account_profile", "the subject table: its rows are the accounts' profiles")
    if any(f.kind == "card_number" for f in personal) and "payment_cards" in categories:
        return Guess("payment_cards", "it holds card numbers")
    for category, hints in CATEGORY_WORDS:
        hit = next((h for h in hints if h in words), None)
        if hit is not None and category in categories:
            return Guess(category, f"a shipped category; the table's name says {hit!r}")
    return Guess(fallback, "no shipped category matched its name: named after the table")


def _with_cascades(
    datasets: tuple[DraftDataset, ...],
    tables: Mapping[str, _Table],
    names: Mapping[str, str],
    subject_table: str | None,
) -> tuple[DraftDataset, ...]:
    """Each parent's cascade children, from foreign keys onto its key; an edge that would close
    a cycle (which config refuses) is left out with a note."""
    children: dict[str, list[DraftCascade]] = {}
    notes: dict[str, list[str]] = {}
    reach: dict[str, set[str]] = {n: set() for n in tables}  # parent → every descendant

    def closes_cycle(parent: str, child: str) -> bool:
        return child == parent or parent in reach[child]

    for t in tables.values():
        for link in t.links:
            parent = tables.get(link.target)
            if parent is None:
                continue
            if len(link.columns) != 1 or tuple(link.target_columns) != parent.key:
                notes.setdefault(parent.name, []).append(
                    f"foreign key {link} is not a single column onto the key: no cascade declared"
                )
                continue
            if subject_table == t.name:
                notes.setdefault(parent.name, []).append(
                    f"foreign key {link} leads from the subject table: deleting these rows "
                    "would delete accounts, so no cascade is declared; clear the link instead"
                )
                continue
            if closes_cycle(parent.name, t.name):
                notes.setdefault(parent.name, []).append(
                    f"foreign key {link} would close a cascade cycle: delete those rows by hand"
                )
                continue
            evidence = f"foreign key {link}"
            if link.ondelete:
                evidence += f" (ON DELETE {link.ondelete.upper()} in the database)"
            children.setdefault(parent.name, []).append(
                DraftCascade(names[t.name], link.columns[0], evidence)
            )
            grown = {t.name} | reach[t.name]
            for name, below in reach.items():
                if name == parent.name or parent.name in below:
                    below |= grown
    return tuple(
        DraftDataset(
            **{
                **ds.__dict__,
                "cascade": tuple(children.get(ds.table, ())),
                "notes": (*ds.notes, *notes.get(ds.table, ())),
            }
        )
        for ds in datasets
    )


__all__ = [
    "CATEGORY_WORDS",
    "Draft",
    "DraftCascade",
    "DraftDataset",
    "DraftSubject",
    "Guess",
    "Link",
    "discover",
    "shipped_rule_ids",
]
