"""Commands that act: `run` (one pass) and `serve` (the daemon), and the run summary."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape

from .common import (
    ConfigOption,
    DatasetOption,
    JsonOption,
    NowOption,
    RuleOption,
    WideOption,
    app,
    check_filters,
    emit_json,
    err,
    handled,
    load,
    out,
    parse_now,
    parse_when,
    warn_absent,
    warn_unreadable,
)
from .tables import Col, show

if TYPE_CHECKING:
    from ..config import Config
    from ..outcomes import RunResult


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
    wide: WideOption = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every batch's audit event on stderr.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress bar and no summary: warnings and errors."),
    ] = False,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = None,
) -> None:
    """One enforcement pass: a dry run unless `dry_run: false` or --execute.

    Ctrl-C (or SIGTERM) finishes the current batch, audits it and stops; the next run finishes
    the rest (exit 130). A second Ctrl-C aborts at once, as a crash would: still safe."""
    from ..executor import Executor

    configure_logs(log_format, log_level, verbose=verbose or log_format == "json")
    with handled(as_json):
        config = load(config_file)
        check_filters(config, rule, dataset)
        moment = parse_now(now, config)
        live = execute or not config.settings.dry_run
        with _run_progress(as_json or quiet) as tick, interruptible() as stop:
            executor = Executor(
                config, now=moment, live=live, force=force, progress=tick, should_stop=stop
            )
            result = executor.run(rule or (), dataset or ())
    if as_json:
        emit_json(result.as_dict())
    elif not quiet:
        print_run(result, config.settings.zone(), wide=wide)
    if stop():
        done = sum(o.acted for o in result.outcomes)
        verb = "changed" if result.live else "would have been changed"
        err.print(
            f"[yellow]interrupted:[/] stopped after the current batch; {done} records {verb} "
            "and audited. The next `retention run` finishes the rest.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(INTERRUPTED_EXIT)
    raise typer.Exit(result.exit_code)


INTERRUPTED_EXIT = 130
"""`run`'s exit code when Ctrl-C or SIGTERM stopped it (128 + SIGINT, as shells expect)."""

LogFormatOption = Annotated[
    str,
    typer.Option(
        "--log-format", help="auto (pretty on a terminal, else JSON lines), json or console."
    ),
]
LogLevelOption = Annotated[
    str | None,
    typer.Option(
        "--log-level",
        help="debug, info, warning or error (default: warning; info with -v or --log-format json).",
        show_default=False,
    ),
]
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def configure_logs(log_format: str, log_level: str | None, *, verbose: bool) -> None:
    """Logs on stderr for `run`: per-batch events only when asked for (-v, JSON logs or
    --log-level info), so that on a terminal the progress bar and the summary are what shows."""
    from ..logs import configure

    if log_format not in ("auto", "json", "console"):
        raise typer.BadParameter("use auto, json or console", param_hint="--log-format")
    if log_level is not None and log_level.lower() not in LEVELS:
        raise typer.BadParameter("use debug, info, warning or error", param_hint="--log-level")
    level = (
        LEVELS[log_level.lower()]
        if log_level
        else (LEVELS["info"] if verbose else LEVELS["warning"])
    )
    configure(json=None if log_format == "auto" else log_format == "json", level=level)


@contextmanager
def interruptible() -> Iterator[Callable[[], bool]]:
    """While the block runs, the first SIGINT or SIGTERM asks the run to stop after the current
    batch (the returned function says whether it was asked); a second SIGINT aborts at once."""
    import signal

    asked: list[int] = []

    def request(signum: int, _frame: Any) -> None:
        if asked and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        asked.append(signum)
        err.print(
            "[yellow]stopping after the current batch[/] (Ctrl-C again to abort now)",
            highlight=False,
        )

    try:
        previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: no signals to take over
        yield lambda: False
        return
    try:
        yield lambda: bool(asked)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    from ..config import config_path_from_env
    from ..service import serve as run_service

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


RUN_COLUMNS = (
    Col("rule", ident=True),
    Col("dataset", ident=True),
    Col("action", ident=True),
    Col("planned", "plan", numeric=True),
    Col("cascaded", "casc", numeric=True),
    Col("batches", "bat", numeric=True),
    Col("unreadable", "unrd", numeric=True),
    Col("status"),
)


