"""`retention report`: the DPO's page, whose numbers are the audit log's and the plan's."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from retention.audit import AuditLog
from retention.cli import app
from retention.config import load_config
from retention.statedb import open_state
from retention.statetables import audit as audit_table

from .conftest import Database
from .scenario import TICKETS_DATASET, Scenario, at, rule

runner = CliRunner()
NOW = "2026-06-01T00:00:00+00:00"
CHROMIUM = shutil.which("chromium")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The state DB the report reads: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    database: Database = request.getfixturevalue("postgres_db")
    return database.url


def enforced(world: Scenario, state_url: str) -> Path:
    """Accounts 7 (held) and 8 with old tickets, a delete rule with a deadline, and one live
    run: 3 tickets deleted, 3 held."""
    world.accounts({"id": 7}, {"id": 8})
    world.tickets(
        *({"id": i, "account_id": 7, "created_at": at("2020-01-01")} for i in range(1, 4)),
        *({"id": i, "account_id": 8, "created_at": at("2020-01-01")} for i in range(4, 7)),
        {"id": 9, "account_id": 8, "created_at": dt.datetime.now()},
    )
    holds = {"holds": [{"id": "case-7", "subjects": {"account": [7]}, "reason": "dispute"}]}
    config = world.write(
        [rule("tickets.old", within="P7D", summary="Old tickets go.", source="§4")],
        holds=holds,
        state_db=state_url,
        limits={"max_fraction": 1},
    )
    result = runner.invoke(app, ["run", "-c", str(config), "--execute", "--now", NOW])
    assert result.exit_code == 0, result.output
    return config


def report(config: Path, *args: str) -> Any:
    result = runner.invoke(app, ["report", "-c", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def audited(config: Path) -> int:
    """Records the audit log says live runs deleted, summed over its entries."""
    loaded = load_config(config)
    engine = open_state(loaded.settings.state_db.get_secret_value())
    try:
        entries = AuditLog.from_settings(engine, loaded.settings).entries()
        return sum(
            e.count
            for e in entries
            if e.action == "delete" and e.outcome == "done" and not e.dry_run
        )
    finally:
        engine.dispose()


def test_numbers_are_the_audit_logs_and_the_plans(world: Scenario, state_url: str) -> None:
    """Deleted in the period equals the audit log's sum; held now, the holds and the chain's
    verdict are the plan's and `audit verify`'s; a period before the run shows nothing done;
    the CSV has one row per rule."""
    config = enforced(world, state_url)
    data = json.loads(report(config, "--json"))
    (line,) = data["rules"]
    assert line["rule"] == "tickets.old" and line["source"] == "§4"
    assert line["deleted"] == audited(config) == 3
    assert (line["held"], line["to_act"], line["due"]) == (3, 0, 3)
    assert (data["totals"]["deleted"], data["totals"]["held"], data["totals"]["due"]) == (3, 3, 3)
    (hold,) = data["holds"]
    assert (hold["id"], hold["active"], hold["records"], hold["reason"]) == (
        "case-7",
        True,
        3,
        "dispute",
    )
    assert data["chain"]["ok"] and data["chain"]["entries"] > 0
    assert sum(sum(days.values()) for days in data["daily"].values()) == 3

    today = dt.date.today()
    before = json.loads(
        report(config, "--json", "--from", "2020-01-01", "--to", str(today - dt.timedelta(days=2)))
    )
    assert before["rules"][0]["deleted"] == 0 and before["daily"] == {}

    rows = list(csv.DictReader(io.StringIO(report(config, "--format", "csv"))))
    assert [(r["rule"], r["deleted"], r["held"]) for r in rows] == [("tickets.old", "3", "3")]


def test_on_time_and_late_are_counted_per_record_across_a_table_and_a_file_tree(
    world: Scenario, state_url: str, tmp_path: Path
) -> None:
    """Each record a rule deleted is counted on time or late from its own facts in the audit
    log, whatever store it was in: two tickets and a file past their deadline, a ticket and a
    file acted on before theirs; the page, the CSV and `--json` say the same."""
    world.accounts({"id": 7})
    world.tickets(
        {"id": 1, "account_id": 7, "created_at": at("2020-01-01")},
        {"id": 2, "account_id": 7, "created_at": at("2020-02-01")},
        {"id": 3, "account_id": 7, "created_at": at("2026-04-28")},  # deadline 2026-06-04
    )
    tree = tmp_path / "tree"
    for name, when in (("7/old.bin", "2020-01-01"), ("7/new.bin", "2026-04-28")):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("x")
        stamp = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC).timestamp()
        os.utime(tree / name, (stamp, stamp))
    config = world.write(
        [
            rule("tickets.old", within="P7D"),
            rule("files.old", applies_to={"dataset": "files"}, within="P7D"),
        ],
        datasets={
            "tickets": TICKETS_DATASET,
            "files": {"store": "tree", "glob": "{account}/*.bin", "category": "uploads"},
        },
        stores={
            "app": {"kind": "sql", "url": world.db.url},
            "tree": {"kind": "filesystem", "root": str(tree)},
        },
        state_db=state_url,
    )
    ran = runner.invoke(app, ["run", "-c", str(config), "--execute", "--now", NOW])
    assert ran.exit_code == 0, ran.output
    lines = {line["rule"]: line for line in json.loads(report(config, "--json"))["rules"]}
    assert [(lines[r]["deleted"], lines[r]["on_time"], lines[r]["late"]) for r in lines] == [
        (3, 1, 2),
        (2, 1, 1),
    ]
    rows = {r["rule"]: r for r in csv.DictReader(io.StringIO(report(config, "--format", "csv")))}
    assert (rows["files.old"]["on_time"], rows["files.old"]["late"]) == ("1", "1")
    page = report(config)
    assert re.search(r'data-rule="tickets.old">.*?data-field="late">2<', page)
    assert re.search(r'data-total="on_time"><b>2</b>', page)
    assert re.search(r'data-total="late"><b>3</b>', page)


def test_an_edited_entry_shows_on_the_page(world: Scenario, state_url: str) -> None:
    """Claiming fewer records were deleted (an entry's count edited) turns the verdict red."""
    config = enforced(world, state_url)
    loaded = load_config(config)
    engine = open_state(loaded.settings.state_db.get_secret_value())
    with engine.begin() as connection:
        connection.execute(
            update(audit_table).where(audit_table.c.action == "delete").values(count=1)
        )
    engine.dispose()
    page = report(config)
    assert 'id="chain-verdict">NOT intact' in page
    assert json.loads(report(config, "--json"))["chain"]["ok"] is False


def test_bad_dates_and_formats_are_bad_input(world: Scenario) -> None:
    config = world.write([rule()])
    for args in (["--from", "yesterday"], ["--from", "2026-02-01", "--to", "2026-01-01"]):
        result = runner.invoke(app, ["report", "-c", str(config), *args])
        assert result.exit_code == 2, result.output
    result = runner.invoke(app, ["report", "-c", str(config), "--format", "pdf"])
    assert result.exit_code == 2


@pytest.mark.skipif(
    CHROMIUM is None, reason="needs chromium (apt-get install chromium; .ci/run does)"
)
def test_the_page_renders_in_a_browser_with_the_audit_logs_numbers(
    world: Scenario, tmp_path: Path
) -> None:
    """Headless Chromium loads the page with no console message and no request outside it; the
    numbers it shows are the audit log's; a screenshot is kept beside the page."""
    config = enforced(world, f"sqlite:///{tmp_path / 'state.db'}")
    page = tmp_path / "report.html"
    report(config, "-o", str(page))
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.read_text())
    assert CHROMIUM is not None
    base = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--user-data-dir=" + str(tmp_path / "profile"),
    ]
    shown = subprocess.run(
        [*base, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "CONSOLE" not in shown.stderr, shown.stderr
    totals = dict(re.findall(r'data-total="(\w+)"><b>(\d+)</b>', shown.stdout))
    assert int(totals["deleted"]) == audited(config) == 3
    assert int(totals["held"]) == 3
    assert re.search(r'data-hold="case-7">.*?<td class="n">3</td>', shown.stdout)
    assert 'id="chain-verdict">intact' in shown.stdout
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [*base, f"--screenshot={screenshot}", "--window-size=1280,1600", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert screenshot.read_bytes().startswith(b"\x89PNG")
