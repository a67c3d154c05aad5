"""The command line: argument parsing and printing only; the work is done by the library.

Exit codes scripts can trust: 0 ok, 1 audit verification failed (tampering) or record not
found, 2 bad input (config, rules, holds, schema, a state DB newer than this release), 3 a store
or the state DB unreachable (others still processed), 4 refused for safety (circuit breaker,
foreign key), 5 another process holds the lease, 6 an audit seal or checkpoint made with a key
not held here (rotated or wrong).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .config import Config, config_path_from_env, load_config
from .errors import (
    AuditError,
    AuditKeyError,
    ConfigError,
    ConfigErrors,
    RetentionError,
    StoreError,
    StoreMisconfigured,
)
from .explain import explain
from .holdsreport import hold_coverage
from .planner import Plan, make_plan
from .validate import check_hold_ids, check_state_db, check_stores

app = typer.Typer(
    name="retention",
    help="Enforce data-retention promises: plan, explain and apply retention rules.",
    no_args_is_help=True,
    add_completion=True,
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


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"retention {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Enforce data-retention promises: plan, explain and apply retention rules."""


def main() -> None:
    """Console-script entry point."""
    app()


def fail(error: RetentionError, as_json: bool = False) -> NoReturn:
    """Print `error` as clear lines on stderr and exit with its code; under ``--json`` also as
    one JSON object on stdout, for scripts."""
    errors = list(error.errors) if isinstance(error, ConfigErrors) else [error]
    for line in (str(e) for e in errors):
        # verbatim and unwrapped: one `file:line: field: message` per line, brackets kept
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if as_json:
        found = [_error_fields(e) for e in errors]
        emit_json({**found[0], "exit_code": error.exit_code, "errors": found})
    raise typer.Exit(error.exit_code)


def _error_fields(error: RetentionError) -> dict[str, Any]:
    """What a script needs of one error: the message, and where the input is wrong."""
    if isinstance(error, ConfigError):
        return {
            "error": error.message,
            "file": error.file,
            "line": error.line,
            "field": error.field,
            "kind": type(error).__name__,
        }
    return {
        "error": str(error),
        "file": None,
        "line": None,
        "field": None,
        "kind": type(error).__name__,
    }


@contextmanager
def handled(as_json: bool = False) -> Iterator[None]:
    """Turn library errors into one clear line and an exit code (and, under ``--json``, a JSON
    object on stdout)."""
    try:
        yield
    except RetentionError as exc:
        fail(exc, as_json)


def load(config_file: str | None) -> Config:
    return load_config(config_path_from_env(config_file))


def parse_now(value: str | None, config: Config) -> dt.datetime:
    """`--now`, or the current time; naive values are in the configured time zone."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{value!r} is not an ISO 8601 timestamp", file="command line", field="--now"
        ) from None
    if not 1970 <= parsed.year <= 9000:
        raise ConfigError(
            f"{value!r} is outside the years 1970 to 9000 that retention evaluates",
            file="command line",
            field="--now",
        )
    if parsed.tzinfo is None:
        from .timemath import wall_to_utc

        return wall_to_utc(parsed, config.settings.zone())
    return parsed.astimezone(dt.UTC)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
def validate(config_file: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Parse config, rules and holds; check the state DB, stores, tables and columns."""
    with handled(as_json):
        config = load(config_file)
        problems = check_state_db(config) + check_stores(config)
        warnings = check_hold_ids(config)
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
) -> None:
    """The dry run: what is due, held, blocked and overdue, per rule and dataset."""
    with handled(as_json):
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
        print_plan(result, config.settings.zone())
    _exit_for_skipped(result)


def _exit_for_skipped(result: Plan) -> None:
    if any(not s.unreachable for s in result.skipped):
        raise typer.Exit(StoreMisconfigured.exit_code)
    if result.skipped:
        raise typer.Exit(StoreError.exit_code)


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