def print_run(result: Any, zone: ZoneInfo | None = None, *, wide: bool = False) -> None:
    """The run summary table, titled with its mode and the moment it was evaluated at."""
    mode = "LIVE" if result.live else "dry run (nothing changed)"
    as_of = ""
    if result.as_of is not None:
        as_of = f" as of {result.as_of.astimezone(zone or dt.UTC):%Y-%m-%d %H:%M:%S %Z}"
    title = f"Run {result.run_id} — {mode}{as_of} — {result.status}"
    columns = (
        *RUN_COLUMNS[:4],
        Col(
            "done" if result.live else "would act", "done" if result.live else "would", numeric=True
        ),
        *RUN_COLUMNS[4:],
    )
    rows = []
    for o in result.outcomes:
        status = escape(o.status if not o.message else f"{o.status}: {o.message}")
        rows.append(
            (
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
        )
    show(columns, rows, title=title, wide=wide)
    if result.recovered:
        out.print(f"reconciled {result.recovered} audit entries left by an interrupted run")
    lingering = sum(o.lingering for o in result.outcomes)
    if lingering:
        err.print(f"[yellow]warning:[/] {lingering} records still due and unheld after the run")
    warn_unreadable(result.outcomes)
    warn_absent(result.outcomes)


@app.command()
def approve(
    rule_id: Annotated[str, typer.Argument(metavar="RULE", help="The rule to approve.")],
    by: Annotated[str, typer.Option("--by", help="Who approves (recorded and sealed).")],
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    """Approve what a rule marked `approval: required` would do now (from its current plan)."""
    from ..approvals import approvals_path
    from ..approvals import approve as write_approval
    from ..planner import make_plan

    with handled(as_json):
        config = load(config_file)
        check_filters(config, [rule_id], None)
        moment = parse_now(now, config)
        plan = make_plan(config, moment, rule_ids=[rule_id])
        counts = {row.dataset: row.actionable for row in plan.rules}
        approval = write_approval(config, rule_id, counts, by, dt.datetime.now(dt.UTC))
    if as_json:
        emit_json({**approval.fields(), "file": str(approvals_path(config))})
        return
    each = ", ".join(f"{d}: {n}" for d, n in counts.items())
    out.print(
        f"approved {rule_id} for {sum(counts.values())} records ({each}) by {by}, "
        f"in {approvals_path(config)}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def restore(
    run_id: Annotated[
        str, typer.Option("--run", help="The run whose quarantined deletions to put back.")
    ],
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    rule: Annotated[
        str | None, typer.Option("--rule", help="Only what this rule deleted in that run.")
    ] = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="Put the records back (otherwise a dry run).")
    ] = False,
    wide: WideOption = False,
    now: NowOption = None,
) -> None:
    """Put back what a run deleted from quarantined datasets (`quarantine:`) while their
    restore window lasts: a run of its own, audited; a dry run unless --execute.

    A record whose key exists again is reported and left in quarantine, never overwritten;
    one past its window (at --now, default the present) waits for its purge. Restored records
    are as due as before: fix the rule or place a hold first."""
    from ..executor import Executor

    with handled(as_json):
        config = load(config_file)
        moment = parse_now(now, config)
        with interruptible() as stop:
            executor = Executor(config, now=moment, live=execute, should_stop=stop)
            result = executor.restore(run_id, rule)
    _report(
        result,
        config,
        as_json,
        wide,
        f"nothing of run {run_id} is in quarantine (purged, or never quarantined)",
    )


@app.command()
def replay(
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help="The moment the backup was taken (ISO 8601; without an offset, in the "
            "configured time zone).",
        ),
    ],
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    execute: Annotated[
        bool, typer.Option("--execute", help="Change data (otherwise a dry run).")
    ] = False,
    wide: WideOption = False,
) -> None:
    """After a backup restore: apply again every delete and anonymize the audit log recorded
    since then, to the records the backup brought back (matched by their keys' HMAC under
    `audit.keys: hmac`); a run of its own, audited; a dry run unless --execute.

    Held records, and records a keep rule still protects, are never touched."""
    from ..executor import Executor

    with handled(as_json):
        config = load(config_file)
        moment = parse_when(since, config, "--since")
        assert moment is not None
        with interruptible() as stop:
            present = dt.datetime.now(dt.UTC)
            executor = Executor(config, now=present, live=execute, should_stop=stop)
            result = executor.replay(moment)
    _report(
        result,
        config,
        as_json,
        wide,
        f"the audit log records no live delete or anonymize since {since}",
    )


def _report(result: RunResult, config: Config, as_json: bool, wide: bool, empty: str) -> None:
    """A restore's or replay's result as `run` prints it (`empty` when it found nothing), and
    its exit code."""
    if as_json:
        emit_json(result.as_dict())
    else:
        print_run(result, config.settings.zone(), wide=wide)
        if not result.outcomes:
            out.print(empty)
    raise typer.Exit(result.exit_code)
