"""The retention schedule as a record of processing (GDPR Art. 30(1)(f): "the envisaged time
limits for erasure"): per dataset and category, each rule in force — its clock, period, action
and deadline, the policy clause it keeps, and whether its period is quoted from the policy or
chosen by whoever wrote the rule (``period_source``).

It is read from the configuration alone (no store is opened), so a DPO can file it with the
rest of the record and a pull request can diff it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .config import Config
from .durations import Duration

COLUMNS = (
    "dataset",
    "category",
    "rule",
    "action",
    "clock",
    "retain",
    "grace",
    "due_after",
    "within",
    "deadline_after",
    "period_source",
    "policy",
    "source",
    "summary",
)


@dataclass(frozen=True)
class ScheduleRow:
    """One rule on one dataset, as the record of processing lists it (durations as ISO 8601,
    counted from the clock; ``deadline_after`` is None where the rule sets no ``within``)."""

    dataset: str
    category: str | None
    rule: str
    action: str
    clock: str
    retain: str
    grace: str
    due_after: str
    within: str | None
    deadline_after: str | None
    period_source: str | None
    policy: str | None
    source: str | None
    summary: str | None


def processing_schedule(config: Config) -> list[ScheduleRow]:
    """Every rule × dataset in force, datasets in config order, rules in declaration order."""
    rows = []
    for name, dataset in config.datasets.items():
        for rule in dataset.rules:
            origin = config.origins.get(rule.id)
            deadline = rule.delay + rule.within if rule.within is not None else None
            rows.append(
                ScheduleRow(
                    dataset=name,
                    category=dataset.config.category,
                    rule=rule.id,
                    action=rule.action,
                    clock=str(rule.after),
                    retain=str(rule.retain),
                    grace=str(rule.grace),
                    due_after=str(rule.delay),
                    within=_text(rule.within),
                    deadline_after=_text(deadline),
                    period_source=rule.period_source,
                    policy=origin.policy if origin is not None else None,
                    source=rule.source,
                    summary=" ".join(rule.summary.split()) if rule.summary else None,
                )
            )
    return rows


def _text(duration: Duration | None) -> str | None:
    return None if duration is None else str(duration)


def as_json(rows: Sequence[ScheduleRow]) -> str:
    return json.dumps({"schedule": [asdict(row) for row in rows]}, indent=2, ensure_ascii=False)


def as_csv(rows: Sequence[ScheduleRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
    return buffer.getvalue()


def as_markdown(rows: Sequence[ScheduleRow]) -> str:
    """One section per dataset, a table of its rules (what a DPO files)."""
    lines = ["# Retention schedule", ""]
    for dataset in dict.fromkeys(row.dataset for row in rows):
        of_dataset = [row for row in rows if row.dataset == dataset]
        category = of_dataset[0].category
        lines += [f"## {dataset}" + (f" ({category})" if category else ""), ""]
        lines.append(
            "| rule | action | clock | due after | deadline after | period is | source clause |"
        )
        lines.append("| --- | --- | --- | --- | --- | --- | --- |")
        for row in of_dataset:
            cells = (
                row.rule,
                row.action,
                row.clock,
                row.due_after,
                row.deadline_after or "—",
                row.period_source or "not stated",
                row.source or "—",
            )
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


__all__ = ["COLUMNS", "ScheduleRow", "as_csv", "as_json", "as_markdown", "processing_schedule"]
