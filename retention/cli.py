"""The command line: argument parsing and printing only; the work is done by the library.

Exit codes scripts can trust: 0 ok, 1 audit verification failed or record not found,
2 bad input (config, rules, holds, schema), 3 a store unreachable (others still processed),
4 refused for safety (circuit breaker, foreign key).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from .config import Config, config_path_from_env, load_config
from .errors import ConfigErrors, RetentionError
from .explain import explain
from .planner import Plan, hold_coverage, make_plan
from .validate import check_stores

app = typer.Typer(
    name="retention",
    help="Enforce data-retention promises: plan, explain and apply retention rules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config", "-c", help="Config file (default: $RETENTION_CONFIG).", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Evaluate as of this moment (ISO 8601; without an offset, in the configured zone).",
        show_default=False,
    ),
]
RuleOption = Annotated[
    list[str] | None, typer.Option("--rule", help="Only this rule (repeatable).")
]
DatasetOption = Annotated[
    list[str] | None, typer.Option("--dataset", help="Only this dataset (repeatable).")
]


def main() -> None:
    """Console-script entry point."""
    app()


def fail(error: RetentionError) -> NoReturn:
    """Print `error` as clear lines on stderr and exit with its code."""
    lines = [str(e) for e in error.errors] if isinstance(error, ConfigErrors) else [str(error)]
    for line in lines:
        err.print(f"[bold red]error:[/] {line}", highlight=False, markup=True)
    raise typer.Exit(error.exit_code)


@contextmanager
def handled() -> Iterator[None]:
    """Turn library errors into one clear line and an exit code."""
    try:
        yield
    except RetentionError as exc:
        fail(exc)


def load(config_file: str | None) -> Config:
    return load_config(config_path_from_env(config_file))


def parse_now(value: str | None, config: Config) -> dt.datetime:
    """`--now`, or the current time; naive values are in the configured time zone."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 timestamp", param_hint="--now"
        ) from None
    if parsed.tzinfo is None:
        from .timemath import wall_to_utc

        return wall_to_utc(parsed, config.settings.zone())
    return parsed.astimezone(dt.UTC)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
