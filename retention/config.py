"""Load and check a whole configuration: settings, rule packs and holds, together.

:func:`load_config` is the one entry point. It parses every file with line tracking, applies
environment overrides and per-rule overrides, and checks every cross-reference (datasets,
categories, subjects, events, personal fields, stores). Problems are collected and raised as one
:class:`~retention.errors.ConfigErrors`, each naming the file, the line and the field, before
anything runs. Live checks against the stores (tables and columns exist) are in
:mod:`retention.validate`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import ConfigError, ConfigErrors
from .holds import NO_HOLDS, HoldsFile
from .rules import Rule, RulePack, apply_override
from .settings import DatasetConfig, Settings, SqlStoreConfig, check_zone
from .yamlfile import LineMap, dotted, load_yaml

CONFIG_ENV = "RETENTION_CONFIG"


@dataclass(frozen=True)
class RuleOrigin:
    """Where a rule was declared, for error messages and `explain`."""

    file: str
    line: int | None
    policy: str


@dataclass(frozen=True)
class Config:
    """A validated configuration: settings plus the rules in force."""

    settings: Settings
    rules: tuple[Rule, ...]
    origins: Mapping[str, RuleOrigin]
    path: Path | None
    holds_path: Path | None
    disabled_rules: tuple[str, ...] = ()
    _lines: LineMap | None = field(default=None, compare=False, repr=False)

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def datasets_for(self, rule: Rule) -> list[str]:
        """The datasets a rule applies to, in config order."""
        target = rule.applies_to
        return [
            name
            for name, ds in self.settings.datasets.items()
            if name == target.dataset or (target.category is not None and ds.category == target.category)
        ]

    def rules_for(self, dataset: str) -> list[Rule]:
        """The rules that apply to one dataset, in declaration order."""
        return [rule for rule in self.rules if dataset in self.datasets_for(rule)]

    def load_holds(self) -> HoldsFile:
        """Read the holds file now (it is re-read before every batch)."""
        if self.holds_path is None:
            return NO_HOLDS
        return load_holds(self.holds_path, self.settings, {r.id for r in self.rules})

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


def load_config(path: Path | None) -> Config:
    """Parse and check everything; raise ConfigErrors naming file, line and field."""
    data: Any = {}
    lines = LineMap(str(path) if path else "<environment>")
    if path is not None:
        data, lines = load_yaml(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise lines.error("the config file must be a mapping of settings", ())
    base = path.parent if path is not None else Path.cwd()
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise _from_validation(exc, lines, data, env_prefix="RETENTION_") from None
    settings = _resolve_paths(settings, base)

    errors: list[ConfigError] = []
    errors += _check_settings(settings, lines)
    rules, origins = _load_rules(settings, base, errors)
    rules, disabled = _apply_overrides(rules, settings, lines, errors)
    config = Config(
        settings=settings,
        rules=tuple(rules),
        origins=origins,
        path=path,
        holds_path=Path(settings.holds) if settings.holds else None,
        disabled_rules=tuple(disabled),
        _lines=lines,
    )
    errors += _check_rules(config)
    if errors:
        raise ConfigErrors(errors)
    if config.holds_path is not None:
        config.load_holds()
    return config


def load_holds(path: Path, settings: Settings, rule_ids: set[str]) -> HoldsFile:
    """Parse the holds file and check every name it scopes by exists."""
    data, lines = load_yaml(path)
    if data is None:
        data = {}
    try:
        holds = HoldsFile.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, lines, data) from None
    errors: list[ConfigError] = []
    seen: set[str] = set()
    for index, hold in enumerate(holds.holds):
        where: tuple[str | int, ...] = ("holds", index)
        if hold.id in seen:
            errors.append(lines.error(f"duplicate hold id {hold.id!r}", (*where, "id")))
        seen.add(hold.id)
        for subject_type in hold.subjects or {}:
            if subject_type not in settings.subjects:
                errors.append(
                    lines.error(
                        f"unknown subject type {subject_type!r} "
                        f"(known: {_known(settings.subjects)})",
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
                    lines.error(f"unknown rule {rule_id!r}", (*where, "rules", position))
                )
    if errors:
        raise ConfigErrors(errors)
    return holds


def _known(names: Mapping[str, Any] | Sequence[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "none declared"


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Make file paths and SQLite URLs relative to the config file's directory."""

    def resolve(value: str) -> str:
        candidate = Path(value).expanduser()
        return str(candidate if candidate.is_absolute() else base / candidate)

    changes: dict[str, Any] = {"rules": [resolve(p) for p in settings.rules]}
    if settings.holds:
        changes["holds"] = resolve(settings.holds)
    changes["state_db"] = type(settings.state_db)(
        _resolve_sqlite(settings.state_db.get_secret_value(), base)
    )
    stores = {}
    for name, store in settings.stores.items():
        if isinstance(store, SqlStoreConfig):
            url = _resolve_sqlite(store.url.get_secret_value(), base)
            store = store.model_copy(update={"url": type(store.url)(url)})
        elif store.kind == "filesystem":
            store = store.model_copy(update={"root": resolve(store.root)})
        stores[name] = store
    changes["stores"] = stores
    return settings.model_copy(update=changes)


