"""The command line: exit codes scripts can trust, --json for machines, help everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from retention.cli import app

from .conftest import Database
from .scenario import Scenario, at, rule, unreadable_clocks

runner = CliRunner()


@pytest.fixture
def world(sqlite_db: Database, tmp_path: Path) -> Scenario:
    scenario = Scenario(sqlite_db, tmp_path)
    scenario.accounts({"id": 1, "closed_at": at("2025-01-01")}, {"id": 2})
    scenario.tickets(
        {"id": 1, "account_id": 1, "created_at": at("2020-01-01")},
        {"id": 2, "account_id": 2, "created_at": at("2020-01-01")},
        {"id": 3, "account_id": 2, "created_at": at("2026-11-01")},
    )
    return scenario


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_every_command_has_help() -> None:
    """Every command and sub-command documents itself."""
    commands = [
        "validate",
        "plan",
        "explain",
        "holds",
        "run",
        "audit",
        "discover",
        "approve",
        "schedule",
        "restore",
        "replay",
    ]
    for command in commands:
        code, out, _ = invoke(command, "--help")
        assert code == 0 and "Usage" in out, command
    for sub in ["verify", "show", "export"]:
        code, out, _ = invoke("audit", sub, "--help")
        assert code == 0 and "Usage" in out, sub


def test_plan_json_matches_the_table(world: Scenario) -> None:
    """`plan --json` gives the numbers and sample keys; the table shows the same."""
    config = world.write(
        [rule(retain="P1Y")], holds={"holds": [{"id": "h", "subjects": {"account": [2]}}]}
    )
    code, out, _ = invoke("plan", "-c", str(config), "--now", "2026-11-21T00:00:00", "--json")
    assert code == 0
    data = json.loads(out)
    (row,) = data["rules"]
    assert (row["due"], row["held"], row["to_act"], row["sample_keys"]) == (2, 1, 1, ["1"])
    assert data["holds_in_force"] == ["h"]
    code, table, _ = invoke("plan", "-c", str(config), "--now", "2026-11-21T00:00:00")
    assert code == 0 and "r" in table and "tickets" in table


def test_bad_config_exits_2_with_file_line_field(world: Scenario) -> None:
    """Bad input: one line naming file, line and field on stderr, exit 2, nothing run."""
    config = world.write([rule(retain="three months")])
    code, _, err = invoke("plan", "-c", str(config))
    assert code == 2
    assert "pack.yaml:" in err and "retain" in err and "three months" in err


def test_unreachable_store_exits_3_and_others_still_planned(
    world: Scenario, tmp_path: Path
) -> None:
    """A store that cannot be reached skips its rules, others are planned; exit 3."""
    path = world.write([rule(applies_to={"category": "support_data"})])
    data = yaml.safe_load(path.read_text())
    data["stores"]["down"] = {
        "kind": "sql",
        "url": "postgresql+psycopg://nobody:hunter2@127.0.0.1:1/none",
        "connect_timeout": 1,
    }
    data["datasets"]["gone"] = {**data["datasets"]["tickets"], "store": "down"}
    data["subjects"]["account"]["store"] = "app"
    data["datasets"]["gone"].pop("subject")
    path.write_text(yaml.safe_dump(data))
    code, out, err = invoke("plan", "-c", str(path), "--json")
    assert code == 3
    result = json.loads(out)
    assert [r["dataset"] for r in result["rules"]] == ["tickets"]
    assert result["skipped"][0]["store"] == "down"
    assert "hunter2" not in out + err


@pytest.mark.parametrize("live", [True, False])
def test_a_run_without_the_audit_key_is_refused_before_anything(
    world: Scenario, live: bool
) -> None:
    """audit.keys is hmac (the default) and no hmac_key is set: validate warns (the config is
    valid, and an auditor may verify without the key), and a run — live or dry — is refused
    with exit 2 before touching anything: its entries would name no record."""
    world.tickets({"id": 901, "created_at": at("2020-01-01")})
    before = world.ticket_ids()
    config = world.write([rule()], hmac_key=None)
    result = runner.invoke(app, ["validate", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    (warning,) = json.loads(result.stdout)["warnings"]
    assert warning["field"] == "audit.keys" and "RETENTION_HMAC_KEY" in warning["message"]
    args = ["run", "-c", str(config), "--now", "2026-06-01T00:00:00+00:00"]
    result = runner.invoke(app, args + (["--execute"] if live else []))
    assert result.exit_code == 2, result.output
    assert "audit.keys is hmac but no hmac_key is set" in result.output
    assert world.ticket_ids() == before
    result = runner.invoke(app, ["audit", "verify", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entries"] == 0


def test_secrets_never_printed(world: Scenario) -> None:
    """Passwords in URLs and the HMAC key appear in no output, including errors and --json."""
    path = world.write([rule()], hmac_key="s3cret-hmac-key-value")
    for args in (
        ["validate", "--json"],
        ["plan", "--json"],
        ["holds", "--json"],
        ["run", "--json"],
    ):
        _, out, err = invoke(*args, "-c", str(path))
        assert "s3cret-hmac-key-value" not in out + err, args


def test_run_is_dry_unless_execute(world: Scenario) -> None:
    """`run` changes nothing without --execute (dry_run defaults to true); with it, it acts."""
    path = world.write([rule(retain="P1Y")])
    code, out, _ = invoke("run", "-c", str(path), "--json", "--now", "2026-11-21T00:00:00")
    assert code == 0 and json.loads(out)["mode"] == "dry-run"
    assert world.ticket_ids() == [1, 2, 3]
    code, out, _ = invoke(
        "run", "-c", str(path), "--execute", "--json", "--now", "2026-11-21T00:00:00"
    )
    assert code == 0 and json.loads(out)["totals"]["acted"] == 2
    assert world.ticket_ids() == [3]
    code, out, _ = invoke("audit", "verify", "-c", str(path))
    assert code == 0 and "chain intact" in out


def test_explain_gives_the_verdict(world: Scenario) -> None:
    """`explain` names the rule, the due date and the hold that protects a record."""
    path = world.write(
        [rule(retain="P1Y")], holds={"holds": [{"id": "case-17", "subjects": {"account": [2]}}]}
    )
    code, out, _ = invoke(
        "explain", "tickets", "2", "-c", str(path), "--now", "2026-11-21T00:00:00"
    )
    assert code == 0 and "held by case-17" in out
    code, out, _ = invoke(
        "explain", "tickets", "3", "-c", str(path), "--now", "2026-11-21T00:00:00", "--json"
    )
    data = json.loads(out)
    assert data["verdict"].startswith("will be deleted on 2027-11-01")
    code, _, err = invoke("explain", "tickets", "99", "-c", str(path))
    assert code == 1 and "no record" in err


def test_holds_command_counts_records(world: Scenario) -> None:
    """`holds` lists active and released holds with the records each covers now."""
    path = world.write(
        [rule()],
        holds={
            "holds": [
                {"id": "active", "subjects": {"account": [2]}, "review_by": "2026-01-01"},
                {"id": "released", "active": False, "subjects": {"account": [1]}},
            ]
        },
    )
    code, out, _ = invoke("holds", "-c", str(path), "--json", "--now", "2026-11-21T00:00:00")
    assert code == 7, "an active hold is past its review date"
    rows = {h["id"]: h for h in json.loads(out)["holds"]}
    assert rows["active"]["records_covered"] == 2 and rows["active"]["review_overdue"]
    assert rows["released"]["records_covered"] == 1 and not rows["released"]["active"]


def test_holds_exits_7_only_while_an_active_hold_is_past_its_review_date(world: Scenario) -> None:
    """`holds` exits 7 and names the hold when an active hold's review_by has passed; a
    released hold past its date, or one not yet due for review, leaves the exit at 0."""
    holds = {
        "holds": [
            {"id": "case-2026-017", "subjects": {"account": [2]}, "review_by": "2026-06-01"},
            {"id": "case-2025-001", "active": False, "review_by": "2025-01-01"},
        ]
    }
    path = world.write([rule()], holds=holds)
    code, out, err = invoke("holds", "-c", str(path), "--now", "2026-11-21T00:00:00")
    assert code == 7
    assert "review overdue" in err and "case-2026-017" in err and "case-2025-001" not in err
    assert "case-2026-017" in out
    code, _, err = invoke("holds", "-c", str(path), "--now", "2026-05-31T00:00:00")
    assert code == 0 and "review overdue" not in err


def test_plan_warns_when_a_run_would_trip_a_circuit_breaker(world: Scenario) -> None:
    """`plan` warns, naming the rule and the limit, when a live run would refuse it for
    `limits.max_fraction`, and lists it under `breakers` in --json; under the limit, no warning."""
    path = world.write([rule()], limits={"max_fraction": 0.1})
    code, _, err = invoke("plan", "-c", str(path), "--now", "2026-11-21T00:00:00")
    assert code == 0
    assert "a live run would refuse: rule r would delete" in " ".join(err.split())
    assert "limits.max_fraction" in err
    code, out, _ = invoke("plan", "-c", str(path), "--now", "2026-11-21T00:00:00", "--json")
    (breaker,) = json.loads(out)["breakers"]
    assert (breaker["rule"], breaker["dataset"]) == ("r", "tickets")
    path = world.write([rule()], limits={"max_fraction": 1.0})
    code, _, err = invoke("plan", "-c", str(path), "--now", "2026-11-21T00:00:00")
    assert code == 0 and "would refuse" not in err


def test_unknown_rule_filter_is_bad_input(world: Scenario) -> None:
    """`--rule` naming no rule is an error, not an empty plan."""
    path = world.write([rule()])
    code, _, err = invoke("plan", "-c", str(path), "--rule", "nope")
    assert code == 2 and "nope" in err


def test_run_logs_one_event_per_audit_entry_on_stderr(world: Scenario) -> None:
    """With `--log-format json`, structlog mirrors every committed audit entry on stderr, with
    counts and names but never the keys; stdout stays pure --json."""
    path = world.write([rule(retain="P1Y")], audit={"keys": "plain"})
    code, out, err = invoke(
        "run", "-c", str(path), "--execute", "--json", "--now", "2026-11-21", "--log-format", "json"
    )
    assert code == 0
    assert json.loads(out)["totals"]["acted"] == 2
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    audits = [e for e in events if e["event"] == "audit"]
    assert [(e["rule"], e["outcome"], e["count"]) for e in audits] == [
        (None, "started", 0),
        ("r", "done", 2),
        (None, "complete", 2),
    ]
    assert all("keys" not in e for e in audits)


def test_unreadable_clocks_are_a_warning_in_plan_and_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """`plan` and `run` print one warning line naming the rules whose records have an
    unreadable clock, with an `unreadable` column; --json has the counts; exit codes stay 0."""
    world = unreadable_clocks(Scenario(sqlite_db, tmp_path))
    path = world.write([rule("age")])
    code, out, err = invoke("plan", "-c", str(path), "--now", "2026-06-01T00:00:00")
    assert code == 0 and "unreadable" in out
    assert "warning: 2 records have an unreadable clock" in err and "age on tickets: 2" in err
    code, out, _ = invoke("plan", "-c", str(path), "--now", "2026-06-01T00:00:00", "--json")
    assert code == 0 and json.loads(out)["rules"][0]["unreadable"] == 2
    code, out, err = invoke("run", "-c", str(path), "--now", "2026-06-01T00:00:00")
    assert code == 0 and "warning: 2 records have an unreadable clock" in err
    code, out, _ = invoke("run", "-c", str(path), "--now", "2026-06-01T00:00:00", "--json")
    assert code == 0 and json.loads(out)["totals"]["unreadable"] == 2


def test_a_hold_id_that_matches_no_subject_is_a_warning(world: Scenario) -> None:
    """validate, plan and holds warn about a hold id no account has, on stderr and in --json
    ("warnings"), naming the hold, the subject type and the id; the exit code stays 0."""
    path = world.write(
        [rule()], holds={"holds": [{"id": "case-9", "subjects": {"account": [2, 4412]}}]}
    )
    expected = {"hold": "case-9", "subject_type": "account", "id": "4412"}
    for command in ("validate", "plan", "holds"):
        code, out, err = invoke(command, "-c", str(path))
        assert code == 0 and out, command
        assert "warning: hold case-9: account '4412' matches no account" in err, command
        code, out, _ = invoke(command, "-c", str(path), "--json")
        assert code == 0, command
        (warning,) = json.loads(out)["warnings"]
        assert {k: warning[k] for k in expected} == expected, command


def test_help_loads_neither_the_engine_nor_sqlalchemy() -> None:
    """`retention --help` (and `import retention`) imports only the CLI's own layer: no
    SQLAlchemy, pydantic, boto3 or engine module, so help answers in well under half a second."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "sys.argv = ['retention', '--help']\n"
        "from retention.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('sqlalchemy', 'pydantic', 'boto3', 'retention.config', 'retention.planner')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Usage" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_delete_a_keep_rule_can_block_without_within_is_a_warning(world: Scenario) -> None:
    """validate warns, naming the delete rule and the keep rule, when a delete a statutory
    minimum can hold back has no `within` (it would never be overdue); with one, no warning."""
    keep = rule("minimum", action="keep", retain="P5Y")
    path = world.write([rule("gone", retain="P1Y"), keep])
    code, out, err = invoke("validate", "-c", str(path), "--json")
    assert code == 0
    (warning,) = json.loads(out)["warnings"]
    assert warning["field"] == "rule gone: within"
    assert "keep rule minimum can block this delete" in warning["message"]
    code, _, err = invoke("validate", "-c", str(path))
    assert code == 0 and "warning: rule gone: within: keep rule minimum" in err
    path = world.write([rule("gone", retain="P1Y", within="P1M"), keep])
    code, out, _ = invoke("validate", "-c", str(path), "--json")
    assert code == 0 and json.loads(out)["warnings"] == []
