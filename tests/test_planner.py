"""The planner, on SQLite, PostgreSQL and MariaDB: clocks, precedence, holds, calendar edges."""

from __future__ import annotations

from pathlib import Path

import pytest

from retention.explain import explain
from retention.planner import RulePlan, make_plan

from .conftest import Database
from .scenario import Scenario, at, rule, unreadable_clocks, utc


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Scenario:
    return Scenario(db, tmp_path)


def test_record_clock_exact_boundary(world: Scenario) -> None:
    """A record is due at the exact microsecond its retention ends, not one microsecond before."""
    world.tickets(
        {"id": 1, "created_at": at("2026-01-01 10:00:00")},
        {"id": 2, "created_at": at("2026-01-01 10:00:00.000001")},
        {"id": 3, "created_at": at("2025-12-31 23:59:59.999999")},
    )
    config = world.config([rule(retain="P30D")])
    plan = world.plan(config, utc("2026-01-31 10:00:00"))["r"]
    assert (plan.due, plan.pending) == (2, 1)
    assert plan.samples == ("1", "3")


def test_subject_event_clock_and_active_account(world: Scenario) -> None:
    """`subject.closed` starts the clock; an account that is still active is never due."""
    world.accounts(
        {"id": 1, "closed_at": None},
        {"id": 2, "closed_at": at("2026-01-01 00:00:00")},
        {"id": 3, "closed_at": at("2026-10-01 00:00:00")},
    )
    world.tickets(
        {"id": 10, "account_id": 1, "created_at": at("2010-01-01 00:00:00")},
        {"id": 20, "account_id": 2, "created_at": at("2026-01-01 00:00:00")},
        {"id": 30, "account_id": 3, "created_at": at("2026-01-01 00:00:00")},
        {"id": 40, "account_id": None, "created_at": at("2010-01-01 00:00:00")},
    )
    config = world.config([rule(after="subject.closed", retain="P3M")])
    plan = world.plan(config, utc("2026-11-21 00:00:00"))["r"]
    assert plan.due == 1
    assert plan.samples == ("20",)
    assert plan.pending == 3


def test_grace_and_within(world: Scenario) -> None:
    """Due at clock + retain + grace; overdue once past due + within."""
    world.tickets(
        {"id": 1, "created_at": at("2026-01-01 00:00:00")},  # due 2026-02-15, deadline 03-15
        {"id": 2, "created_at": at("2026-02-01 00:00:00")},  # due 2026-03-15
        {"id": 3, "created_at": at("2026-02-10 00:00:00")},  # due 2026-03-24
    )
    config = world.config([rule(retain="P1M", grace="P14D", within="P1M")])
    at_deadline = world.plan(config, utc("2026-03-15 00:00:00"))["r"]
    assert (at_deadline.due, at_deadline.actionable, at_deadline.overdue) == (2, 2, 0)
    plan = world.plan(config, utc("2026-03-15 00:00:00.000001"))["r"]
    assert (plan.due, plan.actionable, plan.overdue, plan.pending) == (2, 2, 1, 1)


def test_where_filter(world: Scenario) -> None:
    """Only records matching `where` are covered; lists and null are understood."""
    world.tickets(
        {"id": 1, "created_at": at("2020-01-01"), "status": "closed"},
        {"id": 2, "created_at": at("2020-01-01"), "status": "open"},
        {"id": 3, "created_at": at("2020-01-01"), "status": "resolved"},
        {"id": 4, "created_at": at("2020-01-01"), "status": None},
    )
    config = world.config(
        [
            rule("lists", where={"status": ["closed", "resolved"]}),
            rule("nulls", where={"status": None}),
            rule("mixed", where={"status": ["open", None]}),
        ]
    )
    plan = world.plan(config, utc("2026-01-01"))
    assert plan["lists"].samples == ("1", "3")
    assert plan["nulls"].samples == ("4",)
    assert plan["mixed"].samples == ("2",)  # 4 is due for `nulls` too, declared first
    assert (plan["mixed"].in_scope, plan["mixed"].superseded) == (2, 1)
    assert plan["lists"].in_scope == 2