def _resolve_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:"):
            return prefix + str(base / rest)
    return url


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
        elif stores[subject.store].kind != "sql":
            errors.append(
                lines.error("subjects are read from a table: use a sql store", ("subjects", name, "store"))
            )
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
        return [lines.error(f"unknown store {ds.store!r} (known: {_known(settings.stores)})", (*where, "store"))]
    expected = {"sql": "table", "s3": "prefix", "filesystem": "glob"}[store.kind]
    if getattr(ds, expected) is None:
        errors.append(
            lines.error(f"a dataset on a {store.kind} store is located by `{expected}`", where)
        )
    if ds.subject is not None:
        subject = settings.subjects.get(ds.subject.type)
        if subject is None:
            errors.append(
                lines.error(
                    f"unknown subject type {ds.subject.type!r} (known: {_known(settings.subjects)})",
                    (*where, "subject", "type"),
                )
            )
        elif store.kind == "sql" and subject.store != ds.store:
            errors.append(
                lines.error(
                    f"subject type {ds.subject.type!r} lives in store {subject.store!r}; a SQL "
                    f"dataset must share its subjects' store so events are joined in SQL",
                    (*where, "subject", "type"),
                )
            )
    for index, cascade in enumerate(ds.cascade):
        child = settings.datasets.get(cascade.dataset)
        path = (*where, "cascade", index, "dataset")
        if child is None:
            errors.append(lines.error(f"unknown dataset {cascade.dataset!r}", path))
        elif child.store != ds.store:
            errors.append(lines.error("a cascade child must live in the same store", path))
    if ds.timezone is not None:
        try:
            check_zone(ds.timezone)
        except ValueError as exc:
            errors.append(lines.error(str(exc), (*where, "timezone")))
    return errors


def _load_rules(
    settings: Settings, base: Path, errors: list[ConfigError]
) -> tuple[list[Rule], dict[str, RuleOrigin]]:
    rules: list[Rule] = []
    origins: dict[str, RuleOrigin] = {}
    for location in settings.rules:
        for file in _pack_files(Path(location), errors):
            try:
                data, lines = load_yaml(file)
            except ConfigError as exc:
                errors.append(exc)
                continue
            try:
                pack = RulePack.model_validate(data)
            except ValidationError as exc:
                errors += _from_validation(exc, lines, data).errors
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
                origins[rule.id] = RuleOrigin(str(file), line, pack.policy.name)
                rules.append(rule)
    return rules, origins


def _pack_files(location: Path, errors: list[ConfigError]) -> list[Path]:
    if location.is_dir():
        return sorted(
            p for p in location.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
        )
    if location.is_file():
        return [location]
    errors.append(ConfigError("rule pack not found", file=str(location), field="rules"))
    return []


