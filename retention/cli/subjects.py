"""`retention subject TYPE ID [--certificate FILE]` and `retention audit verify-certificate FILE`:
what retention governs about one person or account, and the erasure certificate for it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .auditing import audit_app, auditor_settings, key_text
from .common import (
    ConfigOption,
    JsonOption,
    NowOption,
    WideOption,
    app,
    emit_json,
    err,
    handled,
    load,
    out,
    parse_now,
)
from .tables import Col, show

if TYPE_CHECKING:
    from ..subjects import SubjectReport

SUBJECT_COLUMNS = (
    Col("dataset", ident=True),
    Col("records", numeric=True),
    Col("state"),
    Col("rule", ident=True),
    Col("in the way"),
    Col("due / kept until", ident=True, labelled=True),
)


@app.command("subject")
def subject_command(
    subject_type: Annotated[str, typer.Argument(help="Subject type from config (account).")],
    subject_id: Annotated[str, typer.Argument(help="The subject's id.")],
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    now: NowOption = None,
    certificate: Annotated[
        Path | None,
        typer.Option(
            "--certificate",
            help="Also write a sealed erasure certificate to FILE (JSON) and FILE's .txt.",
            show_default=False,
        ),
    ] = None,
    wide: WideOption = False,
) -> None:
    """Everything retention governs about one subject: its records per dataset, the rule,
    due date, holds and keep rules of each group, the audit entries that acted on them, and
    the datasets whose records cannot be attributed."""
    from ..subjects import lookup

    with handled(as_json):
        config = load(config_file)
        moment = parse_now(now, config)
        report = lookup(config, subject_type, subject_id, moment)
        written = None
        if certificate is not None:
            from ..certificates import Sealer, build, write

            sealed = Sealer(config.settings).seal(build(report, dt.datetime.now(dt.UTC)))
            written = write(sealed, certificate)
    if as_json:
        data = report.as_dict()
        if written is not None:
            data["certificate"] = [str(p) for p in written]
        emit_json(data)
        return
    _print(report, wide)
    if written is not None:
        err.print(f"wrote the certificate to {written[0]} and {written[1]}", highlight=False)


def _print(report: SubjectReport, wide: bool) -> None:
    zone_free = report.now.isoformat(timespec="seconds")
    out.print(
        f"[bold]{report.subject_type} {escape(report.subject_id)}[/] as of {zone_free}: "
        f"{sum(d.records for d in report.datasets)} records, {report.due} due now",
        highlight=False,
    )
    rows: list[tuple[str, ...]] = []
    for view in report.datasets:
        if not view.groups:
            if view.history:
                rows.append((view.dataset, "0", "cleared", "", "", ""))
            continue
        for group in view.groups:
            way = ", ".join(group.holds or group.keep_rules)
            rows.append(
                (
                    view.dataset,
                    str(group.records),
                    group.state + (f" ({group.overdue} overdue)" if group.overdue else ""),
                    group.rule or "",
                    escape(way),
                    _span(group.first, group.last),
                )
            )
    if rows:
        show(SUBJECT_COLUMNS, rows, wide=wide)
    history = [a for view in report.datasets for a in view.history]
    for acted in sorted(history, key=lambda a: a.seq):
        count = f"{acted.records} records" if acted.records is not None else "cascaded rows"
        if acted.late:
            count += f" ({acted.late} late, by up to {(acted.late_by or 0) // 86400} days)"
        out.print(
            f"entry {acted.seq} {acted.at[:19]} run {acted.run_id}: {acted.action} "
            f"{count} of {acted.dataset} (rule {acted.rule})",
            highlight=False,
        )
    for item in report.unattributed:
        out.print(f"cannot attribute {item.dataset}: {item.reason}", highlight=False)
    for note in report.notes:
        out.print(f"note: {note}", highlight=False)


def _span(first: dt.datetime | None, last: dt.datetime | None) -> str:
    if first is None:
        return "—"
    day = first.date().isoformat()
    return day if last is None or last.date() == first.date() else f"{day} … {last.date()}"


@audit_app.command("verify-certificate")
def verify_certificate(
    certificate: Annotated[Path, typer.Argument(help="The certificate's JSON file.")],
    config_file: ConfigOption = None,
    as_json: JsonOption = False,
    state_db: Annotated[
        str | None,
        typer.Option(
            "--state-db",
            help="Check against this state DB (URL); keys from RETENTION_* variables.",
            show_default=False,
        ),
    ] = None,
    verify_key: Annotated[
        list[str] | None,
        typer.Option(
            "--verify-key",
            help="An Ed25519 public key the certificate may be sealed with (PEM or base64, or "
            "a file holding it; repeatable).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check a certificate's seal and the state DB it rests on (the audit entries it cites,
    the chain up to its head): exit 0 when it holds, 1 when anything was edited, 6 when it is
    sealed with a key not held here."""
    from ..auditkeys import load_public_key
    from ..certificates import verify
    from ..statedb import open_state

    with handled(as_json):
        settings: Any = auditor_settings(config_file, state_db)
        extra = [load_public_key(key_text(k)) for k in verify_key or []]
        engine = open_state(state_db or settings.state_db.get_secret_value())
        try:
            checked = verify(certificate, settings, engine, extra)
        finally:
            engine.dispose()
    if as_json:
        emit_json({"ok": True, **checked.__dict__})
        return
    out.print(
        f"[green]ok[/]: certificate for {escape(checked.subject)} holds: seal good, "
        f"{checked.entries} audit entries it cites are there, chain intact up to entry "
        f"{checked.head}",
        highlight=False,
    )
