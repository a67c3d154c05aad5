"""A dataset whose records belong to several subjects (``subject: [{type: customer, ...},
{type: user, ...}]``): a rule reads the subject it names, a hold on any of a record's subjects
protects it, plan and explain say which subject a rule read; on SQLite, DuckDB, PostgreSQL and
MariaDB, with a property test that held subjects' records are never touched."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retention.config import load_config
from retention.errors import ConfigErrors
from retention.explain import explain
from retention.testing import examples
from retention.validate import check_stores

from .conftest import Database
from .subjectworld import (
    CUSTOMER,
    CUSTOMERS,
    LINES,
    ORDERS,
    USER,
    USERS,
    World,
    at,
    lines_dataset,
    orders_dataset,
    rule,
    utc,
)

NOW = utc("2026-06-01 00:00:00")
RECENT = at("2026-05-01 00:00:00")
GONE = at("2020-01-01 00:00:00")
BOTH = [CUSTOMER, USER]

BY_CUSTOMER = rule("by-customer", after="subject.closed")  # the first subject: the customer
BY_USER = rule("by-user", after="subject.deleted", subject="user")


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    """Customer 1 closed long ago, 2 open; user 7 deleted long ago, 8 not; recent orders:
    1 (c1, u7), 2 (c1, u8), 3 (c2, u7), 4 (c2, u8), 5 (c1, no user), 6 (no customer, u7)."""
    world = World(db, tmp_path)
    world.rows(CUSTOMERS, {"id": 1, "closed_at": GONE}, {"id": 2})
    world.rows(USERS, {"id": 7, "deleted_at": GONE}, {"id": 8})
    world.rows(
        ORDERS,
        *(
            {"id": order, "customer_id": c, "user_id": u, "created_at": RECENT}
            for order, c, u in (
                (1, 1, 7),
                (2, 1, 8),
                (3, 2, 7),
                (4, 2, 8),
                (5, 1, None),
                (6, None, 7),
            )
        ),
    )
    return world


def test_each_rule_reads_the_subject_it_names(world: World) -> None:
    """A rule without `subject` reads the first subject (the customer); `subject: user` reads
    the user's lifecycle; the plan says which one each read; a run deletes both sets."""
    config = world.config([BY_CUSTOMER, BY_USER], subject=BOTH)
    plan = world.plan(config, NOW)
    assert plan["by-customer"].samples == ("1", "2", "5")
    # order 1 is due under both: the rule declared first takes it (equal due moments)
    assert (plan["by-user"].due, plan["by-user"].superseded) == (3, 1)
    assert plan["by-user"].samples == ("3", "6")
    assert plan["by-customer"].subject == "customer (customer_id)"
    assert plan["by-user"].as_dict()["subject"] == "user (user_id)"
    world.run(config, NOW)
    assert world.order_ids() == [4]


def test_a_hold_on_any_of_a_records_subjects_protects_it(world: World) -> None:
    """A hold on user 8 keeps order 2 from the customer's rule, a hold on customer 2 keeps
    order 3 from the user's rule: whichever subject a rule reads, every subject's holds apply."""
    holds = [
        {"id": "user-case", "subjects": {"user": [8]}},
        {"id": "customer-case", "subjects": {"customer": ["0002"]}},
    ]
    config = world.config([BY_CUSTOMER, BY_USER], subject=BOTH, holds=holds)
    plan = world.plan(config, NOW)
    assert (plan["by-customer"].held, plan["by-user"].held) == (1, 1)
    world.run(config, NOW)
    assert world.order_ids() == [2, 3, 4]
    held = explain(config, "orders", "3", NOW)
    assert held.holds == ("customer-case",)
    assert "customer-case" in held.verdict
    assert {v.rule: v.subject for v in held.rules} == {
        "by-customer": "customer (customer_id)",
        "by-user": "user (user_id)",
    }


def test_a_hold_on_a_cascade_childs_subject_keeps_its_parent(world: World) -> None:
    """A delete cascades to the order's lines; a line naming a held user keeps its order (and
    its lines) from the customer's rule, though the order's own user is not held."""
    world.rows(LINES, {"id": 10, "order_id": 1, "user_id": 8}, {"id": 20, "order_id": 2})
    datasets = {
        "orders": {
            **orders_dataset(BOTH),
            "cascade": [{"dataset": "order_lines", "column": "order_id"}],
        },
        "order_lines": lines_dataset(USER),
    }
    holds = [{"id": "user-case", "subjects": {"user": [8]}}]
    config = world.config([BY_CUSTOMER], datasets=datasets, holds=holds)
    plan = world.plan(config, NOW)["by-customer"]
    assert (plan.held, plan.samples) == (2, ("5",))  # order 1 by its line, 2 by its own user
    world.run(config, NOW)
    assert world.order_ids() == [1, 2, 3, 4, 6]
    assert world.line_ids() == [10, 20]


def test_a_subject_filter_reads_the_rules_subject(world: World) -> None:
    """`subject: user` with a subject filter filters on the user's table."""
    config = world.config(
        [rule("r", where={"subject.deleted_at": None}, subject="user", retain="P0D")],
        subject=BOTH,
    )
    assert world.plan(config, NOW)["r"].samples == ("2", "4")


def test_a_deployer_can_point_a_shipped_rule_at_another_subject(world: World) -> None:
    """`rule_overrides: {ID: {subject: user}}` makes a pack's rule read the user's events."""
    path = world.write(
        [rule("r", after="subject.deleted", subject="customer")],
        subject=BOTH,
        rule_overrides={"r": {"subject": "user"}},
    )
    assert world.plan(load_config(path), NOW)["r"].samples == ("1", "3", "6")


