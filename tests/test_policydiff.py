"""The policy diff (`retention plan --rules NEW --holds NEW`): exact, record by record, against
two plans computed separately, on every dialect; Markdown for a pull request; exit 1 gates CI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from retention.cli import app
from retention.config import load_config
from retention.planner import make_plan
from retention.policydiff import policy_diff

from .conftest import Database
from .scenario import Scenario, at, rule, utc

NOW = utc("2026-11-21 00:00:00")
runner = CliRunner()
HOLD = {
    "id": "case-1",
    "active": True,
    "reason": "dispute",
    "subjects": {"account": ["3"]},
    "placed_by": "legal@example.org",
}


def rules(period: str, statuses: list[str], closed: str) -> list[dict[str, Any]]:
    return [
        rule("tickets.delete", retain=period, where={"status": statuses}),
        rule(
            "tickets.anonymize",
            after="subject.closed",
            retain=closed,
            action="anonymize",
            anonymize={"email": "hash"},
        ),
    ]


def acme(db: Database, directory: Path) -> tuple[Path, Path, Path]:
    """The acme-style world: the current config, and new rules and holds beside it."""
    world = Scenario(db, directory)
    world.accounts(
        {"id": 1, "closed_at": at("2025-01-01")},
        {"id": 2},
        {"id": 3, "closed_at": at("2026-11-10")},
    )
    tickets = [
        (1, 2, "2023-01-01", "closed"),  # deleted before and after
        (2, 2, "2025-06-01", "closed"),  # newly due: the period is shorter
        (3, 1, "2025-06-01", "open"),  # anonymized before and after
        (4, 1, "2025-06-01", "closed"),  # anonymized before, deleted after
        (5, 3, "2020-01-01", "closed"),  # held before, released after: newly due
        (6, 3, "2026-11-01", "open"),  # newly due: anonymized 7 days after closing
        (7, 2, "2026-01-01", "closed"),  # due under neither
        (8, 2, "2024-01-01", "resolved"),  # no longer due: `resolved` left the filter
    ]
    world.tickets(
        *(
            {"id": i, "account_id": a, "created_at": at(c), "status": s, "email": f"t{i}@x.org"}
            for i, a, c, s in tickets
        )
    )
    config = world.write(
        rules("P2Y", ["closed", "resolved"], "P30D"),
        holds={"holds": [HOLD]},
        audit={"keys": "plain"},
    )
    new = directory / "new"
    (new / "rules").mkdir(parents=True)
    (new / "rules" / "pack.yaml").write_text(
        yaml.safe_dump({"policy": {"name": "v2"}, "rules": rules("P1Y", ["closed"], "P7D")})
    )
    (new / "holds.yaml").write_text(yaml.safe_dump({"holds": [{**HOLD, "active": False}]}))
    return config, new / "rules", new / "holds.yaml"


def test_diff_is_exact_against_two_plans(db: Database, tmp_path: Path) -> None:
    """Per rule and dataset, the diff's before and after are what two plans computed
    separately would act on, and the records that become due, stop being due or change action
    are exactly the ones the scenario says, with their keys."""
    config_path, new_rules, new_holds = acme(db, tmp_path)
    current = load_config(config_path)
    proposed = load_config(config_path, {"rules": [str(new_rules)], "holds": str(new_holds)})
    diff = policy_diff(current, proposed, NOW)
    before = {r.rule: r for r in make_plan(current, NOW).rules}
    after = {r.rule: r for r in make_plan(proposed, NOW).rules}
    rows = {row.rule: row for row in diff.rows}
    assert set(rows) == {"tickets.delete", "tickets.anonymize"}
    for name, row in rows.items():
        assert row.before == before[name].actionable
        assert row.after == after[name].actionable
    delete, anonymize = rows["tickets.delete"], rows["tickets.anonymize"]
    assert (delete.before, delete.after) == (2, 4)
    assert delete.samples == {
        "newly_due": ("2", "5"),
        "no_longer_due": ("8",),
        "changed": ("4",),
    }
    assert (delete.newly_due, delete.no_longer_due, delete.changed) == (2, 1, 1)
    assert (anonymize.before, anonymize.after) == (2, 2)
    assert anonymize.samples == {"newly_due": ("6",), "no_longer_due": (), "changed": ()}
    assert delete.destructive and anonymize.destructive and diff.destructive
    net = sum(r.newly_due - r.no_longer_due for r in diff.rows)
    acted = sum(r.actionable for r in after.values()) - sum(r.actionable for r in before.values())
    assert net == acted


def test_same_rules_no_diff(db: Database, tmp_path: Path) -> None:
    """The current rules against themselves: no row, nothing destructive."""
    config_path, _, _ = acme(db, tmp_path)
    current = load_config(config_path)
    assert policy_diff(current, current, NOW).rows == ()


def test_cli_markdown_and_exit_code(sqlite_db: Database, tmp_path: Path) -> None:
    """`plan --rules NEW --holds NEW --format markdown` prints a table for a pull request and
    exits 1 when anything becomes newly destructive; the current rules exit 0; --json too."""
    config_path, new_rules, new_holds = acme(sqlite_db, tmp_path)
    base = ["plan", "-c", str(config_path), "--now", "2026-11-21T00:00:00+00:00"]
    result = runner.invoke(
        app, [*base, "--rules", str(new_rules), "--holds", str(new_holds), "--format", "markdown"]
    )
    assert result.exit_code == 1, result.stderr
    assert "**destructive: review required**" in result.stdout
    assert "| `tickets.delete` ⚠ | `tickets` | delete | 2 | 4 | 2 | 1 | 1 |" in result.stdout
    result = runner.invoke(app, [*base, "--rules", str(tmp_path / "rules"), "--json"])
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout)["destructive"] is False
    result = runner.invoke(app, [*base, "--rules", str(new_rules), "--format", "html"])
    assert result.exit_code == 2


def test_sample_keys_follow_the_audit_setting(sqlite_db: Database, tmp_path: Path) -> None:
    """Sample keys are shown as the audit log keeps them: an HMAC under `audit.keys: hmac`,
    none under `none`; the counts are the same."""
    config_path, new_rules, new_holds = acme(sqlite_db, tmp_path)
    replace = {"rules": [str(new_rules)], "holds": str(new_holds)}
    for mode in ("hmac", "none"):
        data = yaml.safe_load(config_path.read_text())
        data["audit"] = {"keys": mode}
        config_path.write_text(yaml.safe_dump(data))
        diff = policy_diff(load_config(config_path), load_config(config_path, replace), NOW)
        delete = next(r for r in diff.rows if r.rule == "tickets.delete")
        assert delete.newly_due == 2
        shown = delete.samples["newly_due"]
        if mode == "hmac":
            assert len(shown) == 2 and all(len(k) == 64 and k not in "25" for k in shown)
        else:
            assert shown == ()