def print_plan(result: Plan, zone: ZoneInfo | None = None) -> None:
    """The plan as a table a DPO can read."""
    title = f"Plan as of {result.now.astimezone(zone or dt.UTC):%Y-%m-%d %H:%M:%S %Z}"
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
        "unreadable",
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
            f"[yellow]{row.unreadable}[/]" if row.unreadable else _dim(0),
        )
    out.print(table)
    for row in result.rules:
        notes = row.notes  # object stores: how deletes are done, what their protections keep
        if notes and row.due:
            out.print(f"{row.rule} on {row.dataset}: {'; '.join(notes)}", highlight=False)
    if result.holds_in_force:
        out.print(f"holds in force: {', '.join(result.holds_in_force)}", highlight=False)
    warn_unreadable(result.rules)
    warn(result.warnings)
    for skipped in result.skipped:
        err.print(
            f"[yellow]skipped[/] {len(skipped.rules)} rule(s) on store {skipped.store}: "
            f"{skipped.message}",
            highlight=False,
        )


def warn(warnings: Iterable[object]) -> None:
    """One `warning:` line on stderr per warning (hold ids that match no subject)."""
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(str(warning))}", highlight=False, soft_wrap=True)


def warn_unreadable(rows: Iterable[Any]) -> None:
    """One warning line when records are never acted on because their clock is unreadable."""
    found = [row for row in rows if row.unreadable]
    if not found:
        return
    total = sum(row.unreadable for row in found)
    where = ", ".join(f"{row.rule} on {row.dataset}: {row.unreadable}" for row in found)
    err.print(
        f"[yellow]warning:[/] {total} records have an unreadable clock (a value that is no "
        f"timestamp): never acted on until it is fixed ({escape(where)})",
        highlight=False,
        soft_wrap=True,
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
    with handled(as_json):
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
            _when(verdict.clock_start, config.settings.zone()),
            _when(verdict.due_at, config.settings.zone()),
            verdict.status,
        )
    out.print(table)
    if result.holds:
        out.print(f"covered by holds: {', '.join(result.holds)}", highlight=False)


def _when(value: dt.datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "—"


@app.command()
def holds(
    config_file: ConfigOption = None, as_json: JsonOption = False, now: NowOption = None
) -> None:
    """The legal holds, active or not, and how many records each one covers now."""
    with handled(as_json):
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
    warn(report.warnings)
    for skipped in report.skipped:
        err.print(f"[yellow]not counted[/] on store {skipped}", highlight=False)
    if report.skipped:
        raise typer.Exit(StoreError.exit_code)


@app.command()
def run(
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    now: NowOption = None,
    rule: RuleOption = None,
    dataset: DatasetOption = None,
    execute: Annotated[
        bool,
        typer.Option("--execute", help="Change data (otherwise a dry run unless dry_run: false)."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Override the circuit breakers (limits).")
    ] = False,
) -> None:
    """One enforcement pass: a dry run unless `dry_run: false` or --execute."""
    from .executor import Executor

    with handled(as_json):
        config = load(config_file)
        _check_filters(config, rule, dataset)
        moment = parse_now(now, config)
        live = execute or not config.settings.dry_run
        with _run_progress(as_json) as tick:
            executor = Executor(config, now=moment, live=live, force=force, progress=tick)
            result = executor.run(rule or (), dataset or ())
    if as_json:
        emit_json(result.as_dict())
    else:
        print_run(result, config.settings.zone())
    raise typer.Exit(result.exit_code)


@app.command()
def serve(
    config_file: ConfigOption = None,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            help="auto (JSON lines, pretty on a terminal), json or console.",
        ),
    ] = "auto",
) -> None:
    """The daemon: run rules on their schedules; /healthz, /readyz, /metrics on service.port.

    SIGTERM or SIGINT finishes the current batch and exits 0; SIGHUP reloads the configuration.
    """
    from .service import serve as run_service

    if log_format not in ("auto", "json", "console"):
        raise typer.BadParameter("use auto, json or console", param_hint="--log-format")
    with handled():
        code = run_service(config_path_from_env(config_file), log_format=log_format)
    raise typer.Exit(code)


@contextmanager
def _run_progress(quiet: bool) -> Iterator[Callable[..., None]]:
    if quiet or not err.is_terminal:
        yield lambda *args: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
    ) as bar:
        tasks: dict[tuple[str, str], Any] = {}

        def tick(rule: Any, dataset: str, done: int, total: int) -> None:
            key = (rule.id, dataset)
            if key not in tasks:
                tasks[key] = bar.add_task(f"{rule.id} on {dataset}", total=total)
            bar.update(tasks[key], completed=done, total=max(total, done))

        yield tick


