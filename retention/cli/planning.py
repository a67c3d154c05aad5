"""Commands that change nothing: `validate`, `plan`, `explain`, `holds`, and how they print."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape

from ..errors import (
    ConfigError,
    StoreError,
    StoreMisconfigured,
)
from .common import (
    ConfigOption,
    DatasetOption,
    JsonOption,
    NowOption,
    RuleOption,
    WideOption,
    app,
    check_filters,
    dim,
    emit_json,
    err,
    handled,
    load,
    out,
    parse_now,
    warn,
    warn_absent,
    warn_unreadable,
    write_output,
)
from .tables import Col, show

if TYPE_CHECKING:
    from ..holdsreport import HoldsReport
    from ..planner import Plan
    from ..stores.base import Quarantined


@app.command()
def validate(config_file: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Parse config, rules and holds; check the state DB, stores, tables and columns."""
    with handled(as_json):
        config = load(config_file)
        from ..holdcheck import HoldWarning
        from ..validate import (
            SettingWarning,
            audit_key_warnings,
            check_hold_ids,
            check_state_db,
            check_stores,
            deadline_warnings,
        )

        problems = check_state_db(config) + check_stores(config)
        warnings: list[SettingWarning | HoldWarning] = [
            *audit_key_warnings(config),
            *deadline_warnings(config),
            *check_hold_ids(config),
        ]
    if as_json:
        emit_json(
            {
                "ok": not problems,
                "rules": len(config.rules),
                "datasets": len(config.settings.datasets),
                "problems": [p.__dict__ for p in problems],
                "warnings": [w.as_dict() for w in warnings],
            }
        )
    else:
        for problem in problems:
            err.print(
                f"[bold red]error:[/] {escape(str(problem))}",
                highlight=False,
                soft_wrap=True,
            )
        if not problems:
            out.print(
                f"[green]ok[/]: {len(config.rules)} rules, "
                f"{len(config.settings.datasets)} datasets, "
                f"{len(config.settings.stores)} stores",
                highlight=False,
            )
        warn(warnings)
    if any(not p.unreachable for p in problems):
        raise typer.Exit(StoreMisconfigured.exit_code)
    if problems:
        raise typer.Exit(StoreError.exit_code)


@app.command()
def plan(
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    now: NowOption = None,
    rule: RuleOption = None,
    dataset: DatasetOption = None,
    samples: Annotated[int, typer.Option(help="Sample keys per rule in --json.")] = 5,
    wide: WideOption = False,
    new_rules: Annotated[
        list[str] | None,
        typer.Option(
            "--rules",
            help="Policy diff: plan these rule files or directories against the current ones "
            "(repeatable; exit 1 when anything becomes newly destructive).",
        ),
    ] = None,
    new_holds: Annotated[
        str | None, typer.Option("--holds", help="Policy diff: this holds file instead.")
    ] = None,
    output: Annotated[
        str, typer.Option("--format", help="Policy diff output: table or markdown.")
    ] = "table",
) -> None:
    """The dry run: what is due, held, blocked and overdue, per rule and dataset; with
    --rules/--holds, what new rules or holds would do differently (a policy diff)."""
    if new_rules or new_holds:
        _policy_diff(config_file, as_json, now, new_rules, new_holds, output, wide)
        return
    with handled(as_json):
        config = load(config_file)
        check_filters(config, rule, dataset)
        moment = parse_now(now, config)
        with _progress(as_json) as tick:
            from ..planner import make_plan

            result = make_plan(
                config,
                moment,
                rule_ids=rule or (),
                datasets=dataset or (),
                samples=samples,
                progress=tick,
            )
    if as_json:
        emit_json(result.as_dict())
    else:
        print_plan(result, config.settings.zone(), wide=wide)
    _exit_for_skipped(result)


DIFF_COLUMNS = (
    Col("rule", ident=True),
    Col("dataset", ident=True),
    Col("action", ident=True),
    Col("before", numeric=True),
    Col("after", numeric=True),
    Col("newly due", "new", numeric=True),
    Col("no longer due", "gone", numeric=True),
    Col("changed action", "changed", numeric=True),
)