@pytest.mark.parametrize(
    ("rules", "subject", "field", "message"),
    [
        (
            [rule("r", after="subject.closed", subject="nobody")],
            BOTH,
            "rules[0].subject",
            "has no subject 'nobody'",
        ),
        ([rule("r", subject="user")], BOTH, "rules[0].subject", "this rule reads none"),
        (
            [rule("r", after="subject.closed", subject="user")],
            BOTH,
            "rules[0].after",
            "no event 'closed'",
        ),
        ([BY_USER], CUSTOMER, "rules[0].subject", "has no subject 'user'"),
        ([BY_CUSTOMER], [CUSTOMER, CUSTOMER], "datasets.orders.subject", "subject type twice"),
        ([BY_CUSTOMER], [], "datasets.orders.subject", "lists no subject"),
        (
            [BY_CUSTOMER],
            [CUSTOMER, {"type": "staff", "column": "user_id"}],
            "datasets.orders.subject[1].type",
            "unknown subject type 'staff'",
        ),
    ],
)
def test_subjects_the_config_cannot_tell_apart_are_refused(
    world: World, rules: list[dict[str, Any]], subject: Any, field: str, message: str
) -> None:
    """A rule naming a subject its dataset lacks, or reading none; a dataset naming a subject
    type twice, none, or one not declared: each refused with its field before anything runs."""
    with pytest.raises(ConfigErrors) as caught:
        world.config(rules, subject=subject)
    found = [(e.field, e.message) for e in caught.value.errors]
    assert any(f == field and message in m for f, m in found), found


def test_several_subjects_are_for_sql_tables(world: World, tmp_path: Path) -> None:
    """A lake table keeps one subject: several are joined in SQL, which it has not."""
    path = world.write(
        [BY_CUSTOMER],
        stores={
            "app": {"kind": "sql", "url": world.db.url},
            "lake": {"kind": "delta", "root": str(tmp_path / "lake")},
        },
        datasets={"orders": {**orders_dataset(BOTH), "store": "lake"}},
    )
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    found = [(e.field, e.message) for e in caught.value.errors]
    assert any(f == "datasets.orders.subject" and "one subject" in m for f, m in found), found


def test_validate_checks_every_subject_column(world: World) -> None:
    """`validate` checks each listed subject's column exists, naming its place in the list."""
    config = world.config([BY_CUSTOMER], subject=[CUSTOMER, {"type": "user", "column": "usr"}])
    (problem,) = check_stores(config)
    assert problem.where == "datasets.orders.subject[1].column"
    assert problem.line is not None and "usr" in problem.message


# --- the property: held subjects' records are never touched -----------------------------------

CUSTOMER_IDS = (1, 2, 3)
USER_IDS = (7, 8, 9)
RULES = {
    "by-customer": BY_CUSTOMER,
    "by-user": BY_USER,
    "by-record": rule("by-record", retain="P0D"),
    "anon-user": rule(
        "anon-user",
        after="subject.deleted",
        subject="user",
        retain="P0D",
        action="anonymize",
        anonymize={"email": "redact"},
    ),
    "by-country": rule("by-country", where={"subject.country": ["NO", None]}, retain="P0D"),
}


@pytest.fixture(scope="module")
def module_world(module_db: Database) -> Iterator[World]:
    with tempfile.TemporaryDirectory() as directory:
        yield World(module_db, Path(directory))


orders = st.lists(
    st.tuples(st.sampled_from((*CUSTOMER_IDS, None)), st.sampled_from((*USER_IDS, None))),
    min_size=1,
    max_size=8,
)
holds = st.tuples(
    st.sampled_from(("customer", "user")),
    st.sets(st.sampled_from(CUSTOMER_IDS + USER_IDS), min_size=1, max_size=3),
)


@settings(max_examples=examples(15), deadline=None)
@given(
    rows=orders,
    hold=holds,
    rule_ids=st.sets(st.sampled_from(sorted(RULES)), min_size=1),
    closed=st.sets(st.sampled_from(CUSTOMER_IDS)),
    deleted=st.sets(st.sampled_from(USER_IDS)),
    countries=st.lists(st.sampled_from(("NO", "SE", None)), min_size=3, max_size=3),
)
def test_held_subjects_records_are_never_touched(
    module_world: World,
    rows: list[tuple[int | None, int | None]],
    hold: tuple[str, set[int]],
    rule_ids: set[str],
    closed: set[int],
    deleted: set[int],
    countries: list[str | None],
) -> None:
    """Whichever subject column carries the hold, and whichever subject each rule reads, a live
    run neither deletes nor anonymizes a record of a held subject."""
    world = module_world
    world.clear()
    world.rows(
        CUSTOMERS,
        *(
            {"id": c, "country": countries[i], "closed_at": GONE if c in closed else None}
            for i, c in enumerate(CUSTOMER_IDS)
        ),
    )
    world.rows(USERS, *({"id": u, "deleted_at": GONE if u in deleted else None} for u in USER_IDS))
    world.rows(
        ORDERS,
        *(
            {"id": i, "customer_id": c, "user_id": u, "created_at": GONE, "email": f"{i}@x"}
            for i, (c, u) in enumerate(rows)
        ),
    )
    kind, ids = hold
    column = "customer_id" if kind == "customer" else "user_id"
    config = world.config(
        [RULES[r] for r in sorted(rule_ids)],
        subject=BOTH,
        holds=[{"id": "case", "subjects": {kind: sorted(ids)}}],
    )
    world.run(config, NOW)
    emails = world.emails()
    for index, (customer, user) in enumerate(rows):
        if {"customer_id": customer, "user_id": user}[column] in ids:
            assert emails.get(index) == f"{index}@x", (index, customer, user, kind, ids)
