"""Holds that end and holds scoped by action, on SQLite, PostgreSQL and MariaDB.

`expires_on: DATE` releases a hold at 00:00:00 of that date in the config's time zone, judged
against the evaluation time (`--now` or the present), to the second; `plan` and `holds` show it
ahead of time and a run audits the release once. `blocks: [delete]` lets an anonymize rule
proceed on what the hold covers while deletes stay suspended; without `blocks` a hold suspends
every destructive action, as before.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from retention.audit import AuditLog
from retention.cli import app
from retention.config import Config, load_config
from retention.errors import ConfigError
from retention.executor import Executor
from retention.holds import HoldsFile
from retention.holdsreport import hold_coverage
from retention.planner import make_plan
from retention.statedb import open_state

from .conftest import Database
from .scenario import TICKETS, Scenario, at, rule, utc

BERLIN = "Europe/Berlin"
# 2026-06-01 00:00:00 in Berlin (CEST, UTC+2) is 2026-05-31 22:00:00 UTC
RELEASED = utc("2026-05-31 22:00:00")
JUST_BEFORE = RELEASED - dt.timedelta(seconds=1)
EXPIRING = {"id": "extended-storage", "subjects": {"account": ["1"]}, "expires_on": "2026-06-01"}


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Scenario:
    return Scenario(db, tmp_path)


def two_accounts(world: Scenario) -> None:
    world.accounts({"id": 1}, {"id": 2})
    world.tickets(
        {"id": 1, "account_id": 1, "created_at": at("2020-01-01"), "email": "a@example.com"},
        {"id": 2, "account_id": 2, "created_at": at("2020-01-01"), "email": "b@example.com"},
    )


def configure(world: Scenario, rules: list[dict[str, Any]], *holds: dict[str, Any]) -> Config:
    return world.config(rules, holds={"holds": list(holds)}, timezone=BERLIN)


def release_entries(config: Config) -> list[Any]:
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        log = AuditLog(engine, keys="hmac", hmac_key=b"test-key-not-secret")
        return [e for e in log.entries() if e.action == "release hold"]
    finally:
        engine.dispose()


# -- expires_on ------------------------------------------------------------------------------


def test_an_expiring_hold_holds_to_the_last_second_and_releases_at_its_moment(
    world: Scenario,
) -> None:
    """At 23:59:59 the evening before (Berlin) the hold still keeps account 1's ticket; at
    00:00:00 of `expires_on` it is released and the run deletes it."""
    two_accounts(world)
    config = configure(world, [rule()], EXPIRING)
    before = world.plan(config, JUST_BEFORE)["r"]
    assert (before.due, before.held, before.actionable) == (2, 1, 1)
    Executor(config, now=JUST_BEFORE, live=True).run()
    assert world.ticket_ids() == [1]
    after = world.plan(config, RELEASED)["r"]
    assert (after.due, after.held, after.actionable) == (1, 0, 1)
    Executor(config, now=RELEASED, live=True).run()
    assert world.ticket_ids() == []


def test_plan_and_holds_show_the_release_ahead_of_time(world: Scenario) -> None:
    """Before its moment the plan lists the hold in force and when it is released; `holds`
    shows the moment; after it, both say the hold was released by its expiry."""
    two_accounts(world)
    config = configure(world, [rule()], EXPIRING)
    plan = make_plan(config, JUST_BEFORE)
    assert plan.holds_in_force == ("extended-storage",)
    assert plan.as_dict()["holds_ending"] == [
        {"hold": "extended-storage", "released_at": "2026-06-01T00:00:00+02:00"}
    ]
    (row,) = hold_coverage(config, now=JUST_BEFORE).holds
    assert (row.active, row.expired, row.records) == (True, False, 1)
    assert row.as_dict()["released_at"] == "2026-06-01T00:00:00+02:00"
    later = make_plan(config, RELEASED)
    assert (later.holds_in_force, later.holds_expired, later.holds_ending) == (
        (),
        ("extended-storage",),
        (),
    )
    (row,) = hold_coverage(config, now=RELEASED).holds
    assert row.expired


def test_the_cli_shows_the_expiry_in_plan_and_holds(world: Scenario) -> None:
    """`plan` names the moment the hold is released; `holds --json` marks it expired after."""
    two_accounts(world)
    path = world.write([rule()], holds={"holds": [EXPIRING]}, timezone=BERLIN)
    runner = CliRunner()
    shown = runner.invoke(app, ["plan", "-c", str(path), "--now", "2026-05-31T23:59:59"])
    assert shown.exit_code == 0, shown.output
    assert "hold extended-storage expires: released at 2026-06-01 00:00:00 CEST" in shown.stdout
    listed = runner.invoke(
        app, ["holds", "-c", str(path), "--now", "2026-06-01T00:00:00", "--json"]
    )
    (hold,) = json.loads(listed.stdout)["holds"]
    assert (hold["active"], hold["expired"], hold["expires_on"]) == (True, True, "2026-06-01")


def test_a_release_by_expiry_is_audited_once(world: Scenario) -> None:
    """The first run evaluated at or after the moment audits the release; later runs do not
    repeat it; a run before the moment audits nothing."""
    two_accounts(world)
    config = configure(world, [rule()], EXPIRING)
    Executor(config, now=JUST_BEFORE, live=True).run()
    assert release_entries(config) == []
    Executor(config, now=RELEASED, live=True).run()
    Executor(config, now=RELEASED + dt.timedelta(days=1), live=True).run()
    (entry,) = release_entries(config)
    assert entry.outcome == "expired" and not entry.dry_run
    assert entry.detail == (
        "hold extended-storage released by its expires_on (2026-06-01 00:00:00 CEST)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2027-02-30", "holds[0].expires_on"),
        ("next year", "holds[0].expires_on"),
        ("2027-05-01T12:30:00", "holds[0].expires_on"),
    ],
)
def test_a_bad_expiry_date_names_file_line_and_field(
    world: Scenario, value: str, message: str
) -> None:
    """A date that does not exist, or is no date, is refused with the holds file, its line and
    the field (validate's exit 2), never read as "no expiry"."""
    path = world.write([rule()])
    holds = path.parent / "holds.yaml"
    holds.write_text(f"holds:\n  - id: case\n    expires_on: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path).load_holds()
    assert str(info.value).startswith(f"{holds}:3: {message}:")
    result = CliRunner().invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 2 and f"{holds}:3: {message}" in result.stderr


# -- blocks ----------------------------------------------------------------------------------

ANONYMIZE = rule(
    "pseudonymize", action="anonymize", retain="P1D", anonymize={"email": "hash"}, within="P1D"
)
DELETE = rule("delete", retain="P30D")


def emails(world: Scenario) -> dict[int, str | None]:
    with world.db.engine.connect() as connection:
        return {row[0]: row[1] for row in connection.execute(select(TICKETS.c.id, TICKETS.c.email))}


def test_an_evidence_hold_that_blocks_delete_lets_anonymization_proceed(world: Scenario) -> None:
    """`blocks: [delete]` on account 1: its ticket is pseudonymized (readable card data must
    not survive a legal hold) but not deleted; account 2's ticket is deleted."""
    two_accounts(world)
    hold = {"id": "evidence", "subjects": {"account": ["1"]}, "blocks": ["delete"]}
    config = configure(world, [ANONYMIZE, DELETE], hold)
    plan = world.plan(config, RELEASED)
    assert (plan["pseudonymize"].held, plan["delete"].held) == (0, 1)
    Executor(config, now=RELEASED, live=True).run()
    assert world.ticket_ids() == [1]
    assert emails(world)[1] not in (None, "a@example.com")


def test_a_hold_that_blocks_anonymize_only_lets_delete_proceed(world: Scenario) -> None:
    """`blocks: [anonymize]` suspends the pseudonymization and nothing else."""
    two_accounts(world)
    hold = {"id": "no-rewrite", "subjects": {"account": ["1"]}, "blocks": ["anonymize"]}
    config = configure(world, [ANONYMIZE], hold)
    assert world.plan(config, RELEASED)["pseudonymize"].held == 1
    Executor(config, now=RELEASED, live=True).run()
    assert emails(world)[1] == "a@example.com"
    config = configure(world, [DELETE], hold)
    assert world.plan(config, RELEASED)["delete"].held == 0


def test_a_hold_without_blocks_still_suspends_everything(world: Scenario) -> None:
    """The default is unchanged: no `blocks`, neither anonymize nor delete touches account 1."""
    two_accounts(world)
    config = configure(world, [ANONYMIZE, DELETE], {"id": "case", "subjects": {"account": ["1"]}})
    Executor(config, now=RELEASED, live=True).run()
    assert world.ticket_ids() == [1] and emails(world)[1] == "a@example.com"


@pytest.mark.parametrize(
    ("value", "line"),
    [("[]", "holds[0].blocks"), ("[keep]", "holds[0].blocks[0]"), ("delete", "holds[0].blocks")],
)
def test_blocks_must_name_destructive_actions(world: Scenario, value: str, line: str) -> None:
    """An empty list would hold nothing (refused, fail closed); `keep` destroys nothing; a
    bare word is not a list."""
    path = world.write([rule()])
    holds = path.parent / "holds.yaml"
    holds.write_text(f"holds:\n  - id: case\n    blocks: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path).load_holds()
    assert str(info.value).startswith(f"{holds}:3: {line}:")


# -- property: a hold is never treated as expired before its moment ---------------------------

ZONES = st.sampled_from(["UTC", BERLIN, "America/New_York", "Pacific/Chatham", "Asia/Kolkata"])


@settings(max_examples=300, deadline=None)
@given(
    zone=ZONES,
    expires=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 12, 31)),
    offset=st.integers(min_value=-3 * 86_400, max_value=3 * 86_400),
    blocks=st.sampled_from([None, ["delete"], ["anonymize"], ["delete", "anonymize"]]),
    action=st.sampled_from(["delete", "anonymize"]),
)
def test_a_hold_is_never_treated_as_expired_before_its_moment(
    zone: str, expires: dt.date, offset: int, blocks: list[str] | None, action: str
) -> None:
    """For any zone, date and moment near it (DST changes included): before 00:00:00 of
    `expires_on` in the config's zone the hold is in force and applies to every action it
    blocks; from that second on it is released; a file judged at no moment never expires."""
    tz = ZoneInfo(zone)
    midnight = dt.datetime.combine(expires, dt.time.min, tzinfo=tz)
    moment = (midnight.astimezone(dt.UTC) + dt.timedelta(seconds=offset)).astimezone(tz)
    raw = HoldsFile.model_validate(
        {"holds": [{"id": "h", "expires_on": expires.isoformat(), "blocks": blocks}]}
    )
    judged = raw.as_of(moment, tz)
    in_force = moment < midnight
    assert bool(judged.active()) is in_force
    assert bool(judged.expired()) is not in_force
    applies = bool(judged.applicable("tickets", "r", action))
    assert applies is (in_force and (blocks is None or action in blocks))
    assert raw.active() == raw.holds  # no moment given: held, never released by accident


def test_unchanged_holds_at_one_moment_are_the_same_object(world: Scenario) -> None:
    """A batch loop tells "the holds changed" by identity: holds judged at one moment from an
    unchanged file are one object, so a pipelined live run (PostgreSQL) does not retry its
    batch for ever; a new moment is a new judgement."""
    config = configure(world, [rule()], EXPIRING)
    first = config.holds_as_of(JUST_BEFORE)
    assert config.holds_as_of(JUST_BEFORE) is first
    assert config.holds_as_of(RELEASED) is not first
