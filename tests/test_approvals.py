"""Approvals: a rule marked `approval: required` acts live only on a sealed approval of what it
would do now (`retention approve`), void when the rule changes or its plan moves past the margin."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from retention.approvals import load_approvals
from retention.cli import app
from retention.config import load_config
from retention.errors import ConfigError
from retention.executor import Executor
from retention.testing import CrashAt, SimulatedCrash

from .conftest import Database
from .scenario import Scenario, at, rule

runner = CliRunner()
NOW = "2026-11-21T00:00:00+00:00"


def world(db: Database, tmp_path: Path, retain: str = "P30D") -> tuple[Scenario, Path]:
    scenario = Scenario(db, tmp_path)
    scenario.accounts({"id": 1})
    scenario.tickets(
        *({"id": i, "account_id": 1, "created_at": at("2020-01-01")} for i in range(1, 11))
    )
    config = scenario.write([rule("tickets.delete", retain=retain, approval="required")])
    return scenario, config


def cli(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout, and everything printed (the run summary names a refused rule)."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stdout + result.stderr


def test_refused_without_approval_then_acts_once_approved(db: Database, tmp_path: Path) -> None:
    """Without an approval the live run is refused (exit 4, audited, nothing deleted, the plan
    still shows it); `approve` records who approved how many, and the next run deletes; the
    audit log verifies throughout."""
    scenario, config = world(db, tmp_path)
    code, _, _ = cli("plan", "-c", str(config), "--now", NOW)
    assert code == 0
    code, _, stderr = cli("run", "-c", str(config), "--execute", "--now", NOW, "--force")
    assert code == 4 and "needs an approval" in stderr
    assert len(scenario.ticket_ids()) == 10
    assert cli("audit", "verify", "-c", str(config))[0] == 0
    code, stdout, stderr = cli("approve", "tickets.delete", "--by", "dpo@x.org", "-c", str(config),
                               "--now", NOW, "--json")  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout)["counts"] == {"tickets": 10}
    assert (tmp_path / "approvals.yaml").is_file()
    code, _, stderr = cli("run", "-c", str(config), "--execute", "--now", NOW)
    assert code == 0, stderr
    assert scenario.ticket_ids() == []
    assert cli("audit", "verify", "-c", str(config))[0] == 0


def test_void_when_the_plan_grows_past_the_margin(db: Database, tmp_path: Path) -> None:
    """An approval for 10 records does not cover 20 (margin 10%), nor an edited approval file,
    nor a changed rule."""
    scenario, config = world(db, tmp_path)
    assert cli("approve", "tickets.delete", "--by", "dpo", "-c", str(config), "--now", NOW)[0] == 0
    scenario.tickets(
        *({"id": i, "account_id": 1, "created_at": at("2020-01-01")} for i in range(11, 21))
    )
    code, _, stderr = cli("run", "-c", str(config), "--execute", "--now", NOW)
    assert code == 4 and "approved for 10" in stderr
    assert len(scenario.ticket_ids()) == 20
    approvals = tmp_path / "approvals.yaml"
    data = yaml.safe_load(approvals.read_text())
    data["approvals"][0]["counts"]["tickets"] = 20
    approvals.write_text(json.dumps(data))
    code, _, stderr = cli("run", "-c", str(config), "--execute", "--now", NOW)
    assert code == 4 and "does not verify" in stderr
    assert cli("approve", "tickets.delete", "--by", "dpo", "-c", str(config), "--now", NOW)[0] == 0
    scenario.write([rule("tickets.delete", retain="P60D", approval="required")])
    code, _, stderr = cli("run", "-c", str(config), "--execute", "--now", NOW)
    assert code == 4 and "changed since it was approved" in stderr
    assert len(scenario.ticket_ids()) == 20
    assert cli("audit", "verify", "-c", str(config))[0] == 0


def test_crash_mid_run_resumes_on_the_same_approval(db: Database, tmp_path: Path) -> None:
    """An approved run killed after its first batch's intent: the next run settles it and
    finishes the rest on the same approval (fewer than approved is covered), each ticket
    deleted once, and the audit log verifies."""
    scenario, config = world(db, tmp_path)
    data = yaml.safe_load(config.read_text())
    data["batch_size"] = 3
    config.write_text(yaml.safe_dump(data))
    assert cli("approve", "tickets.delete", "--by", "dpo", "-c", str(config), "--now", NOW)[0] == 0
    loaded = load_config(config)
    now = dt.datetime.fromisoformat(NOW)
    with pytest.raises(SimulatedCrash):
        Executor(loaded, now=now, live=True, probe=CrashAt("intent", 2)).run()
    left = len(scenario.ticket_ids())
    assert 0 < left < 10
    result = Executor(load_config(config), now=now, live=True).run()
    assert scenario.ticket_ids() == []
    assert sum(o.acted for o in result.outcomes) <= left
    code, _, output = cli("audit", "verify", "-c", str(config))
    assert code == 0, output
    code, stdout, _ = cli("audit", "export", "-c", str(config), "--format", "jsonl")
    deleted = [
        key
        for line in stdout.splitlines()
        if (entry := json.loads(line))["action"] == "delete" and entry["outcome"] == "done"
        for key in entry.get("keys") or []
    ]
    assert len(deleted) == len(set(deleted)) == 10


def test_a_run_over_the_approval_share_waits_for_an_approval(db: Database, tmp_path: Path) -> None:
    """With limits.approval_share 50%, a rule not marked for approval that would delete 10 of
    12 tickets waits for one (the plan says so, the live run is refused, exit 4, nothing goes,
    --force does not stand in); once approved it deletes; a run under the share needs none."""
    scenario = Scenario(db, tmp_path)
    scenario.accounts({"id": 1})
    old = ({"id": i, "account_id": 1, "created_at": at("2020-01-01")} for i in range(1, 11))
    recent = ({"id": i, "account_id": 1, "created_at": at("2026-11-20")} for i in (11, 12))
    scenario.tickets(*old, *recent)
    limits = {"approval_share": 0.5, "max_fraction": 1}  # the breaker stays out of the way
    config = scenario.write([rule("tickets.delete")], limits=limits)
    code, stdout, _ = cli("plan", "-c", str(config), "--now", NOW, "--json")
    assert code == 0
    (waiting,) = json.loads(stdout)["approvals"]
    assert waiting["rule"] == "tickets.delete" and waiting["dataset"] == "tickets"
    assert "10 of 12 records" in waiting["message"]
    _, _, printed = cli("plan", "-c", str(config), "--now", NOW)
    assert "a live run would wait" in printed and "approval_share" in printed
    code, _, stderr = cli("run", "-c", str(config), "--execute", "--now", NOW, "--force")
    assert code == 4 and "approval_share 50%" in stderr
    assert len(scenario.ticket_ids()) == 12
    assert cli("approve", "tickets.delete", "--by", "dpo", "-c", str(config), "--now", NOW)[0] == 0
    assert json.loads(cli("plan", "-c", str(config), "--now", NOW, "--json")[1])["approvals"] == []
    code, _, stderr = cli("run", "-c", str(config), "--execute", "--now", NOW)
    assert code == 0, stderr
    assert scenario.ticket_ids() == [11, 12]
    scenario.tickets(
        {"id": 13, "account_id": 1, "created_at": at("2020-01-01")},
        *({"id": i, "account_id": 1, "created_at": at("2026-11-20")} for i in range(14, 17)),
    )
    (tmp_path / "approvals.yaml").unlink()
    code, _, stderr = cli("run", "-c", str(config), "--execute", "--now", NOW)
    assert code == 0, stderr  # 1 of 6: under the share
    assert scenario.ticket_ids() == [11, 12, 14, 15, 16]
    assert cli("audit", "verify", "-c", str(config))[0] == 0


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.one_of(st.none(), st.integers(), st.text(max_size=8), st.booleans()),
            lambda inner: st.one_of(
                st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda data: json.dumps({"approvals": data}).encode()),
    )
)
def test_any_approvals_file_loads_or_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    """Any bytes in approvals.yaml load as approvals or raise ConfigError, quickly."""
    path = tmp_path / "approvals.yaml"
    path.write_bytes(content)
    started = time.monotonic()
    with contextlib.suppress(ConfigError):
        load_approvals(path)
    assert time.monotonic() - started < 2