def test_keep_rule_blocks_until_due(world: Scenario) -> None:
    """A keep rule not yet due blocks delete; once its period ends the delete goes ahead."""
    world.tickets(
        {"id": 1, "created_at": at("2020-01-01"), "status": "invoice"},
        {"id": 2, "created_at": at("2024-06-01"), "status": "invoice"},
        {"id": 3, "created_at": at("2024-06-01"), "status": "chat"},
    )
    config = world.config(
        [
            rule("delete", retain="P1Y"),
            rule("keep", retain="P5Y", action="keep", where={"status": "invoice"}),
        ]
    )
    plan = world.plan(config, utc("2026-01-01"))
    assert (plan["delete"].due, plan["delete"].blocked, plan["delete"].actionable) == (3, 1, 2)
    assert plan["delete"].samples == ("1", "3")
    assert (plan["keep"].in_scope, plan["keep"].due, plan["keep"].pending) == (2, 1, 1)


def test_keep_rule_whose_clock_has_not_started_blocks(world: Scenario) -> None:
    """A keep rule counted from an event that has not happened yet keeps the record."""
    world.accounts({"id": 1, "closed_at": None})
    world.tickets({"id": 1, "account_id": 1, "created_at": at("2020-01-01")})
    config = world.config(
        [
            rule("delete", retain="P1Y"),
            rule("keep", after="subject.closed", retain="P1Y", action="keep"),
        ]
    )
    plan = world.plan(config, utc("2026-01-01"))["delete"]
    assert (plan.due, plan.blocked, plan.actionable) == (1, 1, 0)


def test_holds_by_subject_dataset_and_rule(world: Scenario) -> None:
    """Holds scoped by subject, dataset or rule cover exactly their records; released: none."""
    world.accounts({"id": 1}, {"id": 2}, {"id": 3})
    world.tickets(
        *(
            {"id": i, "account_id": (i % 3) + 1, "created_at": at("2020-01-01")}
            for i in range(1, 10)
        )
    )
    rules = [rule("a"), rule("b")]
    holds = {
        "holds": [
            {"id": "subject", "subjects": {"account": [2]}},
            {"id": "released", "active": False},
            {"id": "rule-b", "rules": ["b"], "subjects": {"account": ["3"]}},
        ]
    }
    config = world.config(rules, holds=holds)
    plan = world.plan(config, utc("2026-01-01"))
    assert (plan["a"].held, plan["a"].actionable) == (3, 6)
    # b's three free records are account 1's, which a (tied, declared first) deletes
    assert (plan["b"].held, plan["b"].superseded, plan["b"].actionable) == (6, 3, 0)
    by_dataset = world.config(rules, holds={"holds": [{"id": "ds", "datasets": ["tickets"]}]})
    assert world.plan(by_dataset, utc("2026-01-01"))["a"].held == 9


def test_freeze_holds_everything(world: Scenario) -> None:
    """`freeze: true` suspends every destructive action, but the plan still counts."""
    world.tickets({"id": 1, "created_at": at("2020-01-01")})
    config = world.config([rule()], holds={"freeze": True, "holds": []})
    plan = world.plan(config, utc("2026-01-01"))["r"]
    assert (plan.due, plan.held, plan.actionable) == (1, 1, 0)


def test_month_end_and_leap_day(world: Scenario) -> None:
    """P3M after 30 November is 28 February; P1Y after 29 February is 28 February."""
    world.tickets(
        {"id": 1, "created_at": at("2026-11-30 10:00:00")},
        {"id": 2, "created_at": at("2028-02-29 10:00:00"), "status": "leap"},
    )
    config = world.config(
        [
            rule("m", retain="P3M", where={"status": None}),
            rule("y", retain="P1Y", where={"status": "leap"}),
        ]
    )
    before = world.plan(config, utc("2027-02-28 09:59:59.999999"))
    on = world.plan(config, utc("2027-02-28 10:00:00"))
    assert (before["m"].due, on["m"].due) == (0, 1)
    before_leap = world.plan(config, utc("2029-02-28 09:59:59"))
    on_leap = world.plan(config, utc("2029-02-28 10:00:00"))
    assert (before_leap["y"].due, on_leap["y"].due) == (0, 1)