def print_run(result: Any, zone: ZoneInfo | None = None) -> None:
    """The run summary table, titled with its mode and the moment it was evaluated at."""
    mode = "LIVE" if result.live else "dry run (nothing changed)"
    as_of = ""
    if result.as_of is not None:
        as_of = f" as of {result.as_of.astimezone(zone or dt.UTC):%Y-%m-%d %H:%M:%S %Z}"
    table = Table(
        title=f"Run {result.run_id} — {mode}{as_of} — {result.status}", title_justify="left"
    )
    for header in (
        "rule",
        "dataset",
        "action",
        "planned",
        "done" if result.live else "would act",
        "cascaded",
        "batches",
        "unreadable",
        "status",
    ):
        table.add_column(header)
    for o in result.outcomes:
        status = o.status if not o.message else f"{o.status}: {o.message}"
        table.add_row(
            o.rule,
            o.dataset,
            o.action,
            str(o.planned),
            str(o.acted),
            str(sum(o.cascaded.values())) if o.cascaded else "0",
            str(o.batches),
            f"[yellow]{o.unreadable}[/]" if o.unreadable else "0",
            status if o.status == "ok" else f"[red]{status}[/]",
        )
    out.print(table)
    if result.recovered:
        out.print(f"reconciled {result.recovered} audit entries left by an interrupted run")
    lingering = sum(o.lingering for o in result.outcomes)
    if lingering:
        err.print(f"[yellow]warning:[/] {lingering} records still due and unheld after the run")
    warn_unreadable(result.outcomes)


