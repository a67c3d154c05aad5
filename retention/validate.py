"""Live checks: the state DB is usable, and every table and column that config names exists
in its store, with a usable type.

`retention validate` runs these after the static checks of :mod:`retention.config`. A missing
table or column is a :class:`~retention.errors.SchemaError` (bad input, exit 2); a store that
cannot be reached is a :class:`~retention.errors.StoreError` (exit 3). The state DB likewise:
a bad URL, a missing driver or a schema newer than this release is bad input, a server that
does not answer is unreachable. Hold ids that match no subject are warnings
(:func:`check_hold_ids`), which change no exit code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from .config import Config
from .datasets import datasets_by_store
from .holdcheck import HoldWarning, unmatched_hold_ids
from .statedb import check_state
from .stores import Stores
from .stores.base import Store


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one store or dataset: `where` is the field's dotted path, `file`
    and `line` where the config (or rule pack) declares it."""

    store: str
    where: str
    message: str
    unreachable: bool = False
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        place = self.file or "<config>"
        if self.line is not None:
            place += f":{self.line}"
        return f"{place}: {self.where}: {self.message}"


def _located(config: Config, problem: Problem) -> Problem:
    """`problem` with the file and line of the field it names."""
    file, line = config.locate(problem.where)
    return replace(problem, file=file, line=line)


def check_state_db(config: Config) -> list[Problem]:
    """The state DB's problems (:func:`~retention.statedb.check_state`), as validate reports."""
    return [
        Problem("state_db", "state_db", p.message, unreachable=p.unreachable)
        for p in check_state(config.settings.state_db.get_secret_value())
    ]


def check_stores(config: Config, stores: Mapping[str, Store] | None = None) -> list[Problem]:
    """Reach every store and check what config says of its datasets against it."""
    grouped = datasets_by_store(config.datasets)
    problems: list[Problem] = []
    with Stores(config.settings, stores) as opened:
        for name in config.settings.stores:
            for found in opened[name].check(grouped.get(name, [])):
                problem = Problem(name, found.where, found.message, found.unreachable)
                problems.append(_located(config, problem))
    return problems


@dataclass(frozen=True)
class SettingWarning:
    """A valid setting that a run would still refuse to start with."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def audit_key_warnings(config: Config) -> list[SettingWarning]:
    """An audit log told to keep keys as HMACs with no key to make them: reading and verifying
    need none, but `run` (live or dry) and `serve` refuse to write entries that prove nothing."""
    settings = config.settings
    if settings.audit.keys != "hmac" or settings.hmac_key is not None:
        return []
    message = (
        "hmac but no hmac_key is set: `run` and `serve` refuse until RETENTION_HMAC_KEY is "
        "set (or audit.keys is plain or none)"
    )
    return [SettingWarning("audit.keys", message)]


def deadline_warnings(config: Config) -> list[SettingWarning]:
    """Delete rules a keep rule can block (on their dataset, or a cascade child) that have no
    `within`: once the statutory minimum ends, a failure to delete would never be overdue."""
    found: dict[str, set[str]] = {}
    for dataset in config.datasets.values():
        keeps = {k.id for k in dataset.keeps}
        keeps |= {k.id for c in dataset.cascade for k in c.dataset.keeps}
        for rule in dataset.rules:
            if rule.action == "delete" and rule.within is None and keeps:
                found.setdefault(rule.id, set()).update(keeps)
    return [
        SettingWarning(
            f"rule {rule_id}: within",
            f"keep rule {', '.join(sorted(keeps))} can block this delete, and it has no "
            "`within`: once the minimum ends, a failure to delete is never overdue",
        )
        for rule_id, keeps in found.items()
    ]


def check_hold_ids(config: Config, stores: Mapping[str, Store] | None = None) -> list[HoldWarning]:
    """Warnings for the ids of active holds that no subject has (likely typos); not problems:
    `validate` still exits 0 on them."""
    with Stores(config.settings, stores) as opened:
        return unmatched_hold_ids(config, config.load_holds(), opened)


__all__ = [
    "Problem",
    "SettingWarning",
    "audit_key_warnings",
    "check_hold_ids",
    "check_state_db",
    "check_stores",
    "deadline_warnings",
]
