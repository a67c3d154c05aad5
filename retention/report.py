"""The DPO report: what `retention` did under each promise in a period, and where things stand.

Per policy and rule: its summary and source clause; the records it deleted, anonymized and
cascaded in the period, from the audit log's live entries, and how many of those it deleted or
anonymized were acted on by their deadline and how many after it (each entry's per-record
facts; records of entries written before entries had facts count as neither); the records
reported still due after a live run ("lingering"); and, from a plan as of now, what is due,
overdue, held and blocked. Per hold: its reason, review date and what it covers now. Then the
audit chain's verification and the newest checkpoint that agrees with it. Days are counted in
the configured zone.

:func:`as_html` renders one self-contained page (inline CSS and SVG charts, no script, nothing
fetched), :func:`as_csv` one row per rule; :meth:`Report.as_dict` is the ``--json`` form.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .config import Config
from .holdsreport import hold_coverage
from .planner import make_plan
from .statedb import open_state

ACTED = {"delete": "deleted", "anonymize": "anonymized", "delete (cascade)": "cascaded"}
RULE_NUMBERS = (
    "deleted",
    "anonymized",
    "cascaded",
    "on_time",
    "late",
    "lingering",
    "due",
    "overdue",
    "held",
    "blocked",
)
"""A rule line's counts, in the order the page's columns and the CSV show them."""
CSV_COLUMNS = ("policy", "rule", "action", *RULE_NUMBERS, "to_act", "source")


@dataclass(frozen=True)
class RuleLine:
    """One rule: what it did in the period (live runs) and what a plan finds now."""

    policy: str
    rule: str
    action: str
    summary: str | None
    source: str | None
    deleted: int = 0
    anonymized: int = 0
    cascaded: int = 0
    on_time: int = 0  # deleted or anonymized by their deadline (or with no deadline)
    late: int = 0  # deleted or anonymized after their deadline
    lingering: int = 0  # reported still due and unheld after a live run, in the period
    due: int = 0
    overdue: int = 0
    held: int = 0
    blocked: int = 0
    to_act: int = 0


@dataclass(frozen=True)
class HoldLine:
    id: str
    active: bool
    reason: str | None
    review_by: str | None
    review_overdue: bool
    records: int


@dataclass(frozen=True)
class ChainState:
    """The audit log's verification when the report was made."""

    ok: bool
    entries: int
    problem: str | None
    checkpoints: int
    latest_checkpoint_seq: int | None
    latest_checkpoint_at: str | None


@dataclass(frozen=True)
class Report:
    start: dt.date
    end: dt.date
    now: dt.datetime
    zone: str
    rules: tuple[RuleLine, ...]
    holds: tuple[HoldLine, ...]
    daily: Mapping[str, Mapping[str, int]]  # rule → day (ISO) → records acted on
    chain: ChainState
    present: Mapping[str, int]  # the plan's distinct totals now (a record counted once)

    def totals(self) -> dict[str, int]:
        """What was done in the period, over every rule, and where things stand now, each
        record once however many rules match it."""
        fields = ("deleted", "anonymized", "cascaded", "on_time", "late", "lingering")
        done = {name: sum(getattr(line, name) for line in self.rules) for name in fields}
        wanted = ("due", "overdue", "held", "blocked")
        return done | {name: self.present.get(name, 0) for name in wanted}

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "now": self.now.isoformat(),
            "zone": self.zone,
            "totals": self.totals(),
            "rules": [asdict(line) for line in self.rules],
            "holds": [asdict(line) for line in self.holds],
            "daily": {rule: dict(days) for rule, days in self.daily.items()},
            "chain": asdict(self.chain),
        }


