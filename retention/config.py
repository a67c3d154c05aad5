"""Load and check a whole configuration: settings, rule packs and holds, together.

:func:`load_config` is the one entry point. It parses every file with line tracking, applies
environment overrides and per-rule overrides, and checks every cross-reference (datasets,
categories, subjects, events, personal fields, stores). Problems are collected and raised as one
:class:`~retention.errors.ConfigErrors`, each naming the file, the line and the field, before
anything runs. Live checks against the stores (tables and columns exist) are in
:mod:`retention.validate`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from .catalog import pack_path, pack_reference
from .datasets import Dataset, applies
from .datasets import resolve as resolve_datasets
from .errors import ConfigError, ConfigErrors
from .holds import NO_HOLDS, HoldsFile
from .kinds import capabilities
from .rules import Rule, RulePack, apply_override
from .settings import DatasetConfig, FieldError, Settings, check_zone, sqlite_relative_to
from .templates import check_object_dataset
from .templates import subject_type as dataset_subject_type
from .yamlfile import LineMap, dotted, load_yaml, parse_yaml, read_text

CONFIG_ENV = "RETENTION_CONFIG"
ENV_PREFIX = "RETENTION_"


@dataclass(frozen=True)
class RuleOrigin:
    """Where a rule was declared, for error messages and `explain`."""

    file: str
    line: int | None
    policy: str
    index: int = 0
    lines: LineMap | None = field(default=None, compare=False, repr=False)

    def error(self, rule_id: str, message: str, path: Sequence[str | int]) -> ConfigError:
        """A ConfigError at `path` inside this rule (``("after",)``) in its pack file."""
        message = f"rule {rule_id}: {message}"
        if self.lines is None:
            return ConfigError(message, file=self.file, line=self.line, field=dotted(path))
        return self.lines.error(message, ("rules", self.index, *path))


@dataclass(frozen=True)
class Config:
    """A validated configuration: settings plus the rules in force."""

    settings: Settings
    rules: tuple[Rule, ...]
    origins: Mapping[str, RuleOrigin]
    path: Path | None
    holds_path: Path | None
    disabled_rules: tuple[str, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()  # (file, text as read) of every rule pack
    _lines: LineMap | None = field(default=None, compare=False, repr=False)
    # the holds file's last text and what it parsed to (see load_holds)
    _holds_seen: dict[str, tuple[str, HoldsFile]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # the last holds judged at a moment, and the judged copy (see holds_as_of)
    _holds_judged: dict[str, tuple[HoldsFile, dt.datetime, HoldsFile]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _datasets: dict[str, dict[str, Dataset]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def datasets_for(self, rule: Rule) -> list[str]:
        """The datasets a rule applies to, in config order."""
        return [name for name, ds in self.settings.datasets.items() if applies(rule, name, ds)]

    def rules_for(self, dataset: str) -> list[Rule]:
        """The rules that apply to one dataset, in declaration order."""
        return list(self.datasets[dataset].rules)

    @property
    def datasets(self) -> Mapping[str, Dataset]:
        """Every dataset, resolved once (:mod:`retention.datasets`), in config order."""
        if "all" not in self._datasets:
            self._datasets["all"] = resolve_datasets(self.settings, self.rules)
        return self._datasets["all"]

    def load_holds(self) -> HoldsFile:
        """Read the holds file now (it is re-read before every batch).

        The file is read on every call; it is parsed and checked again only when its text
        differs from the last read, so re-reading it per batch costs a read, not a YAML parse.
        Equal text gives the same (frozen) HoldsFile object.
        """
        if self.holds_path is None:
            return NO_HOLDS
        text = read_text(self.holds_path)
        seen = self._holds_seen.get("last")
        if seen is not None and seen[0] == text:
            return seen[1]
        holds = _check_holds(
            *parse_yaml(text, str(self.holds_path)), self.settings, {r.id for r in self.rules}
        )
        self._holds_seen["last"] = (text, holds)
        return holds

    def holds_as_of(self, moment: dt.datetime) -> HoldsFile:
        """The holds file read now and judged at `moment` (expiry dates in the config's zone).

        Like :meth:`load_holds`, an unchanged file at the same moment gives the same object:
        a batch loop tells "the holds changed" by identity, and must not see a change (and
        retry for ever) where there is none.
        """
        holds = self.load_holds()
        judged = self._holds_judged.get("last")
        if judged is not None and judged[0] is holds and judged[1] == moment:
            return judged[2]
        result = holds.as_of(moment, self.settings.zone())
        self._holds_judged["last"] = (holds, moment, result)
        return result

    def locate(self, where: str) -> tuple[str | None, int | None]:
        """The file and line that declare `where`: a dotted settings path
        (``datasets.tickets.table``) or ``rule ID: field`` (in the rule's pack)."""
        rule_id, _, rest = where.removeprefix("rule ").partition(": ")
        if where.startswith("rule ") and rule_id in self.origins:
            origin = self.origins[rule_id]
            head, _, below = rest.partition(".")
            # a `where` key is one name, dotted or not (``where.subject.country``)
            fields = [head, below] if head == "where" and below else rest.split(".")
            path: list[str | int] = ["rules", origin.index, *fields]
            line = origin.lines.line_of(path) if origin.lines is not None else origin.line
            return origin.file, line
        if self._lines is None:
            return None, None
        parts: list[str | int] = []
        for part in re.split(r"\.(?![^\[]*\])", where):
            name, *indexes = part.replace("]", "").split("[")
            parts.append(name)
            parts += [int(i) for i in indexes if i.isdigit()]
        return self._lines.file, self._lines.line_of(parts)

    def fingerprint(self) -> str:
        """A stable digest of the settings (secrets excluded) and rules, recorded with each run."""
        import hashlib
        import json

        payload = {
            "settings": self.settings.model_dump(mode="json"),
            "rules": [rule.model_dump(mode="json") for rule in self.rules],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def config_path_from_env(explicit: str | None) -> Path | None:
    """`--config` if given, else RETENTION_CONFIG, else None (env-only configuration)."""
    value = explicit or os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


def load_config(path: Path | None, replace: Mapping[str, Any] | None = None) -> Config:
    """Parse and check everything; raise ConfigErrors naming file, line and field.

    `replace`: settings that stand in for the file's (`plan --rules NEW --holds NEW` plans
    the same config under other rules); their paths should be absolute.
    """
    data: Any = {}
    lines = LineMap(str(path) if path else "<environment>")
    if path is not None:
        data, lines = load_yaml(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise lines.error("the config file must be a mapping of settings", ())
    if replace:
        data = {**data, **replace}
    base = path.parent if path is not None else Path.cwd()
    try:
        settings = Settings(**{str(key): value for key, value in data.items()})
    except ValidationError as exc:
        raise _from_validation(exc, lines, data, model=Settings, env_prefix=ENV_PREFIX) from None
    except SettingsError as exc:
        raise _env_json_error(exc) from None
    settings = _resolve_paths(settings, base)

    errors: list[ConfigError] = []
    errors += _check_settings(settings, lines)
    sources: list[tuple[str, str]] = []
    rules, origins = _load_rules(settings, base, lines, errors, sources)
    rules, disabled = _apply_overrides(rules, settings, lines, errors)
    config = Config(
        settings=settings,
        rules=tuple(rules),
        origins=origins,
        sources=tuple(sources),
        path=path,
        holds_path=Path(settings.holds) if settings.holds else None,
        disabled_rules=tuple(disabled),
        _lines=lines,
    )
    errors += _check_rules(config)
    if config.holds_path is not None:
        if not config.holds_path.is_file():
            errors.append(lines.error(f"holds file not found: {config.holds_path}", ("holds",)))
        else:
            try:
                config.load_holds()
            except ConfigErrors as exc:
                errors += exc.errors
            except ConfigError as exc:
                errors.append(exc)
    if errors:
        raise ConfigErrors(errors)
    return config


def load_holds(path: Path, settings: Settings, rule_ids: set[str]) -> HoldsFile:
    """Parse the holds file and check every name it scopes by exists."""
    return _check_holds(*load_yaml(path), settings, rule_ids)


def _check_holds(data: Any, lines: LineMap, settings: Settings, rule_ids: set[str]) -> HoldsFile:
    data = _holds_as_written(data, lines)
    try:
        holds = HoldsFile.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, lines, data, model=HoldsFile) from None
    errors: list[ConfigError] = []
    seen: dict[str, int | None] = {}
    for index, hold in enumerate(holds.holds):
        where: tuple[str | int, ...] = ("holds", index)
        if hold.id in seen:
            errors.append(
                lines.error(
                    f"duplicate hold id {hold.id!r} (first on line {seen[hold.id]})",
                    (*where, "id"),
                )
            )
        else:
            seen[hold.id] = lines.line_of((*where, "id"))
        for subject_type, ids in (hold.subjects or {}).items():
            if subject_type not in settings.subjects:
                errors.append(
                    lines.error(
                        f"unknown subject type {subject_type!r} "
                        f"(known: {_known(settings.subjects)})",
                        (*where, "subjects", subject_type),
                    )
                )
            elif not ids:
                # fail closed: an empty list would silently release the hold
                errors.append(
                    lines.error(
                        "an empty list holds no record: list the ids, or remove `subjects` "
                        "to hold every subject",
                        (*where, "subjects", subject_type),
                    )
                )
        for position, name in enumerate(hold.datasets or []):
            if name not in settings.datasets:
                errors.append(
                    lines.error(
                        f"unknown dataset {name!r} (known: {_known(settings.datasets)})",
                        (*where, "datasets", position),
                    )
                )
        for position, rule_id in enumerate(hold.rules or []):
            if rule_id not in rule_ids:
                errors.append(
                    lines.error(_unknown_rule(rule_id, rule_ids), (*where, "rules", position))
                )
    if errors:
        raise ConfigErrors(errors)
    return holds


_NO_HOLDS_SAID = "write `holds: []` to say there are no holds"


def _holds_as_written(data: Any, lines: LineMap) -> Any:
    """The holds file's data, refused unless it says what it holds, with every id as written.

    Fail closed: an empty or comment-only file (an editor's truncation, a half-written
    ConfigMap) is not "no holds" — it would release every hold for the next batch. The file
    must list its holds (``holds: []`` for none), unless it freezes everything. Hold ids,
    subject ids, dataset and rule names are taken as the text on the page, so ``0106`` is the
    id "0106", never a number; a list or mapping where an id belongs is an error.
    """
    if data is None:
        raise lines.error(f"the holds file is empty: {_NO_HOLDS_SAID}", ())
    if not isinstance(data, dict):
        raise lines.error(f"the holds file must be a mapping with `holds:`; {_NO_HOLDS_SAID}", ())
    if "holds" not in data and data.get("freeze") is not True:
        raise lines.error(f"the holds file does not say what it holds: {_NO_HOLDS_SAID}", ())
    if "holds" in data and data["holds"] is None:
        raise lines.error(f"`holds:` is empty: {_NO_HOLDS_SAID}", ("holds",))
    if not isinstance(data.get("holds"), list):
        return data  # the model says what is wrong
    errors: list[ConfigError] = []
    holds = []
    for index, hold in enumerate(data["holds"]):
        where: tuple[str | int, ...] = ("holds", index)
        if not isinstance(hold, dict):
            holds.append(hold)
            continue
        hold = dict(hold)
        if "id" in hold:
            hold["id"] = _written(hold["id"], lines, (*where, "id"), errors)
        for scope in ("datasets", "rules"):
            if isinstance(hold.get(scope), list):
                hold[scope] = [
                    _written(name, lines, (*where, scope, i), errors)
                    for i, name in enumerate(hold[scope])
                ]
        subjects = hold.get("subjects")
        if isinstance(subjects, dict):
            hold["subjects"] = {
                kind: (
                    [
                        _written(value, lines, (*where, "subjects", str(kind), i), errors)
                        for i, value in enumerate(ids)
                    ]
                    if isinstance(ids, list)
                    else ids
                )
                for kind, ids in subjects.items()
            }
        holds.append(hold)
    if errors:
        raise ConfigErrors(errors)
    return {**data, "holds": holds}


def _written(
    value: Any, lines: LineMap, path: tuple[str | int, ...], errors: list[ConfigError]
) -> Any:
    """A scalar's text as written in the file; an error for a list, a mapping or nothing."""
    if isinstance(value, (dict, list)):
        kind = "mapping" if isinstance(value, dict) else "list"
        errors.append(lines.error(f"an id must be a plain value, not a {kind}", path))
        return value
    text = lines.text_of(path)
    if value is None or not text or not text.strip():
        errors.append(lines.error("an id cannot be empty", path))
        return value
    return text


def _known(names: Mapping[str, Any] | Sequence[str] | set[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "none declared"


def _unknown_rule(rule_id: str, known: Mapping[str, Any] | set[str]) -> str:
    """'unknown rule x' with the likely intended id, or the ids when there are few."""
    close = difflib.get_close_matches(rule_id, list(known), n=1)
    if close:
        return f"unknown rule {rule_id!r} (did you mean {close[0]!r}?)"
    if len(known) <= 10:
        return f"unknown rule {rule_id!r} (known: {_known(known)})"
    return f"unknown rule {rule_id!r} (`retention plan` lists the {len(known)} rules loaded)"


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Make file paths and SQLite URLs relative to the config file's directory."""

    def resolve(value: str) -> str:
        candidate = Path(value).expanduser()
        return str(candidate if candidate.is_absolute() else base / candidate)

    changes: dict[str, Any] = {
        "rules": [p if pack_reference(p) is not None else resolve(p) for p in settings.rules]
    }
    if settings.holds:
        changes["holds"] = resolve(settings.holds)
    changes["state_db"] = type(settings.state_db)(
        sqlite_relative_to(settings.state_db.get_secret_value(), base)
    )
    changes["stores"] = {name: store.relative_to(base) for name, store in settings.stores.items()}
    return settings.model_copy(update=changes)


def _check_settings(settings: Settings, lines: LineMap) -> list[ConfigError]:
    errors: list[ConfigError] = []
    stores = settings.stores
    for name, subject in settings.subjects.items():
        if subject.store not in stores:
            errors.append(
                lines.error(
                    f"unknown store {subject.store!r} (known: {_known(stores)})",
                    ("subjects", name, "store"),
                )
            )
        elif not capabilities(stores[subject.store].kind).subject_tables:
            errors.append(
                lines.error(
                    "subjects are read from a table: use a sql store", ("subjects", name, "store")
                )
            )
        if subject.timezone is not None:
            try:
                check_zone(subject.timezone)
            except ValueError as exc:
                errors.append(lines.error(str(exc), ("subjects", name, "timezone")))
    for name, ds in settings.datasets.items():
        errors += _check_dataset(name, ds, settings, lines)
    return errors


def _check_dataset(
    name: str, ds: DatasetConfig, settings: Settings, lines: LineMap
) -> list[ConfigError]:
    errors: list[ConfigError] = []
    where = ("datasets", name)
    store = settings.stores.get(ds.store)
    if store is None:
        return [
            lines.error(
                f"unknown store {ds.store!r} (known: {_known(settings.stores)})", (*where, "store")
            )
        ]
    can = capabilities(store.kind)
    expected = can.locator
    if getattr(ds, expected) is None:
        given = next(n for n in ("table", "prefix", "glob") if getattr(ds, n) is not None)
        errors.append(
            lines.error(
                f"a dataset on a {store.kind} store is located by `{expected}`, not `{given}`",
                (*where, given),
            )
        )
    many = isinstance(ds.subject, list)
    if many and not can.subject_tables and can.subject_link == "column":
        errors.append(
            lines.error(
                f"a dataset on a {store.kind} store has one subject: several are joined in "
                "SQL, on sql stores only",
                (*where, "subject"),
            )
        )
    for position, link in enumerate(ds.subject_links):
        at: tuple[str | int, ...] = (*where, "subject", position) if many else (*where, "subject")
        subject = settings.subjects.get(link.type)
        if subject is None:
            errors.append(
                lines.error(
                    f"unknown subject type {link.type!r} (known: {_known(settings.subjects)})",
                    (*at, "type"),
                )
            )
        elif can.subject_link == "column" and can.subject_tables and subject.store != ds.store:
            errors.append(
                lines.error(
                    f"subject type {link.type!r} lives in store {subject.store!r}; a SQL "
                    f"dataset must share its subjects' store so events are joined in SQL",
                    (*at, "type"),
                )
            )
    for index, cascade in enumerate(ds.cascade):
        child = settings.datasets.get(cascade.dataset)
        path = (*where, "cascade", index, "dataset")
        if child is None:
            errors.append(lines.error(f"unknown dataset {cascade.dataset!r}", path))
        elif child.store != ds.store:
            errors.append(lines.error("a cascade child must live in the same store", path))
    if ds.quarantine is not None and not can.quarantine:
        errors.append(
            lines.error(
                f"a dataset on a {store.kind} store has no quarantine (SQL tables, buckets and "
                "file trees do)",
                (*where, "quarantine"),
            )
        )
    if can.subject_link == "template":
        for message, at in check_object_dataset(ds, can, settings.subjects):
            errors.append(lines.error(message, (*where, *at)))
    if ds.purge_after is not None and not can.purges:
        errors.append(
            lines.error(
                f"`purge_after` is for lake tables; a {store.kind} store's deletes are final",
                (*where, "purge_after"),
            )
        )
    if ds.timezone is not None:
        try:
            check_zone(ds.timezone)
        except ValueError as exc:
            errors.append(lines.error(str(exc), (*where, "timezone")))
    return errors


def _load_rules(
    settings: Settings,
    base: Path,
    config_lines: LineMap,
    errors: list[ConfigError],
    sources: list[tuple[str, str]],
) -> tuple[list[Rule], dict[str, RuleOrigin]]:
    """The rules of every pack, where each was declared; each pack file's text as read is
    appended to `sources` (a run stores them: `retention audit rules`)."""
    rules: list[Rule] = []
    origins: dict[str, RuleOrigin] = {}
    for position, location in enumerate(settings.rules):
        shipped = pack_reference(location)
        if shipped is not None:
            try:
                location = str(pack_path(shipped))
            except ConfigError as exc:
                errors.append(config_lines.error(exc.message, ("rules", position)))
                continue
        elif not Path(location).exists():
            errors.append(
                config_lines.error(f"rule pack not found: {location}", ("rules", position))
            )
            continue
        for file in _pack_files(Path(location)):
            try:
                text = read_text(file)
                data, lines = parse_yaml(text, str(file))
            except ConfigError as exc:
                errors.append(exc)
                continue
            sources.append((str(file), text))
            try:
                pack = RulePack.model_validate(data)
            except ValidationError as exc:
                errors += _from_validation(exc, lines, data, model=RulePack).errors
                continue
            for index, rule in enumerate(pack.rules):
                line = lines.line_of(("rules", index))
                if rule.id in origins:
                    first = origins[rule.id]
                    errors.append(
                        lines.error(
                            f"duplicate rule id {rule.id!r} (first declared in "
                            f"{first.file}:{first.line})",
                            ("rules", index, "id"),
                        )
                    )
                    continue
                origins[rule.id] = RuleOrigin(str(file), line, pack.policy.name, index, lines)
                rules.append(rule)
    return rules, origins


def _pack_files(location: Path) -> list[Path]:
    if location.is_dir():
        return sorted(
            p for p in location.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
        )
    return [location]


def _apply_overrides(
    rules: list[Rule], settings: Settings, lines: LineMap, errors: list[ConfigError]
) -> tuple[list[Rule], list[str]]:
    by_id = {rule.id: rule for rule in rules}
    disabled: list[str] = []
    for rule_id, override in settings.rule_overrides.items():
        path = ("rule_overrides", rule_id)
        if rule_id not in by_id:
            errors.append(lines.error(f"override for {_unknown_rule(rule_id, by_id)}", path))
            continue
        if not override.enabled:
            disabled.append(rule_id)
            continue
        changes = override.model_dump(exclude={"enabled"}, exclude_none=True)
        try:
            by_id[rule_id] = apply_override(by_id[rule_id], changes)
        except ValidationError as exc:
            errors += _from_validation(exc, lines, changes, prefix=path).errors
    return [by_id[r.id] for r in rules if r.id not in disabled], disabled


def _check_rules(config: Config) -> list[ConfigError]:
    """Cross-reference every rule against datasets, subjects and settings."""
    errors: list[ConfigError] = []
    settings = config.settings
    categories = {ds.category for ds in settings.datasets.values()}
    for rule in config.rules:
        origin = config.origins[rule.id]

        def err(
            message: str, *path: str | int, origin: RuleOrigin = origin, rule: Rule = rule
        ) -> None:
            errors.append(origin.error(rule.id, message, path))

        target = rule.applies_to
        if target.dataset is not None and target.dataset not in settings.datasets:
            err(
                f"unknown dataset {target.dataset!r} (known: {_known(settings.datasets)})",
                "applies_to",
                "dataset",
            )
            continue
        if target.category is not None and target.category not in categories:
            err(
                f"no dataset carries category {target.category!r} (known: {_known(categories)}); "
                "declare one, or disable the rule with "
                f"rule_overrides: {{{rule.id}: {{enabled: false}}}}",
                "applies_to",
                "category",
            )
            continue
        if settings.hmac_key is None:
            for personal, spec in rule.anonymize.items():
                if spec.name == "hash":
                    err(
                        "the hash strategy needs hmac_key (set RETENTION_HMAC_KEY)",
                        "anonymize",
                        personal,
                    )
        for name in config.datasets_for(rule):
            ds = settings.datasets[name]
            for position, ref in enumerate(rule.after.refs):
                at: tuple[str | int, ...] = ("after",)
                if rule.after.combine != "one":
                    at = ("after", rule.after.combine, position)
                kind = settings.stores[ds.store].kind if ds.store in settings.stores else "sql"
                can = capabilities(kind)
                subject_name = rule.subject or dataset_subject_type(ds, kind)
                if ref.source == "record":
                    object_clock = can.record_clocks == "created" and ref.name == "created"
                    if ref.name not in ds.timestamps and not object_clock:
                        err(
                            f"dataset {name!r} declares no timestamp {ref.name!r} "
                            f"(declared: {_known(ds.timestamps)})"
                            if can.record_clocks == "declared"
                            else f"dataset {name!r} is an object store: its objects have only "
                            "record.created (LastModified or mtime)",
                            *at,
                        )
                elif subject_name is None:
                    err(f"dataset {name!r} has no subject, so {ref} cannot be read", *at)
                elif subject_name not in _subject_types(ds, kind):
                    continue  # reported once, at `subject`, below
                else:
                    subject = settings.subjects.get(subject_name)
                    if subject is not None and ref.name not in subject.events:
                        err(
                            f"subject type {subject_name!r} has no event {ref.name!r} "
                            f"(declared: {_known(subject.events)})",
                            *at,
                        )
            kind = settings.stores[ds.store].kind if ds.store in settings.stores else "sql"
            types = _subject_types(ds, kind)
            if rule.subject is not None and rule.subject not in types:
                err(
                    f"dataset {name!r} has no subject {rule.subject!r} "
                    f"(its subjects: {_known(types)})",
                    "subject",
                )
            if rule.subject_where and not types:
                err(
                    f"dataset {name!r} has no subject, so its subject's columns cannot be "
                    "filtered on",
                    "where",
                )
            for personal in rule.anonymize:
                if personal not in ds.personal:
                    err(
                        f"dataset {name!r} declares no personal field {personal!r} "
                        f"(declared: {_known(ds.personal)})",
                        "anonymize",
                        personal,
                    )
            store = settings.stores.get(ds.store)
            able = capabilities(store.kind) if store is not None else None
            if able is not None and rule.destructive and rule.action not in able.actions:
                err(
                    f"dataset {name!r} is an object store; objects can be deleted, not anonymized",
                    "action",
                )
            if rule.asserts_absent and able is not None and not able.where:
                err(
                    f"dataset {name!r} is an object store: assert_absent checks the columns of "
                    "SQL datasets; apply it to SQL datasets only",
                    "action",
                )
            if rule.subject_where and able is not None and not able.subject_tables:
                err(
                    f"dataset {name!r} is on a {store.kind if store else kind} store: a "
                    "`subject.*` filter is joined against the subject's table in SQL, so it "
                    "applies to SQL datasets only",
                    "where",
                )
            elif rule.where and able is not None and not able.where:
                err(
                    f"dataset {name!r} is an object store: objects have no fields for `where` "
                    "to filter on; apply the rule to SQL datasets only, or disable it with "
                    f"rule_overrides: {{{rule.id}: {{enabled: false}}}}",
                    "where",
                )
    return errors


def _subject_types(ds: DatasetConfig, kind: str) -> list[str]:
    """The subject types of a dataset: its `subject` links', or its template's placeholder."""
    if ds.subject is not None:
        return [link.type for link in ds.subject_links]
    primary = dataset_subject_type(ds, kind)
    return [primary] if primary is not None else []


def _env_json_error(exc: SettingsError) -> ConfigError:
    """A list or mapping setting whose environment variable is not JSON."""
    match = re.search(r'field "([^"]+)"', str(exc))
    name = match[1] if match else None
    variable = f"{ENV_PREFIX}{name.upper()}" if name else f"{ENV_PREFIX}*"
    variable = next((v for v in os.environ if v.upper() == variable), variable)
    return ConfigError(
        "not valid JSON: a list or mapping setting is given in the environment as JSON, e.g. "
        f"{ENV_PREFIX}RULES='[\"rules/\"]' or {ENV_PREFIX}LIMITS='{{\"max_fraction\": 0.2}}', "
        f"or one part at a time, e.g. {ENV_PREFIX}LIMITS__MAX_FRACTION=0.2",
        file=f"environment {variable}",
        field=name,
    )


def _from_validation(
    exc: ValidationError,
    lines: LineMap,
    data: Any,
    *,
    model: type[BaseModel] | None = None,
    prefix: tuple[str | int, ...] = (),
    env_prefix: str | None = None,
) -> ConfigErrors:
    """Turn pydantic's errors into ConfigErrors that name file, line and field.

    Errors about one value (a union gives one per member) become one error; errors are in the
    order of their lines; a value that came from a ``RETENTION_*`` variable names the variable.
    """
    found: dict[tuple[str | int, ...], list[str]] = {}
    for item in exc.errors():
        loc = tuple(item["loc"])
        message = _message(item, model, loc)
        ctx = item.get("ctx") or {}
        if isinstance(ctx.get("error"), FieldError):
            loc = (*loc, ctx["error"].field)
        elif item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, str(ctx["discriminator"]).strip("'"))
        messages = found.setdefault(_data_path(loc, data), [])
        if message not in messages:
            messages.append(message)
    errors = []
    for path, messages in found.items():
        message = "; ".join(messages)
        variable = _env_variable(env_prefix, path, data) if env_prefix else None
        if variable is not None:
            where = f"environment {variable}"
            errors.append(ConfigError(message, file=where, field=dotted((*prefix, *path))))
        else:
            errors.append(lines.error(message, (*prefix, *path)))
    errors.sort(key=lambda error: error.line or 0)
    return ConfigErrors(errors)


# How pydantic labels the member of a union it tried: ``str``, ``list[str]``, ``SqlStoreConfig``,
# ``function-after[...]``. Never a field name.
_UNION_LABEL = re.compile(r"[a-z_-]+\[.*\]|str|int|float|bool|none|[A-Z][A-Za-z0-9]*")


def _data_path(loc: tuple[int | str, ...], data: Any) -> tuple[str | int, ...]:
    """pydantic's loc as a path in the data: without union labels and discriminator tags."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        child = _child(node, part)
        if child is not _MISSING:
            node = child
        elif isinstance(part, str) and _UNION_LABEL.fullmatch(part):
            continue
        elif not last and isinstance(node, dict) and part in node.values():
            continue  # the discriminator's value (``sql`` of ``kind: sql``), not a key
        else:
            node = None
        path.append(part)
    return tuple(path)


_MISSING = object()


def _child(node: Any, part: str | int) -> Any:
    """`node[part]` if the data spells it out, else _MISSING."""
    if isinstance(node, dict):
        return node.get(part, _MISSING)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _MISSING


def _env_variable(env_prefix: str, path: Sequence[str | int], data: Any) -> str | None:
    """The environment variable that supplied the value at `path`, if one did.

    The environment wins over the file, so a variable naming exactly `path` is the source. A
    variable for an ancestor (``RETENTION_LIMITS`` holding JSON) or for a sibling below a part
    the file does not spell out is the source only where the file has nothing.
    """
    names = {name.upper(): name for name in os.environ}
    depth = 0
    node = data
    for part in path:
        node = _child(node, part)
        if node is _MISSING:
            break
        depth += 1
    for end in range(len(path), min(depth, len(path) - 1), -1):
        parts = path[:end]
        if not all(isinstance(part, str) for part in parts):
            continue
        name = (env_prefix + "__".join(str(part) for part in parts)).upper()
        if name in names:
            return names[name]
        if end < len(path) or depth < len(path):
            below = sorted(key for key in names if key.startswith(name + "__"))
            if below:
                return names[below[0]]
    return None


def _message(item: Mapping[str, Any], model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    kind = item.get("type")
    ctx = item.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field" + _field_hint(model, loc)
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        tags = [tag.strip().strip("'") for tag in str(ctx["expected_tags"]).split(",")]
        name = str(ctx["discriminator"]).strip("'")
        return f"unknown {name} {ctx['tag']!r} (use {_choices(tags)})"
    if kind == "union_tag_not_found":
        tags = _tags(_type_at(model, loc)) if model is not None else []
        return "required field is missing" + (f" (use {_choices(tags)})" if tags else "")
    message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
    if str(kind).startswith(("date_", "datetime_")):
        message += " (use YYYY-MM-DD, e.g. 2027-05-01)"
    return message


def _choices(names: Sequence[str]) -> str:
    """``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _field_hint(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    """For an unknown field: the field probably meant, else the fields allowed there."""
    parent = _type_at(model, loc[:-1]) if model is not None else None
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return ""
    allowed = list(parent.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (allowed: {', '.join(allowed)})"


def _type_at(model: Any, loc: Sequence[Any]) -> Any:
    """The type pydantic validated at `loc`, starting from `model`; None if it cannot be told."""
    kind: Any = model
    for part in loc:
        kind = _unwrap(kind)
        origin = get_origin(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            info = kind.model_fields.get(str(part))
            if info is None:
                return None
            kind = info.annotation
        elif origin is dict:
            kind = get_args(kind)[1]
        elif origin is list:
            kind = get_args(kind)[0]
        elif origin in (Union, types.UnionType):
            members = [
                m for m in get_args(kind) if part in (getattr(m, "__name__", None), *_tags(m))
            ]
            if not members:
                return None
            kind = members[0]
        else:
            return None
    return _unwrap(kind)


def _unwrap(kind: Any) -> Any:
    """`kind` without Annotated metadata and without `| None`."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
        elif get_origin(kind) in (Union, types.UnionType):
            members = [m for m in get_args(kind) if m is not type(None)]
            if len(members) != 1:
                return kind
            kind = members[0]
        else:
            return kind


def _tags(kind: Any) -> list[str]:
    """The `kind` values a discriminated union (or one of its models) accepts."""
    if get_origin(kind) in (Union, types.UnionType):
        return [tag for member in get_args(kind) for tag in _tags(member)]
    if isinstance(kind, type) and issubclass(kind, BaseModel) and "kind" in kind.model_fields:
        return [str(tag) for tag in get_args(kind.model_fields["kind"].annotation)]
    return []


__all__ = ["Config", "RuleOrigin", "config_path_from_env", "load_config", "load_holds"]