def test_earliest_and_latest_clocks(world: Scenario) -> None:
    """`earliest` fires on the first event that happened; `latest` only once all have."""
    world.accounts(
        {"id": 1, "closed_at": at("2025-01-01"), "erasure_requested_at": None},
        {"id": 2, "closed_at": None, "erasure_requested_at": at("2025-01-01")},
        {"id": 3, "closed_at": at("2025-01-01"), "erasure_requested_at": at("2025-06-01")},
        {"id": 4},
    )
    world.tickets(
        *({"id": i, "account_id": i, "created_at": at("2025-06-01")} for i in range(1, 5))
    )
    rules = {  # each alone: of two delete rules due, only the earlier due one acts
        "first": rule("first", after={"earliest": ["subject.closed", "subject.erasure_requested"]}),
        "all": rule("all", after={"latest": ["subject.closed", "subject.erasure_requested"]}),
        "mixed": rule(
            "mixed", after={"earliest": ["record.created", "subject.closed"]}, retain="P1Y"
        ),
    }

    def planned(name: str, now: str) -> RulePlan:
        return world.plan(world.config([rules[name]]), utc(now))[name]

    assert planned("first", "2025-06-15").samples == ("1", "2", "3")
    assert planned("all", "2025-06-15").samples == ()
    assert planned("all", "2025-07-02").samples == ("3",)
    assert planned("mixed", "2026-01-01").samples == ("1", "3")
    assert planned("mixed", "2026-06-01 00:00:00").due == 4


def test_earliest_clock_across_month_end_clamping(world: Scenario) -> None:
    """min(clocks) is due exactly on time, even when the due set is not a single cutoff."""
    world.accounts({"id": 1, "closed_at": at("2027-01-31 09:00:00")})
    world.tickets({"id": 1, "account_id": 1, "created_at": at("2027-01-30 11:00:00")})
    config = world.config(
        [rule(after={"earliest": ["record.created", "subject.closed"]}, retain="P1M")]
    )
    # 01-30 11:00 + P1M = 02-28 11:00 and 01-31 09:00 + P1M = 02-28 09:00: the earliest clock
    # (01-30 11:00) is due at 02-28 11:00.
    assert world.plan(config, utc("2027-02-28 10:00:00"))["r"].due == 0
    assert world.plan(config, utc("2027-02-28 11:00:00"))["r"].due == 1


def test_anonymize_superseded_by_delete_and_done(world: Scenario) -> None:
    """When delete and anonymize are both due the delete applies; anonymized rows need no work."""
    world.tickets(
        {"id": 1, "created_at": at("2020-01-01"), "email": "a@example.com", "status": "old"},
        {"id": 2, "created_at": at("2025-12-01"), "email": "b@example.com"},
        {"id": 3, "created_at": at("2025-12-01"), "email": None, "ip": None},
    )
    config = world.config(
        [
            rule("anon", retain="P7D", action="anonymize", anonymize={"email": "hash"}),
            rule("del", retain="P1Y", where={"status": "old"}),
        ]
    )
    plan = world.plan(config, utc("2026-01-01"))
    assert (plan["anon"].due, plan["anon"].superseded, plan["anon"].done) == (3, 1, 1)
    assert plan["anon"].samples == ("2",)


def test_naive_timestamps_read_in_dataset_zone(world: Scenario) -> None:
    """A naive timestamp is wall time in the dataset's zone: Berlin 10:00 is 09:00 UTC in winter."""
    world.tickets({"id": 1, "created_at": at("2026-01-01 10:00:00")})
    datasets = {"tickets": {**_tickets(), "timezone": "Europe/Berlin"}}
    config = world.config([rule(retain="P1D")], datasets=datasets)
    assert world.plan(config, utc("2026-01-02 08:59:59"))["r"].due == 0
    assert world.plan(config, utc("2026-01-02 09:00:00"))["r"].due == 1


def test_rule_days_follow_the_configured_calendar_across_dst(world: Scenario) -> None:
    """P1D in Europe/Berlin keeps the wall time across the spring DST change (23 real hours)."""
    world.tickets({"id": 1, "created_at": at("2026-03-28 12:00:00")})  # 11:00 UTC, CET
    datasets = {"tickets": {**_tickets(), "timezone": "Europe/Berlin"}}
    config = world.config([rule(retain="P1D")], datasets=datasets, timezone="Europe/Berlin")
    # 2026-03-29 12:00 CEST = 10:00 UTC
    assert world.plan(config, utc("2026-03-29 09:59:59"))["r"].due == 0
    assert world.plan(config, utc("2026-03-29 10:00:00"))["r"].due == 1