def build_report(config: Config, start: dt.date, end: dt.date, now: dt.datetime) -> Report:
    """The report of `config`'s rules for the days `start` to `end` (inclusive), as of `now`."""
    from .checkpoints import verify_everything

    zone = config.settings.zone()
    acted: dict[tuple[str, str], int] = defaultdict(int)  # (rule, deleted|…) → records
    daily: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        verification, checkpoints = verify_everything(engine, config.settings)
        from .audit import AuditLog

        for entry in AuditLog.from_settings(engine, config.settings).entries():
            day = dt.datetime.fromisoformat(entry.at).astimezone(zone).date()
            if entry.dry_run or entry.rule is None or not start <= day <= end:
                continue
            if entry.outcome == "done" and entry.action in ACTED:
                acted[entry.rule, ACTED[entry.action]] += entry.count
                if entry.action != "delete (cascade)":
                    daily[entry.rule][day.isoformat()] += entry.count
                    facts = entry.facts()
                    late = sum(1 for _, _, seconds in facts if seconds is not None)
                    acted[entry.rule, "late"] += late
                    acted[entry.rule, "on_time"] += len(facts) - late
            elif entry.outcome == "lingering":
                acted[entry.rule, "lingering"] += entry.count
    finally:
        engine.dispose()
    plan = make_plan(config, now, samples=0)
    now_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in plan.rules:
        for name in ("due", "overdue", "held", "blocked", "actionable"):
            now_counts[row.rule][name] += getattr(row, name)
    lines = []
    for rule in config.rules:
        origin = config.origins.get(rule.id)
        counts = now_counts[rule.id]
        lines.append(
            RuleLine(
                policy=origin.policy if origin is not None else "",
                rule=rule.id,
                action=rule.action,
                summary=" ".join(rule.summary.split()) if rule.summary else None,
                source=rule.source,
                deleted=acted[rule.id, "deleted"],
                anonymized=acted[rule.id, "anonymized"],
                cascaded=acted[rule.id, "cascaded"],
                on_time=acted[rule.id, "on_time"],
                late=acted[rule.id, "late"],
                lingering=acted[rule.id, "lingering"],
                due=counts["due"] if rule.destructive else 0,
                overdue=counts["overdue"],
                held=counts["held"],
                blocked=counts["blocked"],
                to_act=counts["actionable"],
            )
        )
    holds = tuple(
        HoldLine(
            id=row.id,
            active=row.active and not row.expired,
            reason=row.reason,
            review_by=row.review_by.isoformat() if row.review_by else None,
            review_overdue=row.review_overdue,
            records=row.records,
        )
        for row in hold_coverage(config, now=now).holds
    )
    problem = checkpoints.reason if verification.ok else verification.reason
    latest = checkpoints.latest
    chain = ChainState(
        ok=verification.ok and checkpoints.ok,
        entries=verification.entries,
        problem=problem,
        checkpoints=checkpoints.checked,
        latest_checkpoint_seq=latest.seq if latest is not None else None,
        latest_checkpoint_at=latest.at if latest is not None else None,
    )
    return Report(
        start=start,
        end=end,
        now=now,
        zone=zone.key,
        rules=tuple(lines),
        holds=holds,
        daily={rule: dict(sorted(days.items())) for rule, days in daily.items()},
        chain=chain,
        present=plan.totals(),
    )


def as_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)


def as_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for line in report.rules:
        row = asdict(line)
        writer.writerow({name: "" if row[name] is None else row[name] for name in CSV_COLUMNS})
    return buffer.getvalue()