audit_app = typer.Typer(help="Inspect and verify the hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@contextmanager
def _audit_log(config: Config) -> Iterator[Any]:
    from .audit import AuditLog
    from .statedb import open_state

    settings = config.settings
    engine = open_state(settings.state_db.get_secret_value())
    try:
        yield AuditLog.from_settings(engine, settings)
    finally:
        engine.dispose()


def _auditor_settings(config_file: str | None, state_db: str | None) -> Any:
    """The settings `audit verify` reads its keys from: the config file's, or with
    ``--state-db`` and no ``--config`` only the environment's (no rules, stores or file)."""
    from pydantic import ValidationError

    from .errors import ConfigError
    from .settings import Settings

    if state_db is None or config_file is not None:
        return load(config_file).settings
    try:
        return Settings()
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise ConfigError(f"invalid RETENTION_* environment variables: {fields}") from None


def _key_text(value: str) -> str:
    """A --verify-key: the key itself, or a file holding it."""
    from pathlib import Path

    path = Path(value)
    if len(value) < 4096 and "\n" not in value and path.is_file():
        return path.read_text(encoding="utf-8")
    return value


@audit_app.command("verify")
def audit_verify(
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    state_db: Annotated[
        str | None,
        typer.Option(
            "--state-db",
            help="Verify this state DB (URL); no config file, rules or stores needed.",
            show_default=False,
        ),
    ] = None,
    checkpoints: Annotated[
        str | None,
        typer.Option(
            "--checkpoints",
            help="Also hold the chain against every checkpoint in PATH or s3://bucket/prefix "
            "(default: audit.checkpoints).",
            show_default=False,
        ),
    ] = None,
    verify_key: Annotated[
        list[str] | None,
        typer.Option(
            "--verify-key",
            help="An Ed25519 public key checkpoints are signed with (PEM or base64, or a file "
            "holding it; repeatable).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check the whole chain, the runs and the checkpoints; exit 1 and name the first bad
    entry on any tampering, 6 when a seal or checkpoint is from a key not held here."""
    from .anchors import open_destination
    from .audit import AuditLog
    from .auditkeys import load_public_key
    from .checkpoints import CheckpointReport, Verifier, check
    from .statedb import open_state

    with handled(as_json):
        settings = _auditor_settings(config_file, state_db)
        extra = [load_public_key(_key_text(k)) for k in verify_key or []]
        engine = open_state(state_db or settings.state_db.get_secret_value())
        try:
            result = AuditLog.from_settings(engine, settings).verify()
            where = checkpoints or settings.audit.checkpoints
            report = CheckpointReport(0)
            if where:
                verifier = Verifier.from_settings(settings, extra)
                documents = open_destination(where, settings.audit).documents()
                report = check(engine, documents, verifier, where)
        finally:
            engine.dispose()
    data = {**result.__dict__, "checkpoints": report.checked}
    # tampering in the log first, then in the checkpoints, then a key problem in either
    log_first = result.problem == "tampered" or (
        result.problem == "key" and report.problem != "tampered"
    )
    if report.problem is not None and not log_first:
        data.update(ok=False, bad_seq=report.bad_seq, reason=report.reason, problem=report.problem)
    if as_json:
        emit_json(data)
    if data["problem"] is None:
        if not as_json:
            agree = f", {report.checked} checkpoints agree" if report.checked else ""
            out.print(f"[green]ok[/]: {result.entries} entries, chain intact{agree}")
        return
    where_text = f"entry {data['bad_seq']}: " if data["bad_seq"] is not None else ""
    with handled(as_json):
        if data["problem"] == "key":
            raise AuditKeyError(
                f"audit key problem: {where_text}{data['reason']}", signed_with=None, held=()
            )
        raise AuditError(f"audit log tampered: {where_text}{data['reason']}")


@audit_app.command("checkpoint")
def audit_checkpoint(
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="A directory or s3://bucket/prefix (default: audit.checkpoints).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write the chain's head, signed, outside the state DB: a new file or object each time."""
    from .checkpoints import write
    from .statedb import open_state

    with handled(as_json):
        settings = load(config_file).settings
        engine = open_state(settings.state_db.get_secret_value())
        try:
            checkpoint, location = write(engine, settings, to, now=dt.datetime.now(dt.UTC))
        finally:
            engine.dispose()
    if as_json:
        emit_json({"location": location, **checkpoint.__dict__})
        return
    out.print(
        f"checkpoint at entry {checkpoint.seq} ({checkpoint.algorithm}, key "
        f"{checkpoint.key_id}) written to {escape(location)}",
        highlight=False,
    )


def _parse_when(value: str | None, config: Config, option: str) -> dt.datetime | None:
    """An ISO date or timestamp; without an offset, in the configured zone (like --now)."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{value!r} is not an ISO 8601 date or timestamp", file="command line", field=option
        ) from None
    if parsed.tzinfo is None:
        from .timemath import wall_to_utc

        return wall_to_utc(parsed, config.settings.zone())
    return parsed


@audit_app.command("show")
def audit_show(
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run id.")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this dataset.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this date/time.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this date/time.")] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Entries that acted on this key.")
    ] = None,
) -> None:
    """Audit entries, filtered by run, rule, dataset, date or record key."""
    with handled(as_json):
        config = load(config_file)
        start = _parse_when(since, config, "--since")
        end = _parse_when(until, config, "--until")
    with handled(as_json), _audit_log(config) as log:
        entries = log.entries(
            run_id=run_id, rule=rule, dataset=dataset, since=start, until=end, key=key
        )
        if as_json:
            emit_json([e.as_dict() for e in entries])
            return
        table = Table()
        headers = ("seq", "at", "run", "rule", "dataset", "action", "mode", "count", "outcome")
        for header in (*headers, "detail"):
            table.add_column(header)
        for e in entries:
            table.add_row(
                str(e.seq),
                e.at[:19],
                e.run_id[:8],
                e.rule or "",
                e.dataset or "",
                e.action,
                "dry" if e.dry_run else "live",
                str(e.count),
                e.outcome,
                escape(_short(e.detail)),
            )
        out.print(table)


def _short(detail: str | None) -> str:
    """An entry's detail for the table: a run's start shows its as-of time, not its JSON."""
    if not detail:
        return ""
    text = detail.split(": {", 1)[0] if detail.startswith("as of ") else detail
    return text if len(text) <= 60 else text[:59] + "…"


@audit_app.command("export")
def audit_export(
    config_file: ConfigOption = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
) -> None:
    """Export the audit log as JSON lines or CSV, with hashes, for archiving or review."""
    from .audit import export

    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("use jsonl or csv", param_hint="--format")
    with handled(), _audit_log(load(config_file)) as log:
        if output:
            with open(output, "w", encoding="utf-8", newline="") as stream:
                count = export(log.entries(), stream, fmt)  # type: ignore[arg-type]
            err.print(f"exported {count} entries to {output}")
        else:
            export(log.entries(), sys.stdout, fmt)  # type: ignore[arg-type]


@app.command()
def demo(
    directory: Annotated[
        str,
        typer.Argument(help="Where to build it (rebuilt if it is already a demo)."),
    ] = "retention-demo",
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Build and plan as of this moment (ISO 8601; UTC without an offset).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Build an embedded demo of every shipped rule pack (SQLite, no server) and show its plans."""
    from pathlib import Path

    from .demo import build_demo

    moment = dt.datetime.now(dt.UTC).replace(microsecond=0) if now is None else _utc(now)
    with handled():
        companies = build_demo(Path(directory), moment)
        out.print(
            f"Built the retention demo in {escape(directory)}: {len(companies)} companies, made-up "
            f"data as of {moment:%Y-%m-%d %H:%M} UTC. Each plan below is a dry run: nothing was "
            "changed.",
            highlight=False,
        )
        for company in companies:
            config = load_config(company.config)
            print_demo_plan(company.policy, str(company.directory), make_plan(config, moment))
    if not companies:
        return
    when = "" if now is None else f" --now {moment.isoformat()}"
    chosen = next((c for c in companies if c.pack == "24sevenoffice"), companies[0])
    config_path = _quoted(str(chosen.config))
    dataset, key = chosen.spotlight
    lines = [
        "",
        f"Next, with {chosen.policy} (the others: the same with their own config.yaml):",
        f"  # why this record is {chosen.spotlight_why}",
        f"  retention explain --config {config_path} {dataset} {key}{when}",
        "  # the legal holds and what they cover",
        f"  retention holds --config {config_path}{when}",
    ]
    if moment > dt.datetime.now(dt.UTC):
        lines += [
            "  # what a run as of that moment would do (a live run acts only as of the present)",
            f"  retention run --config {config_path}{when}",
        ]
    else:
        lines += [
            "  # delete and anonymize what is due, audited (then: retention audit show)",
            f"  retention run --config {config_path}{when} --execute",
        ]
    for line in lines:
        # never wrapped: the commands are for copying
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def _utc(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 timestamp", param_hint="--now"
        ) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)


def print_demo_plan(policy: str, where: str, result: Plan) -> None:
    """One company's plan, compact: per rule, what is to act on, overdue, held, blocked, waiting."""
    rows = result.rules
    act = sum(r.actionable for r in rows)
    overdue = sum(r.overdue for r in rows)
    held = sum(r.held for r in rows)
    blocked = sum(r.blocked for r in rows)
    out.print(f"\n[bold]{escape(policy)}[/]  ({escape(where)})", highlight=False)
    out.print(
        f"  to act on now: [bold]{act}[/] records ([red]{overdue} overdue[/]) · held: {held} · "
        f"blocked by a legal minimum: {blocked} · holds in force: "
        f"{', '.join(result.holds_in_force) or 'none'}",
        highlight=False,
    )
    table = Table(box=None, pad_edge=False, padding=(0, 1))
    for header in ("rule", "dataset", "action", "to act", "overdue", "held", "blocked", "waiting"):
        justify: Any = "left" if header in ("rule", "dataset", "action") else "right"
        table.add_column(header, justify=justify, header_style="bold")
    for row in rows:
        keep = row.action == "keep"
        table.add_row(
            row.rule,
            row.dataset,
            row.action,
            "—" if keep else (f"[bold]{row.actionable}[/]" if row.actionable else "0"),
            "—" if keep else (f"[red]{row.overdue}[/]" if row.overdue else "0"),
            "—" if keep else _dim(row.held),
            "—" if keep else _dim(row.blocked),
            f"{row.pending} kept" if keep else str(row.pending),
        )
    out.print(table)
    for skipped in result.skipped:
        err.print(
            f"[yellow]skipped[/] {len(skipped.rules)} rule(s) on store {skipped.store}: "
            f"{skipped.message}",
            highlight=False,
        )
