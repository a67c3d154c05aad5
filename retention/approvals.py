"""Approvals: a rule marked ``approval: required`` acts live only once a person has approved
what it would do.

`retention approve RULE --by WHO` counts what the rule would act on now, per dataset, and writes
an approval into ``approvals.yaml`` beside the holds file: the rule, the fingerprint of its
definition, those counts, who and when, sealed with HMAC-SHA256 under ``hmac_key``. Before a
live run acts on a dataset, :func:`check_approval` requires an approval whose seal verifies,
whose fingerprint is the rule's current one, and whose count for that dataset, grown by
``limits.approval_margin`` (a share), is at least what the rule would act on now (acting on
fewer, as a run resumed after a crash does, stays covered); otherwise the rule is
refused (:class:`~retention.errors.ApprovalRequired`, exit 4, audited like a circuit breaker).
With ``limits.approval_share`` set, any destructive rule whose run would act on more than that
share of a dataset's records needs an approval the same way. Dry runs and plans are never held
back; they list the approvals a live run would wait for (:func:`needs_size`, then
:func:`check_approval`), and so do `serve`'s metrics and ``/readyz``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config
from .errors import ApprovalRequired, ConfigError
from .rules import Rule
from .yamlfile import load_yaml

FILE = "approvals.yaml"


@dataclass(frozen=True)
class Approval:
    """One person's approval of what one rule would do."""

    rule: str
    fingerprint: str
    counts: Mapping[str, int]  # dataset → records it would act on when approved
    approved_by: str
    approved_at: str
    seal: str

    def fields(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "fingerprint": self.fingerprint,
            "counts": dict(sorted(self.counts.items())),
            "approved_by": self.approved_by,
            "approved_at": self.approved_at,
        }


def approvals_path(config: Config) -> Path:
    """``approvals.yaml`` beside the holds file (or the config file without one)."""
    if config.holds_path is not None:
        return config.holds_path.parent / FILE
    return (config.path.parent if config.path is not None else Path.cwd()) / FILE


def fingerprint(rule: Rule) -> str:
    """SHA-256 of the rule's definition: any change to it voids its approvals."""
    return hashlib.sha256(rule.model_dump_json().encode()).hexdigest()


def _seal(key: bytes, fields: Mapping[str, Any]) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _key(config: Config) -> bytes:
    if config.settings.hmac_key is None:
        raise ConfigError(
            "approvals are sealed with hmac_key: set RETENTION_HMAC_KEY", field="hmac_key"
        )
    return config.settings.hmac_key.get_secret_value().encode()


def load_approvals(path: Path) -> dict[str, Approval]:
    """The approvals in `path` by rule (none if the file does not exist)."""
    if not path.is_file():
        return {}
    data, lines = load_yaml(path)
    entries = (data or {}).get("approvals") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise lines.error("an approvals file is a mapping with a list `approvals:`", ())
    found: dict[str, Approval] = {}
    for index, entry in enumerate(entries):
        try:
            approval = Approval(
                rule=str(entry["rule"]),
                fingerprint=str(entry["fingerprint"]),
                counts={str(k): int(v) for k, v in dict(entry["counts"]).items()},
                approved_by=str(entry["approved_by"]),
                approved_at=str(entry["approved_at"]),
                seal=str(entry["seal"]),
            )
        except (KeyError, TypeError, ValueError):
            raise lines.error(
                "an approval needs rule, fingerprint, counts, approved_by, approved_at and seal",
                ("approvals", index),
            ) from None
        found[approval.rule] = approval
    return found


def approve(
    config: Config, rule_id: str, counts: Mapping[str, int], by: str, now: dt.datetime
) -> Approval:
    """Write (or replace) the approval of `rule_id` for `counts`, sealed; return it."""
    rule = config.rule(rule_id)
    fields = {
        "rule": rule.id,
        "fingerprint": fingerprint(rule),
        "counts": dict(sorted(counts.items())),
        "approved_by": by,
        "approved_at": now.astimezone(dt.UTC).isoformat(),
    }
    approval = Approval(**fields, seal=_seal(_key(config), fields))  # type: ignore[arg-type]
    path = approvals_path(config)
    approvals = load_approvals(path)
    approvals[rule.id] = approval
    entries = [{**a.fields(), "seal": a.seal} for a in approvals.values()]
    text = "# written by `retention approve`; an edited entry no longer verifies\n"
    text += json.dumps({"approvals": entries}, indent=2, ensure_ascii=False) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".approvals-")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, path)
    return approval


def needs_size(config: Config, rule: Rule, planned: int, covered: int) -> bool:
    """Whether the approval share can apply to acting on `planned` of the `covered` records a
    rule covers, so that the dataset's size must be counted to decide (it is never smaller
    than what the rule covers)."""
    share = config.settings.limits.approval_share
    return (
        share is not None
        and rule.destructive
        and rule.approval != "required"
        and planned > share * max(covered, 1)
    )


def check_approval(
    config: Config, rule: Rule, dataset: str, planned: int, size: int | None = None
) -> None:
    """Raise ApprovalRequired unless `rule` holds a valid approval for acting on `planned`
    records of `dataset`, when it needs one: marked ``approval: required``, or (given the
    dataset's `size`) acting on more than ``limits.approval_share`` of it."""
    share = config.settings.limits.approval_share
    over_share = (
        share is not None and rule.destructive and size is not None and planned > share * size
    )
    if rule.approval != "required" and not over_share:
        return
    approval = load_approvals(approvals_path(config)).get(rule.id)
    how = f"run `retention approve {rule.id} --by YOU` after reviewing its plan"
    if approval is None:
        why = (
            f" (it would act on {planned} of {size} records of {dataset}, more than "
            f"limits.approval_share {share:.0%})"
            if over_share and rule.approval != "required"
            else ""
        )
        raise ApprovalRequired(
            f"rule {rule.id} needs an approval{why}: {how}", rule=rule.id, dataset=dataset
        )
    if not hmac.compare_digest(approval.seal, _seal(_key(config), approval.fields())):
        raise ApprovalRequired(
            f"the approval of rule {rule.id} does not verify (edited, or sealed with another "
            f"key): {how}",
            rule=rule.id,
            dataset=dataset,
        )
    if approval.fingerprint != fingerprint(rule):
        raise ApprovalRequired(
            f"rule {rule.id} changed since it was approved: {how}", rule=rule.id, dataset=dataset
        )
    approved = approval.counts.get(dataset, 0)
    margin = config.settings.limits.approval_margin
    if planned > approved * (1 + margin):  # less than approved (a run resumed) is covered
        raise ApprovalRequired(
            f"rule {rule.id} would now act on {planned} records of {dataset}, approved for "
            f"{approved} (limits.approval_margin {margin:.0%}): {how}",
            rule=rule.id,
            dataset=dataset,
        )


__all__ = [
    "Approval",
    "approvals_path",
    "approve",
    "check_approval",
    "fingerprint",
    "load_approvals",
    "needs_size",
]