def test_clock_rounded_to_year_end_in_the_configured_zone(world: Scenario) -> None:
    """Kept five years from the end of the year: a record of 29 February 2024 (Oslo) is due at
    2030-01-01 00:00 Oslo time (2029-12-31 23:00 UTC), to the microsecond, one of 31 December
    23:59:59 too; one of 1 January 2025 00:00 a year later. The same on a subject's clock.
    (Naive timestamps are wall time in the configured zone.)"""
    world.accounts({"id": 1, "closed_at": at("2024-12-31 23:59:59.999999")})
    world.tickets(
        {"id": 1, "created_at": at("2024-02-29 12:00:00")},
        {"id": 2, "created_at": at("2024-12-31 23:59:59")},
        {"id": 3, "created_at": at("2025-01-01 00:00:00")},
        {"id": 4, "account_id": 1, "created_at": at("2029-01-01")},
    )
    rounded = {"event": "record.created", "round_to": "year_end"}
    config = world.config(
        [
            rule("r", after=rounded, retain="P5Y", where={"account_id": None}),
            rule("s", after={"event": "subject.closed", "round_to": "year_end"}, retain="P5Y"),
        ],
        timezone="Europe/Oslo",
    )
    before = world.plan(config, utc("2029-12-31 22:59:59.999999"))
    on = world.plan(config, utc("2029-12-31 23:00:00"))
    assert (before["r"].due, on["r"].due, on["r"].samples) == (0, 2, ("1", "2"))
    assert (before["s"].due, on["s"].due) == (0, 1)
    assert world.plan(config, utc("2030-12-31 23:00:00"))["r"].due == 3


def test_clock_rounded_to_month_and_fiscal_year_end(world: Scenario) -> None:
    """month_end: 29 February + P1M is due on 1 April; fiscal_year_end with the financial year
    starting 07-01: a record of 30 June is due P1Y after 1 July, one of 1 July a year later."""
    world.tickets(
        {"id": 1, "created_at": at("2024-02-29 12:00:00"), "status": "m"},
        {"id": 2, "created_at": at("2026-06-30 23:59:59"), "status": "f"},
        {"id": 3, "created_at": at("2026-07-01 00:00:00"), "status": "f"},
    )
    config = world.config(
        [
            rule(
                "m",
                after={"event": "record.created", "round_to": "month_end"},
                retain="P1M",
                where={"status": "m"},
            ),
            rule(
                "f",
                after={"event": "record.created", "round_to": "fiscal_year_end"},
                retain="P1Y",
                where={"status": "f"},
            ),
        ],
        fiscal_year_start="07-01",
    )
    assert world.plan(config, utc("2024-03-31 23:59:59.999999"))["m"].due == 0
    assert world.plan(config, utc("2024-04-01 00:00:00"))["m"].due == 1
    assert world.plan(config, utc("2027-06-30 23:59:59.999999"))["f"].due == 0
    assert world.plan(config, utc("2027-07-01 00:00:00"))["f"].samples == ("2",)
    assert world.plan(config, utc("2028-07-01 00:00:00"))["f"].due == 2


def test_explain_shows_the_rounded_due_date(world: Scenario) -> None:
    """explain names the rounding in the clock and gives the due date after it."""
    world.tickets({"id": 1, "created_at": at("2026-03-05 10:00:00")})
    config = world.config(
        [rule(after={"event": "record.created", "round_to": "year_end"}, retain="P5Y")]
    )
    (verdict,) = explain(config, "tickets", "1", utc("2027-01-01")).rules
    assert verdict.clock == "record.created rounded to year_end"
    assert verdict.due_at == utc("2032-01-01")


def test_a_delete_held_back_by_a_keep_rule_is_overdue_within_after_the_minimum(
    world: Scenario,
) -> None:
    """A delete due after P1Y with `within: P1M`, blocked by a P5Y minimum: blocked and never
    overdue while the minimum runs, not overdue at once when it ends, overdue one month after
    it ends; explain gives that deadline."""
    world.tickets({"id": 1, "created_at": at("2020-01-01 00:00:00")})
    config = world.config(
        [rule("gone", retain="P1Y", within="P1M"), rule("minimum", action="keep", retain="P5Y")]
    )
    during = world.plan(config, utc("2024-12-31 23:59:59"))["gone"]
    assert (during.due, during.blocked, during.overdue) == (1, 1, 0)
    ended = world.plan(config, utc("2025-02-01 00:00:00"))["gone"]  # at the deadline: on time
    assert (ended.actionable, ended.overdue) == (1, 0)
    assert world.plan(config, utc("2025-02-01 00:00:00.000001"))["gone"].overdue == 1
    verdicts = {v.rule: v for v in explain(config, "tickets", "1", utc("2025-01-15")).rules}
    assert verdicts["gone"].overdue_at == utc("2025-02-01 00:00:00")


