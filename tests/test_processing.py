"""`retention schedule`: the retention schedule as a record of processing, from the config alone."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from retention.cli import app
from retention.config import load_config
from retention.processing import COLUMNS

from .conftest import Database
from .scenario import Scenario, rule

runner = CliRunner()


def config_with(db: Database, tmp_path: Path) -> Path:
    scenario = Scenario(db, tmp_path)
    return scenario.write(
        [
            rule(
                "tickets.closed",
                retain="P2Y",
                grace="P1M",
                within="P7D",
                period_source="quoted",
                source="§4 Support | tickets",
                summary="Closed tickets\n  go after two years.",
            ),
            rule("tickets.keep", retain="P5Y", action="keep", period_source="chosen"),
        ]
    )


def test_every_rule_of_every_dataset_in_each_format(sqlite_db: Database, tmp_path: Path) -> None:
    """Markdown, CSV and JSON list the same rule × dataset rows with their periods, deadline,
    clause and whether the period is quoted or chosen; nothing is opened but the config."""
    path = config_with(sqlite_db, tmp_path)
    config = load_config(path)
    pairs = [(name, r.id) for name, ds in config.datasets.items() for r in ds.rules]

    result = runner.invoke(app, ["schedule", "-c", str(path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == COLUMNS
    assert [(r["dataset"], r["rule"]) for r in rows] == pairs
    closed = next(r for r in rows if r["rule"] == "tickets.closed")
    assert (closed["due_after"], closed["deadline_after"]) == ("P2Y1M", "P2Y1M7D")
    assert (closed["period_source"], closed["clock"]) == ("quoted", "record.created")
    assert closed["summary"] == "Closed tickets go after two years."

    result = runner.invoke(app, ["schedule", "-c", str(path), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)["schedule"]
    assert [(r["dataset"], r["rule"]) for r in listed] == pairs
    kept = next(r for r in listed if r["rule"] == "tickets.keep")
    assert (kept["deadline_after"], kept["period_source"]) == (None, "chosen")

    out = tmp_path / "schedule.md"
    result = runner.invoke(app, ["schedule", "-c", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "## tickets (support_data)" in text
    assert "| tickets.closed | delete | record.created | P2Y1M | P2Y1M7D | quoted |" in text
    assert "§4 Support \\| tickets" in text  # a pipe in a clause does not break the table


def test_bad_format_and_bad_period_source_are_bad_input(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """An unknown --format exits 2; a period_source other than quoted or chosen is refused by
    validate with the rule's file and field."""
    path = config_with(sqlite_db, tmp_path)
    result = runner.invoke(app, ["schedule", "-c", str(path), "--format", "pdf"])
    assert result.exit_code == 2
    scenario = Scenario(sqlite_db, tmp_path)
    scenario.write([rule("tickets.closed", period_source="guessed")])
    result = runner.invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 2
    assert "period_source" in result.output and "pack.yaml" in result.output