def _policy_diff(
    config_file: str | None,
    as_json: bool,
    now: str | None,
    new_rules: list[str] | None,
    new_holds: str | None,
    output: str,
    wide: bool = False,
) -> None:
    from ..config import config_path_from_env, load_config
    from ..policydiff import markdown, policy_diff

    with handled(as_json):
        if output not in ("table", "markdown"):
            raise ConfigError("choose table or markdown", file="command line", field="--format")
        config = load(config_file)
        replace: dict[str, object] = {}
        if new_rules:
            replace["rules"] = [
                r if r.startswith("pack:") else str(Path(r).resolve()) for r in new_rules
            ]
        if new_holds:
            replace["holds"] = str(Path(new_holds).resolve())
        proposed = load_config(config_path_from_env(config_file), replace)
        diff = policy_diff(config, proposed, parse_now(now, config))
    if as_json:
        emit_json(diff.as_dict())
    elif output == "markdown":
        sys.stdout.write(markdown(diff))
    else:
        rows = [
            (
                f"[bold red]{escape(r.rule)}[/]" if r.destructive else escape(r.rule),
                escape(r.dataset),
                r.action,
                str(r.before),
                str(r.after),
                str(r.newly_due),
                str(r.no_longer_due),
                str(r.changed),
            )
            for r in diff.rows
        ]
        title = f"Policy diff as of {diff.now:%Y-%m-%d %H:%M:%S %Z}"
        show(DIFF_COLUMNS, rows, title=title, wide=wide)
        out.print(
            "destructive: review required" if diff.destructive else "nothing newly destructive",
            highlight=False,
        )
    if diff.destructive:
        raise typer.Exit(1)


def _exit_for_skipped(result: Plan) -> None:
    if any(not s.unreachable for s in result.skipped):
        raise typer.Exit(StoreMisconfigured.exit_code)
    if result.skipped:
        raise typer.Exit(StoreError.exit_code)


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[..., None]]:
    if quiet or not err.is_terminal:
        yield lambda *args: None
        return
    with err.status("planning…") as status:
        yield lambda rule, dataset: status.update(f"planning {rule.id} on {dataset}…")


PLAN_COLUMNS = (
    Col("rule", ident=True),
    Col("dataset", ident=True),
    Col("action", ident=True),
    Col("covered", "cov", numeric=True),
    Col("due", numeric=True),
    Col("held", numeric=True),
    Col("blocked", "blk", numeric=True),
    Col("superseded", "supsd", numeric=True),
    Col("already done", "done", numeric=True),
    Col("to act", "act", numeric=True),
    Col("overdue", "late", numeric=True),
    Col("not yet due", "wait", numeric=True),
    Col("unreadable", "unrd", numeric=True),
)


def print_plan(result: Plan, zone: ZoneInfo | None = None, *, wide: bool = False) -> None:
    """The plan as a table a DPO can read, at any terminal width."""
    title = f"Plan as of {result.now.astimezone(zone or dt.UTC):%Y-%m-%d %H:%M:%S %Z}"
    if result.freeze:
        title += "  [bold red](FREEZE: nothing will be changed)[/]"
    rows = [
        (
            row.rule,
            row.dataset,
            row.action,
            str(row.in_scope),
            str(row.due),
            dim(row.held),
            dim(row.blocked),
            dim(row.superseded),
            dim(row.done),
            f"[bold]{row.actionable}[/]" if row.actionable else "0",
            f"[red]{row.overdue}[/]" if row.overdue else "0",
            str(row.pending),
            f"[yellow]{row.unreadable}[/]" if row.unreadable else dim(0),
        )
        for row in result.rules
    ]
    show(PLAN_COLUMNS, rows, title=title, wide=wide)
    for row in result.rules:
        # object stores: how deletes are done, what their protections keep; lake tables also
        # what earlier runs deleted that is still in old files, with nothing due now
        notes = row.notes
        if notes and (row.due or row.extra.get("physically_present")):
            out.print(f"{row.rule} on {row.dataset}: {'; '.join(notes)}", highlight=False)
        if row.subject is not None:
            out.print(f"{row.rule} on {row.dataset} reads subject {row.subject}", highlight=False)
    for kept in result.quarantine:
        out.print(f"quarantine: {_kept(kept, zone or dt.UTC)}", highlight=False)
    if result.holds_in_force:
        out.print(f"holds in force: {', '.join(result.holds_in_force)}", highlight=False)
    for hold, ends in result.holds_ending:
        out.print(
            f"hold {hold} expires: released at {ends.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            highlight=False,
        )
    if result.holds_expired:
        out.print(
            f"holds released by their expiry: {', '.join(result.holds_expired)}", highlight=False
        )
    warn_unreadable(result.rules)
    warn_absent(result.rules)
    warn(result.warnings)
    warn(f"a live run would refuse: {b.message}" for b in result.breakers)
    warn(f"a live run would wait: {a.message}" for a in result.approvals)
    for skipped in result.skipped:
        err.print(
            f"[yellow]skipped[/] {len(skipped.rules)} rule(s) on store {skipped.store}: "
            f"{skipped.message}",
            highlight=False,
        )


def _kept(kept: Quarantined, zone: dt.tzinfo) -> str:
    """``tickets keeps 10, purged on 2026-06-08`` (or between two dates, or nothing)."""
    if not kept.count or kept.first_purge is None or kept.last_purge is None:
        return f"{kept.dataset} keeps nothing"
    first, last = (f"{m.astimezone(zone):%Y-%m-%d}" for m in (kept.first_purge, kept.last_purge))
    when = f"on {first}" if first == last else f"from {first} to {last}"
    return f"{kept.dataset} keeps {kept.count}, purged {when}"


