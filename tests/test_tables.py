"""Tables at 80 and 120 columns: every identifying cell (rule, dataset, hold id, run id, dates)
is on screen whole and no line is wider than the terminal; `COLUMNS` sets the width of piped
output and `--wide` prints the full table."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retention.cli import app
from retention.cli.common import fit_consoles
from retention.cli.demo import print_demo_plan
from retention.cli.planning import print_plan
from retention.cli.running import print_run
from retention.config import Config, load_config
from retention.demo import build_company
from retention.executor import Executor, RunResult
from retention.explain import explain
from retention.planner import Plan, make_plan

NOW = "2027-03-15T09:30:00+00:00"
MOMENT = dt.datetime(2027, 3, 15, 9, 30, tzinfo=dt.UTC)
WIDTHS = (80, 120)


@dataclass(frozen=True)
class Company:
    config_file: Path
    config: Config
    plan: Plan
    run: RunResult


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Company:
    """The demo's 24seven company (the longest rule ids), planned and dry-run once."""
    built = build_company(tmp_path_factory.mktemp("tables") / "24seven", "24seven", MOMENT)
    config = load_config(built.config)
    run = Executor(config, now=MOMENT, live=False).run()
    return Company(built.config, config, make_plan(config, MOMENT), run)


def _screen(width: int, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.stdout


def _at(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    fit_consoles()


def _assert_readable(screen: str, width: int, identifiers: set[str]) -> None:
    lines = screen.splitlines()
    for ident in identifiers:
        assert any(ident in line for line in lines), f"{ident!r} is not on screen whole"
    too_wide = [line for line in lines if len(line.rstrip()) > width]
    assert not too_wide, too_wide


def _ids(plan: Plan, *, acting: bool = False) -> set[str]:
    rows = [r for r in plan.rules if not acting or r.action != "keep"]
    return {r.rule for r in rows} | {r.dataset for r in rows}


@pytest.mark.parametrize("width", WIDTHS)
def test_plan_run_and_demo_show_every_rule_and_dataset_whole(
    company: Company,
    width: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The plan, the run summary and the demo's compact plan name every rule id and dataset in
    full at 80 and 120 columns (the numbers are stacked or abbreviated instead), with no "…"."""
    _at(width, monkeypatch)
    for render, wanted in (
        (lambda: print_plan(company.plan), _ids(company.plan)),
        (lambda: print_run(company.run), _ids(company.plan, acting=True)),
        (lambda: print_demo_plan("24SEVEN", "demo", company.plan), _ids(company.plan)),
    ):
        render()
        screen = capsys.readouterr().out
        assert "…" not in screen
        _assert_readable(screen, width, wanted)


@pytest.mark.parametrize("width", WIDTHS)
def test_plan_command_honours_columns_when_piped(company: Company, width: int) -> None:
    """`retention plan | less` with `COLUMNS` set is laid out for that width, ids whole."""
    screen = _screen(width, "plan", "-c", str(company.config_file), "--now", NOW)
    _assert_readable(screen, width, _ids(company.plan))


@pytest.mark.parametrize("width", WIDTHS)
def test_holds_explain_and_audit_show_ids_and_dates_whole(company: Company, width: int) -> None:
    """`holds` shows each hold id and review date whole; `explain` each rule and its due date;
    `audit show` each run id and rule."""
    config_file = str(company.config_file)
    holds = company.config.load_holds().holds
    wanted = {h.id for h in holds} | {str(h.review_by) for h in holds if h.review_by}
    assert len({h.id for h in holds}) >= 2
    _assert_readable(_screen(width, "holds", "-c", config_file, "--now", NOW), width, wanted)

    screen = _screen(width, "explain", "profiles", "106", "-c", config_file, "--now", NOW)
    verdicts = explain(company.config, "profiles", "106", MOMENT).rules
    wanted = {v.rule for v in verdicts} | {
        f"{v.due_at:%Y-%m-%d %H:%M:%S}" for v in verdicts if v.due_at
    }
    assert len(wanted) >= 2
    _assert_readable(screen, width, wanted)

    screen = _screen(width, "audit", "show", "-c", config_file)
    acted = {o.rule for o in company.run.outcomes if o.acted}
    _assert_readable(screen, width, acted | {company.run.run_id})


def test_a_stacked_row_says_which_date_is_which(company: Company) -> None:
    """At 80 columns `holds` stacks its rows: each date keeps its column's name beside it, so an
    expiry and a review date cannot be mistaken for one another."""
    screen = _screen(80, "holds", "-c", str(company.config_file), "--now", NOW)
    reviewed = [h for h in company.config.load_holds().holds if h.review_by]
    assert reviewed
    stacked = not any("review" in line and "reason" in line for line in screen.splitlines())
    for hold in reviewed:
        assert (f"review by {hold.review_by}" in screen) == stacked, screen


def test_wide_prints_the_full_table_on_one_line_per_row(company: Company) -> None:
    """`--wide` keeps every column header in full on one line, however narrow `COLUMNS`."""
    screen = _screen(80, "plan", "-c", str(company.config_file), "--now", NOW, "--wide")
    header = next(line for line in screen.splitlines() if "superseded" in line)
    for name in ("rule", "dataset", "covered", "already done", "not yet due", "unreadable"):
        assert name in header
    for row in company.plan.rules:
        assert any(row.rule in line and row.dataset in line for line in screen.splitlines())
