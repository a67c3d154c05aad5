"""`retention audit verify|checkpoint|show|export`: the hash-chained audit log, for auditors."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ..errors import (
    AuditError,
    AuditKeyError,
    ConfigError,
    RecordNotFound,
)
from .common import (
    ConfigOption,
    JsonOption,
    WideOption,
    app,
    emit_json,
    err,
    handled,
    load,
    out,
    parse_when,
    write_output,
)
from .tables import Col, show

if TYPE_CHECKING:
    from ..config import Config

audit_app = typer.Typer(
    help="Inspect and verify the hash-chained audit log.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(audit_app, name="audit")


@contextmanager
def _audit_log(config: Config) -> Iterator[Any]:
    from ..audit import AuditLog
    from ..statedb import open_state

    settings = config.settings
    engine = open_state(settings.state_db.get_secret_value())
    try:
        yield AuditLog.from_settings(engine, settings)
    finally:
        engine.dispose()


def auditor_settings(config_file: str | None, state_db: str | None) -> Any:
    """The settings `audit verify` reads its keys from: the config file's, or with
    ``--state-db`` and no ``--config`` only the environment's (no rules, stores or file)."""
    from pydantic import ValidationError

    from ..errors import ConfigError
    from ..settings import Settings

    if state_db is None or config_file is not None:
        return load(config_file).settings
    try:
        return Settings()
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise ConfigError(f"invalid RETENTION_* environment variables: {fields}") from None


def key_text(value: str) -> str:
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
    from ..auditkeys import load_public_key
    from ..checkpoints import verify_everything
    from ..statedb import open_state

    with handled(as_json):
        settings = auditor_settings(config_file, state_db)
        extra = [load_public_key(key_text(k)) for k in verify_key or []]
        engine = open_state(state_db or settings.state_db.get_secret_value())
        try:
            result, report = verify_everything(engine, settings, checkpoints, extra)
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
    with handled():  # under --json the verdict above already says it
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
    from ..checkpoints import write
    from ..statedb import open_state

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


@audit_app.command("rules")
def audit_rules(
    run_id: Annotated[str, typer.Argument(help="The run id (as `audit show` lists it).")],
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    kind: Annotated[
        str, typer.Option("--kind", help="rules (the default), holds, settings or all.")
    ] = "rules",
) -> None:
    """The rule packs a run applied, byte for byte as it read them (and with --kind its holds
    file and settings), from the state DB: the files on disk may have changed since."""
    from ..runcontents import applied
    from ..statedb import open_state

    with handled(as_json):
        config = load(config_file)
        if kind not in ("rules", "holds", "settings", "all"):
            raise ConfigError(
                f"unknown kind {kind!r}: rules, holds, settings or all", field="--kind"
            )
        engine = open_state(config.settings.state_db.get_secret_value())
        try:
            found = [a for a in applied(engine, run_id) if kind in ("all", a.kind)]
        finally:
            engine.dispose()
        if not found:
            raise RecordNotFound(f"no rule packs stored for run {run_id!r}")
    if as_json:
        emit_json([a.as_dict() for a in found])
        return
    for item in found:
        if len(found) > 1:  # one text: exactly its bytes; several: each under its name
            sys.stdout.write(f"==> {item.kind}: {item.name} <==\n")
        sys.stdout.write(item.text)
    sys.stdout.flush()


AUDIT_COLUMNS = (
    Col("seq", ident=True),
    Col("at", ident=True),
    Col("run", ident=True),
    Col("rule", ident=True),
    Col("dataset", ident=True),
    Col("action"),
    Col("mode"),
    Col("count", numeric=True),
    Col("outcome"),
    Col("detail"),
)


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
    wide: WideOption = False,
) -> None:
    """Audit entries, filtered by run, rule, dataset, date or record key."""
    with handled(as_json):
        config = load(config_file)
        start = parse_when(since, config, "--since")
        end = parse_when(until, config, "--until")
    with handled(as_json), _audit_log(config) as log:
        entries = log.entries(
            run_id=run_id, rule=rule, dataset=dataset, since=start, until=end, key=key
        )
        if as_json:
            emit_json([e.as_dict() for e in entries])
            return
        rows = [
            (
                str(e.seq),
                e.at[:19],
                e.run_id,
                e.rule or "",
                e.dataset or "",
                e.action,
                "dry" if e.dry_run else "live",
                str(e.count),
                e.outcome,
                escape(_short(e.detail)),
            )
            for e in entries
        ]
        show(AUDIT_COLUMNS, rows, wide=wide)


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
    from ..audit import export

    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("use jsonl or csv", param_hint="--format")
    with handled(), _audit_log(load(config_file)) as log:
        if output:
            with open(output, "w", encoding="utf-8", newline="") as stream:
                count = export(log.entries(), stream, fmt)  # type: ignore[arg-type]
            err.print(f"exported {count} entries to {output}")
        else:
            export(log.entries(), sys.stdout, fmt)  # type: ignore[arg-type]


@app.command("report")
def report(
    config_file: ConfigOption = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="First day (YYYY-MM-DD; default: 30 days before --to)."),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last day (YYYY-MM-DD; default: today).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="html (default), json or csv.")] = "html",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The DPO report for a period: per policy and rule, what was deleted, anonymized and
    left lingering, what is due, overdue, held and blocked now, the holds, and the audit
    chain's verification — one self-contained HTML page, or JSON or CSV."""
    from ..report import as_csv, as_html, build_report
    from ..report import as_json as report_json

    if as_json:
        fmt = "json"
    writers = {"html": as_html, "csv": as_csv, "json": report_json}
    if fmt not in writers:
        raise typer.BadParameter("use html, json or csv", param_hint="--format")
    with handled(as_json):
        config = load(config_file)
        now = dt.datetime.now(dt.UTC)
        last = _day(end, "--to") if end else now.astimezone(config.settings.zone()).date()
        first = _day(start, "--from") if start else last - dt.timedelta(days=30)
        if first > last:
            from ..errors import ConfigError

            raise ConfigError(f"--from {first} is after --to {last}", field="--from")
        write_output(writers[fmt](build_report(config, first, last, now)), output, "report")


def _day(value: str, option: str) -> dt.date:
    from ..errors import ConfigError

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r} is not a date (YYYY-MM-DD)", field=option) from None