# --- the page -------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2430;max-width:72rem}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:2rem 0 .5rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border-bottom:1px solid #d8dde6;padding:.3rem .5rem;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#17663a;font-weight:600}.bad{color:#a31515;font-weight:600}
.muted{color:#5c6675}.totals{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.totals div{border:1px solid #d8dde6;border-radius:6px;padding:.5rem .9rem}
.totals b{display:block;font-size:1.3rem}svg{max-width:100%}
"""


def as_html(report: Report) -> str:
    """One self-contained page: no script, no request leaves it."""
    e = html.escape
    totals = report.totals()
    tiles = "".join(
        f'<div data-total="{name}"><b>{value}</b>{e(name)}</div>' for name, value in totals.items()
    )
    chain = report.chain
    verdict = (
        f'<span class="ok" id="chain-verdict">intact</span>: {chain.entries} entries'
        if chain.ok
        else f'<span class="bad" id="chain-verdict">NOT intact</span>: {e(chain.problem or "")}'
    )
    if chain.latest_checkpoint_seq is not None:
        verdict += (
            f"; {chain.checkpoints} checkpoints agree, the newest at entry "
            f"{chain.latest_checkpoint_seq} ({e(chain.latest_checkpoint_at or '')})"
        )
    else:
        verdict += "; no checkpoint configured or found"
    sections = []
    for policy in dict.fromkeys(line.policy for line in report.rules):
        rows = "".join(_rule_row(line) for line in report.rules if line.policy == policy)
        sections.append(
            f"<h2>{e(policy or 'Rules')}</h2><table><thead><tr><th>rule</th><th>action</th>"
            '<th class="n">deleted</th><th class="n">anonymized</th><th class="n">cascaded</th>'
            '<th class="n">on time</th><th class="n">late</th><th class="n">lingering</th>'
            '<th class="n">due now</th><th class="n">overdue</th>'
            '<th class="n">held</th><th class="n">blocked</th><th>source</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>"
        )
    hold_rows = "".join(
        f'<tr data-hold="{e(h.id)}"><td>{e(h.id)}</td><td>{"yes" if h.active else "released"}'
        f"</td><td>{e(h.reason or '—')}</td><td>{e(h.review_by or '—')}"
        f"{' <span class=bad>(overdue)</span>' if h.review_overdue else ''}</td>"
        f'<td class="n">{h.records}</td></tr>'
        for h in report.holds
    )
    acted_per_rule = {line.rule: line.deleted + line.anonymized for line in report.rules}
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Retention report {report.start} to {report.end}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Retention report</h1><p class=muted>{report.start} to {report.end} "
        f"({e(report.zone)}); now: {report.now.isoformat(timespec='seconds')}</p>"
        f'<div class="totals">{tiles}</div>'
        f"<h2>Audit log</h2><p>{verdict}</p>"
        f"{''.join(sections)}"
        "<h2>Records acted on per day</h2>"
        f"{_daily_chart(report)}"
        "<h2>Acted on in the period, per rule</h2>"
        f"{_bars(acted_per_rule, 'acted')}"
        "<h2>Legal holds</h2><table><thead><tr><th>hold</th><th>active</th><th>reason</th>"
        f'<th>review by</th><th class="n">records</th></tr></thead><tbody>{hold_rows}'
        "</tbody></table>"
        "<h2>Held now, per hold</h2>"
        f"{_bars({h.id: h.records for h in report.holds if h.active}, 'held')}"
        "</body></html>\n"
    )


def _rule_row(line: RuleLine) -> str:
    e = html.escape
    cells = "".join(
        f'<td class="n" data-field="{name}">{getattr(line, name)}</td>' for name in RULE_NUMBERS
    )
    summary = f"<br><span class=muted>{e(line.summary)}</span>" if line.summary else ""
    return (
        f'<tr data-rule="{e(line.rule)}"><td>{e(line.rule)}{summary}</td><td>{e(line.action)}'
        f"</td>{cells}<td>{e(line.source or '—')}</td></tr>"
    )


def _bars(values: Mapping[str, int], kind: str) -> str:
    """A horizontal bar chart of `values` as inline SVG (empty: a line saying so)."""
    shown = [(label, n) for label, n in values.items() if n]
    if not shown:
        return "<p class=muted>nothing in this period</p>"
    width, row, label_width = 720, 22, 330
    biggest = max(n for _, n in shown)
    parts = []
    for index, (label, n) in enumerate(shown):
        y = index * row
        length = max(1, round((width - label_width - 60) * n / biggest))
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="12">{html.escape(label)}</text>'
            f'<rect x="{label_width}" y="{y + 4}" width="{length}" height="14" fill="#3b6fb6">'
            f"<title>{html.escape(label)}: {n}</title></rect>"
            f'<text x="{label_width + length + 6}" y="{y + 15}" font-size="12">{n}</text>'
        )
    height = row * len(shown)
    return (
        f'<svg role="img" aria-label="{kind} per item" data-chart="{kind}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{"".join(parts)}</svg>'
    )


def _daily_chart(report: Report) -> str:
    """Records acted on per day over the period, every rule stacked into one column a day."""
    per_day: dict[str, int] = defaultdict(int)
    for of_rule in report.daily.values():
        for day, n in of_rule.items():
            per_day[day] += n
    if not per_day:
        return "<p class=muted>nothing in this period</p>"
    days = list(_days(report.start, report.end))
    width, height, base = 720, 160, 140
    step = width / max(len(days), 1)
    biggest = max(per_day.values())
    bars = []
    for index, day in enumerate(days):
        n = per_day.get(day, 0)
        if not n:
            continue
        tall = max(1, round((base - 10) * n / biggest))
        bars.append(
            f'<rect x="{index * step:.1f}" y="{base - tall}" width="{max(step - 1, 1):.1f}" '
            f'height="{tall}" fill="#3b6fb6"><title>{day}: {n}</title></rect>'
        )
    axis = (
        f'<text x="0" y="{height - 4}" font-size="11">{days[0]}</text>'
        f'<text x="{width}" y="{height - 4}" font-size="11" text-anchor="end">{days[-1]}</text>'
    )
    return (
        f'<svg role="img" aria-label="records acted on per day" data-chart="daily" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f"{''.join(bars)}{axis}</svg>"
    )


def _days(start: dt.date, end: dt.date) -> Iterable[str]:
    day = start
    while day <= end:
        yield day.isoformat()
        day += dt.timedelta(days=1)


__all__ = [
    "CSV_COLUMNS",
    "ChainState",
    "HoldLine",
    "Report",
    "RuleLine",
    "as_csv",
    "as_html",
    "as_json",
    "build_report",
]