def _tickets() -> dict[str, object]:
    from .scenario import TICKETS_DATASET

    return dict(TICKETS_DATASET)


# -- unreadable clocks ---------------------------------------------------------------------------


def test_unreadable_clocks_are_counted_and_never_due(sqlite_db: Database, tmp_path: Path) -> None:
    """A record whose clock holds text that is no timestamp ('yesterday', '2020-13-45', an
    account closed 'soon') is never due and is counted as `unreadable` per rule, in the plan's
    rows, totals and --json; an {earliest: [...]} clock counts it only when no other clock
    makes it due. Before, such records were silently 'not yet due' ('2020-13-45' even due)."""
    world = unreadable_clocks(Scenario(sqlite_db, tmp_path))
    config = world.config(
        [
            rule("age", retain="P30D"),
            rule("closed", after="subject.closed", retain="P30D"),
            rule("either", after={"earliest": ["record.created", "subject.closed"]}),
            rule("statutory", action="keep", retain="P1Y"),
        ]
    )
    result = make_plan(config, utc("2026-06-01"))
    plan = {row.rule: row for row in result.rules}
    assert (plan["age"].due, plan["age"].unreadable, plan["age"].samples) == (1, 2, ("1",))
    assert (plan["closed"].due, plan["closed"].unreadable) == (3, 1)  # ticket 4
    # 2 and 3 are due by their closed account; 4 waits on 'soon' and its own recent date
    assert (plan["either"].due, plan["either"].unreadable) == (3, 1)
    assert plan["statutory"].unreadable == 2
    data = result.as_dict()
    # records 2, 3 and 4, each once; the rule rows add up to 6
    assert (data["totals"]["unreadable"], data["rule_matches"]["unreadable"]) == (3, 6)
    assert [r["unreadable"] for r in data["rules"]] == [2, 1, 1, 2]


def test_explain_says_unreadable_clock(sqlite_db: Database, tmp_path: Path) -> None:
    """`explain` names an unreadable clock as such, not as a clock that has not started."""
    world = unreadable_clocks(Scenario(sqlite_db, tmp_path))
    config = world.config([rule("age", retain="P30D")])
    found = explain(config, "tickets", "2", utc("2026-06-01"))
    assert [v.status for v in found.rules] == ["unreadable clock"]
    assert found.verdict.startswith("unreadable clock: rule age never acts")
    assert [v.status for v in explain(config, "tickets", "5", utc("2026-06-01")).rules] == [
        "clock not started"
    ]


def test_totals_count_records_not_rule_matches(world: Scenario) -> None:
    """Two anonymize rules on the same tickets: each rule row counts them, the totals (and each
    dataset's line in --json) count every record once."""
    world.accounts({"id": 1}, {"id": 2})
    world.tickets(
        *(
            {"id": i, "account_id": 1 if i == 1 else 2, "created_at": at("2020-01-01")}
            | {"email": f"p{i}@example.com", "ip": "10.1.2.3"}
            for i in range(1, 4)
        )
    )
    config = world.config(
        [
            rule("email", action="anonymize", anonymize={"email": "hash"}),
            rule("ip", action="anonymize", anonymize={"ip": "truncate_ip"}),
        ],
        holds={"holds": [{"id": "case-1", "subjects": {"account": [1]}}]},
    )
    data = make_plan(config, utc("2026-01-01")).as_dict()
    assert (data["rule_matches"]["to_act"], data["rule_matches"]["held"]) == (4, 2)
    assert (data["totals"]["to_act"], data["totals"]["held"], data["totals"]["due"]) == (2, 1, 3)
    (tickets,) = data["datasets"]
    assert (tickets["dataset"], tickets["to_act"], tickets["held"]) == ("tickets", 2, 1)
