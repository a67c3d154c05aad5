"""A policy diff: what new rules (or holds) would do differently from the current ones.

:func:`policy_diff` lists, record by record, what a dry run would act on under each of two
configurations — the same stores and datasets, the current rules and holds versus new ones — and
compares the two per rule and dataset: how many records become due, stop being due, or change
action (anonymize → delete, …). The lists come from the stores' own dry runs (the same code path
as a run, stopped before the change), so the diff agrees with two plans computed separately.
Sample keys are shown only as the audit log would keep them (``audit.keys``: plain, an HMAC, or
not at all). A diff is *destructive* when a record becomes due, or an anonymize becomes a delete:
that is what CI should ask a person to review.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import Config
from .hmackeys import KeyHmac
from .holds import HoldsFile
from .ledger import NoProbe
from .planner import targets
from .stores import Stores
from .stores.base import Enforcement, Store

SAMPLES = 5
ACTIONS = ("delete", "anonymize")  # in precedence: a due delete supersedes an anonymize


@dataclass(frozen=True)
class DiffRow:
    """One rule on one dataset, before and after."""

    rule: str
    dataset: str
    action: str
    before: int  # records it acts on under the current rules (0 if it is new)
    after: int  # … under the new rules (0 if it is gone)
    newly_due: int  # acted on now, by no rule before
    no_longer_due: int  # acted on before, by no rule now
    changed: int  # acted on before with another action, now with this one
    samples: Mapping[str, tuple[str, ...]]  # newly_due / no_longer_due / changed → keys

    @property
    def destructive(self) -> bool:
        """Whether it deletes or anonymizes records nothing touched, or deletes what was only
        anonymized."""
        return self.newly_due > 0 or (self.action == "delete" and self.changed > 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "dataset": self.dataset,
            "action": self.action,
            "before": self.before,
            "after": self.after,
            "newly_due": self.newly_due,
            "no_longer_due": self.no_longer_due,
            "changed_action": self.changed,
            "destructive": self.destructive,
            "sample_keys": {k: list(v) for k, v in self.samples.items()},
        }


@dataclass(frozen=True)
class PolicyDiff:
    """Every rule and dataset whose records change, as of `now`."""

    now: dt.datetime
    rows: tuple[DiffRow, ...]

    @property
    def destructive(self) -> bool:
        return any(row.destructive for row in self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "destructive": self.destructive,
            "rows": [row.as_dict() for row in self.rows],
        }


# (rule id, dataset) → (action, keys it would act on now)
Acting = dict[tuple[str, str], tuple[str, frozenset[str]]]


def would_act(
    config: Config,
    now: dt.datetime,
    holds: HoldsFile | None = None,
    stores: Mapping[str, Store] | None = None,
) -> Acting:
    """Every record each rule would act on as of `now`, from the stores' dry runs."""
    holds_file = config.load_holds() if holds is None else holds
    run = Enforcement(
        holds=lambda: holds_file,
        commit=None,
        should_stop=lambda: False,
        batch_size=config.settings.batch_size,
        batch_seconds=config.settings.batch_seconds,
        probe=NoProbe(),
    )
    found: Acting = {}
    with Stores(config.settings, stores) as opened:
        for target in targets(config, now):
            if target.rule.action not in ACTIONS:
                continue
            keys: set[str] = set()
            for batch in opened[target.dataset.store].enforce(target, run):
                for note in batch.notes:
                    mine = note.dataset in (None, target.dataset.name)
                    if mine and note.outcome.startswith("would ") and note.keys:
                        keys.update(note.keys)
            found[(target.rule.id, target.dataset.name)] = (target.rule.action, frozenset(keys))
    return found


def _effective(acting: Acting) -> dict[tuple[str, str], str]:
    """(dataset, key) → the action that applies to it (delete before anonymize)."""
    applies: dict[tuple[str, str], str] = {}
    for (_, dataset), (action, keys) in acting.items():
        for key in keys:
            current = applies.get((dataset, key))
            if current is None or ACTIONS.index(action) < ACTIONS.index(current):
                applies[(dataset, key)] = action
    return applies


def compare(
    before: Acting, after: Acting, now: dt.datetime, show: Any = None, samples: int = SAMPLES
) -> PolicyDiff:
    """The per-rule differences between two sets of dry runs. `show` turns a key into how it
    may be printed (None: keys are not shown)."""
    old, new = _effective(before), _effective(after)
    rows = []
    for rule, dataset in dict.fromkeys([*before, *after]):
        action, then = before.get((rule, dataset), (None, frozenset()))
        action_now, keys = after.get((rule, dataset), (None, frozenset()))
        mine = action_now or action
        assert mine is not None
        newly = sorted(k for k in keys if (dataset, k) not in old and new[(dataset, k)] == mine)
        gone = sorted(k for k in then if (dataset, k) not in new)
        changed = sorted(
            k
            for k in keys
            if (dataset, k) in old and old[(dataset, k)] != new[(dataset, k)] == mine
        )
        if not (newly or gone or changed or len(then) != len(keys)):
            continue
        shown = {
            label: tuple(show(k) for k in found[:samples]) if show is not None else ()
            for label, found in (
                ("newly_due", newly),
                ("no_longer_due", gone),
                ("changed", changed),
            )
        }
        rows.append(
            DiffRow(
                rule,
                dataset,
                mine,
                len(then),
                len(keys),
                len(newly),
                len(gone),
                len(changed),
                shown,
            )
        )
    return PolicyDiff(now, tuple(rows))


def key_display(config: Config) -> Any:
    """How sample keys may be shown under ``audit.keys``: as written, as their HMAC, or not."""
    mode = config.settings.audit.keys
    key = config.settings.hmac_key
    if mode == "plain":
        return str
    if mode == "hmac" and key is not None:
        return KeyHmac(key.get_secret_value().encode()).hexdigest
    return None


def policy_diff(
    current: Config,
    proposed: Config,
    now: dt.datetime,
    stores: Mapping[str, Store] | None = None,
) -> PolicyDiff:
    """What `proposed` (new rules or holds, the same stores) would do differently as of `now`."""
    return compare(
        would_act(current, now, stores=stores),
        would_act(proposed, now, stores=stores),
        now,
        key_display(current),
    )


def markdown(diff: PolicyDiff, names: Sequence[str] = ("current", "proposed")) -> str:
    """The diff as a Markdown table, for a pull request."""
    verdict = (
        "**destructive: review required**" if diff.destructive else "nothing newly destructive"
    )
    lines = [
        f"### Retention policy diff ({names[0]} → {names[1]}, as of "
        f"{diff.now.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        verdict,
        "",
    ]
    if not diff.rows:
        return "\n".join([*lines, "No record changes fate."]) + "\n"
    lines += [
        "| rule | dataset | action | before | after | newly due | no longer due | changed action |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in diff.rows:
        flag = " ⚠" if r.destructive else ""
        lines.append(
            f"| `{r.rule}`{flag} | `{r.dataset}` | {r.action} | {r.before} | {r.after} | "
            f"{r.newly_due} | {r.no_longer_due} | {r.changed} |"
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "DiffRow",
    "PolicyDiff",
    "compare",
    "key_display",
    "markdown",
    "policy_diff",
    "would_act",
]