def validate(config_file: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Parse config, rules and holds; check stores, tables and columns exist."""
    with handled():
        config = load(config_file)
        problems = check_stores(config)
    if as_json:
        emit_json(
            {
                "ok": not problems,
                "rules": len(config.rules),
                "datasets": len(config.settings.datasets),
                "problems": [p.__dict__ for p in problems],
            }
        )
    else:
        for problem in problems:
            err.print(f"[bold red]error:[/] {problem.where}: {problem.message}", highlight=False)
        if not problems:
            out.print(
                f"[green]ok[/]: {len(config.rules)} rules, "
                f"{len(config.settings.datasets)} datasets, "
                f"{len(config.settings.stores)} stores",
                highlight=False,
            )
    if any(not p.unreachable for p in problems):
        raise typer.Exit(2)
    if problems:
        raise typer.Exit(3)


@app.command()
def plan(
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    now: NowOption = None,
    rule: RuleOption = None,
    dataset: DatasetOption = None,
    samples: Annotated[int, typer.Option(help="Sample keys per rule in --json.")] = 5,
) -> None:
    """The dry run: what is due, held, blocked and overdue, per rule and dataset."""
    with handled():
        config = load(config_file)
        _check_filters(config, rule, dataset)
        moment = parse_now(now, config)
        with _progress(as_json) as tick:
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
        print_plan(result)
    _exit_for_skipped(result)


def _exit_for_skipped(result: Plan) -> None:
    if any(not s.unreachable for s in result.skipped):
        raise typer.Exit(2)
    if result.skipped:
        raise typer.Exit(3)


def _check_filters(config: Config, rules: list[str] | None, datasets: list[str] | None) -> None:
    from .errors import ConfigError

    known_rules = {r.id for r in config.rules}
    for rule_id in rules or []:
        if rule_id not in known_rules:
            raise ConfigError(f"unknown rule {rule_id!r}", field="--rule")
    for name in datasets or []:
        if name not in config.settings.datasets:
            raise ConfigError(f"unknown dataset {name!r}", field="--dataset")


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[..., None]]:
    if quiet or not err.is_terminal:
        yield lambda *args: None
        return
    with err.status("planning…") as status:
        yield lambda rule, dataset: status.update(f"planning {rule.id} on {dataset}…")


def print_plan(result: Plan) -> None:
    """The plan as a table a DPO can read."""
    title = f"Plan as of {result.now:%Y-%m-%d %H:%M:%S %Z}"
    if result.freeze:
        title += "  [bold red](FREEZE: nothing will be changed)[/]"
    table = Table(title=title, title_justify="left")
    headers = (
        "rule",
        "dataset",
        "action",
        "covered",
        "due",
        "held",
        "blocked",
        "superseded",
        "already done",
        "to act",
        "overdue",
        "not yet due",
    )
    for header in headers:
        table.add_column(
            header, justify="left" if header in ("rule", "dataset", "action") else "right"
        )
    for row in result.rules:
        table.add_row(
            row.rule,
            row.dataset,
            row.action,
            str(row.in_scope),
            str(row.due),
            _dim(row.held),
            _dim(row.blocked),
            _dim(row.superseded),
            _dim(row.done),
            f"[bold]{row.actionable}[/]" if row.actionable else "0",
            f"[red]{row.overdue}[/]" if row.overdue else "0",
            str(row.pending),
        )
    out.print(table)
    if result.holds_in_force:
        out.print(f"holds in force: {', '.join(result.holds_in_force)}", highlight=False)
    for skipped in result.skipped:
        err.print(
            f"[yellow]skipped[/] {len(skipped.rules)} rule(s) on store {skipped.store}: "
            f"{skipped.message}",
            highlight=False,
        )


def _dim(value: int) -> str:
    return str(value) if value else "[dim]0[/]"


@app.command(name="explain")
def explain_command(
    dataset: Annotated[str, typer.Argument(help="Dataset name from config.")],
    key: Annotated[str, typer.Argument(help="Record key (a/b for composite keys).")],
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Every rule that matches one record: its clock, due date, holds, keep rules, verdict."""
    with handled():
        config = load(config_file)
        result = explain(config, dataset, key, parse_now(now, config))
    if as_json:
        emit_json(result.as_dict())
        return
    out.print(f"[bold]{dataset}[/] {key}: {result.verdict}", highlight=False)
    table = Table(show_header=True)
    for header in ("rule", "action", "clock", "clock started", "due", "status"):
        table.add_column(header)
    for verdict in result.rules:
        table.add_row(
            verdict.rule,
            verdict.action,
            verdict.clock,
            _when(verdict.clock_start),
            _when(verdict.due_at),
            verdict.status,
        )
    out.print(table)
    if result.holds:
        out.print(f"covered by holds: {', '.join(result.holds)}", highlight=False)


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


@app.command()
def holds(
    config_file: ConfigOption = None, as_json: JsonOption = False, now: NowOption = None
) -> None:
    """The legal holds, active or not, and how many records each one covers now."""
    with handled():
        config = load(config_file)
        moment = parse_now(now, config)
        report = hold_coverage(config, today=moment.date())
    if as_json:
        emit_json(report.as_dict())
        return
    if report.freeze:
        out.print("[bold red]FREEZE is on: no destructive action anywhere[/]")
    table = Table(title=f"Holds ({config.holds_path or 'no holds file'})", title_justify="left")
    for header in ("hold", "active", "scope", "records covered", "review by", "reason"):
        table.add_column(header)
    for row in report.holds:
        review = str(row.review_by or "—")
        if row.review_overdue:
            review = f"[red]{review} (overdue)[/]"
        table.add_row(
            row.id,
            "yes" if row.active else "[dim]released[/]",
            row.scope,
            str(row.records),
            review,
            row.reason or "",
        )
    out.print(table)
    for skipped in report.skipped:
        err.print(f"[yellow]not counted[/] on store {skipped}", highlight=False)
    if report.skipped:
        raise typer.Exit(3)