EXPLAIN_COLUMNS = (
    Col("rule", ident=True),
    Col("action", ident=True),
    Col("clock"),
    Col("clock started", "started", ident=True, labelled=True),
    Col("due", ident=True, labelled=True),
    Col("status"),
)


@app.command(name="explain")
def explain_command(
    dataset: Annotated[str, typer.Argument(help="Dataset name from config.")],
    key: Annotated[str, typer.Argument(help="Record key (a/b for composite keys).")],
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    now: NowOption = None,
    wide: WideOption = False,
) -> None:
    """Every rule that matches one record: its clock, due date, holds, keep rules, verdict."""
    with handled(as_json):
        config = load(config_file)
        from ..explain import explain

        result = explain(config, dataset, key, parse_now(now, config))
    if as_json:
        emit_json(result.as_dict())
        return
    out.print(f"[bold]{dataset}[/] {key}: {result.verdict}", highlight=False)
    if result.deleted is not None:  # gone: no rule has anything left to say
        return
    zone = config.settings.zone()
    rows = [
        (
            verdict.rule,
            verdict.action,
            verdict.clock if verdict.subject is None else f"{verdict.clock} of {verdict.subject}",
            _when(verdict.clock_start, zone),
            _when(verdict.due_at, zone),
            verdict.status,
        )
        for verdict in result.rules
    ]
    show(EXPLAIN_COLUMNS, rows, wide=wide)
    if result.holds:
        out.print(f"covered by holds: {', '.join(result.holds)}", highlight=False)


def _when(value: dt.datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "—"


REVIEW_OVERDUE_EXIT = 7
"""`holds`' exit code when an active hold is past its ``review_by`` date (and all else is well):
a cron job or CI check can page legal."""

HOLDS_COLUMNS = (
    Col("hold", ident=True),
    Col("active"),
    Col("scope"),
    Col("records covered", "records", numeric=True),
    Col("expires", ident=True, labelled=True),
    Col("review by", "review", ident=True, labelled=True),
    Col("reason"),
)


@app.command()
def holds(
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    now: NowOption = None,
    wide: WideOption = False,
) -> None:
    """The legal holds, active or not, and how many records each one covers now."""
    with handled(as_json):
        config = load(config_file)
        moment = parse_now(now, config)
        from ..holdsreport import hold_coverage

        report = hold_coverage(config, now=moment)
    if as_json:
        emit_json(report.as_dict())
        _exit_for_review(report)
        return
    if report.freeze:
        out.print("[bold red]FREEZE is on: no destructive action anywhere[/]")
    rows = []
    for row in report.holds:
        review = str(row.review_by or "—")
        if row.review_overdue:
            review = f"[red]{review} (overdue)[/]"
        state = "yes" if row.active else "[dim]released[/]"
        if row.expired:
            state = "[dim]released (expired)[/]"
        expires = row.released_at.strftime("%Y-%m-%d %H:%M %Z") if row.released_at else "—"
        rows.append(
            (
                row.id,
                state,
                escape(row.scope),
                str(row.records),
                expires,
                review,
                escape(row.reason or ""),
            )
        )
    title = f"Holds ({escape(str(config.holds_path or 'no holds file'))})"
    show(HOLDS_COLUMNS, rows, title=title, wide=wide)
    warn(report.warnings)
    for skipped in report.skipped:
        err.print(f"[yellow]not counted[/] on store {skipped}", highlight=False)
    if report.skipped:
        raise typer.Exit(StoreError.exit_code)
    _exit_for_review(report)


def _exit_for_review(report: HoldsReport) -> None:
    """Exit 7, saying which, when an active hold is past its review date."""
    passed = [row.id for row in report.holds if row.active and row.review_overdue]
    if passed:
        err.print(
            f"[yellow]review overdue:[/] {len(passed)} active hold(s) past their review_by date: "
            f"{escape(', '.join(passed))} (ask legal to review, then move review_by or release)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(REVIEW_OVERDUE_EXIT)


@app.command(name="schedule")
def retention_schedule(
    config_file: ConfigOption = None,
    fmt: Annotated[
        str, typer.Option("--format", help="markdown (default), csv or json.")
    ] = "markdown",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The retention schedule as a record of processing: per dataset, each rule's clock,
    period, action, deadline, source clause, and whether the period is quoted or chosen."""
    from ..processing import as_csv, as_markdown, processing_schedule
    from ..processing import as_json as schedule_json

    if as_json:
        fmt = "json"
    writers = {"markdown": as_markdown, "csv": as_csv, "json": schedule_json}
    if fmt not in writers:
        raise typer.BadParameter("use markdown, csv or json", param_hint="--format")
    with handled(as_json):
        text = writers[fmt](processing_schedule(load(config_file)))
        write_output(text, output, "retention schedule")