def _apply_overrides(
    rules: list[Rule], settings: Settings, lines: LineMap, errors: list[ConfigError]
) -> tuple[list[Rule], list[str]]:
    by_id = {rule.id: rule for rule in rules}
    disabled: list[str] = []
    for rule_id, override in settings.rule_overrides.items():
        path = ("rule_overrides", rule_id)
        if rule_id not in by_id:
            errors.append(lines.error(f"override for unknown rule {rule_id!r}", path))
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

        def err(message: str, fieldname: str, origin: RuleOrigin = origin, rule: Rule = rule) -> None:
            errors.append(
                ConfigError(
                    f"rule {rule.id}: {message}", file=origin.file, line=origin.line, field=fieldname
                )
            )

        target = rule.applies_to
        if target.dataset is not None and target.dataset not in settings.datasets:
            err(f"unknown dataset {target.dataset!r} (known: {_known(settings.datasets)})", "applies_to.dataset")
            continue
        if target.category is not None and target.category not in categories:
            err(
                f"no dataset carries category {target.category!r} (known: {_known(categories)}); "
                f"declare one, or disable the rule with rule_overrides: {{{rule.id}: {{enabled: false}}}}",
                "applies_to.category",
            )
            continue
        if "hash" in {spec.name for spec in rule.anonymize.values()} and settings.hmac_key is None:
            err("the hash strategy needs hmac_key (set RETENTION_HMAC_KEY)", "anonymize")
        for name in config.datasets_for(rule):
            ds = settings.datasets[name]
            for ref in rule.after.refs:
                if ref.source == "record":
                    if ref.name not in ds.timestamps and not _object_clock(ds, settings, ref.name):
                        err(
                            f"dataset {name!r} declares no timestamp {ref.name!r} "
                            f"(declared: {_known(ds.timestamps)})",
                            "after",
                        )
                elif ds.subject is None:
                    err(f"dataset {name!r} has no subject, so {ref} cannot be read", "after")
                else:
                    subject = settings.subjects.get(ds.subject.type)
                    if subject is not None and ref.name not in subject.events:
                        err(
                            f"subject type {ds.subject.type!r} has no event {ref.name!r} "
                            f"(declared: {_known(subject.events)})",
                            "after",
                        )
            for personal in rule.anonymize:
                if personal not in ds.personal:
                    err(
                        f"dataset {name!r} declares no personal field {personal!r} "
                        f"(declared: {_known(ds.personal)})",
                        f"anonymize.{personal}",
                    )
            store = settings.stores.get(ds.store)
            if rule.action == "anonymize" and store is not None and store.kind != "sql":
                err(f"dataset {name!r} is an object store; objects can be deleted, not anonymized", "action")
    return errors


def _object_clock(ds: DatasetConfig, settings: Settings, name: str) -> bool:
    """Object stores always know `record.created` (LastModified / mtime)."""
    store = settings.stores.get(ds.store)
    return store is not None and store.kind != "sql" and name == "created"


def _from_validation(
    exc: ValidationError,
    lines: LineMap,
    data: Any,
    *,
    prefix: tuple[str | int, ...] = (),
    env_prefix: str | None = None,
) -> ConfigErrors:
    """Turn pydantic's errors into ConfigErrors that name file, line and field."""
    errors = []
    for item in exc.errors():
        path = _data_path(item["loc"], data)
        message = _message(item)
        full = (*prefix, *path)
        if env_prefix and not _in_data(path, data):
            variable = env_prefix + "__".join(str(p) for p in path).upper()
            if variable in os.environ:
                errors.append(ConfigError(message, file=f"environment {variable}", field=dotted(full)))
                continue
        errors.append(lines.error(message, full))
    return ConfigErrors(errors)


def _data_path(loc: tuple[int | str, ...], data: Any) -> tuple[str | int, ...]:
    """pydantic's loc without union/discriminator tags that are not in the data."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path.append(part)
        elif last or not isinstance(part, str) or part.startswith(("function-", "[")):
            if last and isinstance(part, str) and not part.startswith(("function-", "[")):
                path.append(part)
        elif isinstance(node, dict):
            # a discriminator tag or model name: not a real key, skip it
            continue
    return tuple(path)


def _in_data(path: Sequence[str | int], data: Any) -> bool:
    node = data
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def _message(item: Mapping[str, Any]) -> str:
    kind = item.get("type")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    message = str(item.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


__all__ = ["Config", "RuleOrigin", "config_path_from_env", "load_config", "load_holds"]
