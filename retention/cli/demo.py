"""`retention demo`: build the embedded demo of every shipped pack and show its plans."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from .common import (
    WideOption,
    app,
    dim,
    err,
    handled,
    out,
)
from .tables import Col, show

if TYPE_CHECKING:
    from ..planner import Plan


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
    wide: WideOption = False,
) -> None:
    """Build an embedded demo of every shipped rule pack (SQLite, no server) and show its plans."""
    from pathlib import Path

    from ..config import load_config
    from ..demo import build_demo
    from ..planner import make_plan

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
            print_demo_plan(
                company.policy, str(company.directory), make_plan(config, moment), wide=wide
            )
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


DEMO_COLUMNS = (
    Col("rule", ident=True),
    Col("dataset", ident=True),
    Col("action", ident=True),
    Col("to act", "act", numeric=True),
    Col("overdue", "late", numeric=True),
    Col("held", numeric=True),
    Col("blocked", "blk", numeric=True),
    Col("waiting", "wait", numeric=True),
)


def print_demo_plan(policy: str, where: str, result: Plan, *, wide: bool = False) -> None:
    """One company's plan, compact: per rule, what is to act on, overdue, held, blocked, waiting."""
    rows = result.rules
    totals = result.totals()  # records, each once however many rules match it
    act, overdue, held, blocked = (totals[k] for k in ("to_act", "overdue", "held", "blocked"))
    out.print(f"\n[bold]{escape(policy)}[/]  ({escape(where)})", highlight=False)
    out.print(
        f"  to act on now: [bold]{act}[/] records ([red]{overdue} overdue[/]) · held: {held} · "
        f"blocked by a legal minimum: {blocked} · holds in force: "
        f"{', '.join(result.holds_in_force) or 'none'}",
        highlight=False,
    )
    table = []
    for row in rows:
        keep = row.action == "keep"
        table.append(
            (
                row.rule,
                row.dataset,
                row.action,
                "—" if keep else (f"[bold]{row.actionable}[/]" if row.actionable else "0"),
                "—" if keep else (f"[red]{row.overdue}[/]" if row.overdue else "0"),
                "—" if keep else dim(row.held),
                "—" if keep else dim(row.blocked),
                f"{row.pending} kept" if keep else str(row.pending),
            )
        )
    show(DEMO_COLUMNS, table, wide=wide, plain=True)
    for skipped in result.skipped:
        err.print(
            f"[yellow]skipped[/] {len(skipped.rules)} rule(s) on store {skipped.store}: "
            f"{skipped.message}",
            highlight=False,
        )
