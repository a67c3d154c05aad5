"""`where: {subject.country: [NO]}`: rules filtered on a column of the subject's table, joined in
SQL, in plan, explain and batched runs, on SQLite, DuckDB, PostgreSQL and MariaDB; a subject
value that cannot be read keeps the record (fail closed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retention.config import load_config
from retention.errors import ConfigErrors
from retention.executor import Executor
from retention.explain import explain
from retention.planner import make_plan
from retention.validate import check_stores

from .conftest import Database
from .subjectworld import (
    CUSTOMERS,
    LINES,
    ORDERS,
    World,
    at,
    lines_dataset,
    orders_dataset,
    rule,
    utc,
)

NOW = utc("2026-06-01 00:00:00")
OLD = at("2020-01-01 00:00:00")


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    """Customers 1 and 4 in Norway, 2 in Sweden, 3 of no known country; orders 1-6, all old:
    order 4's customer is gone and order 5 names none."""
    world = World(db, tmp_path)
    world.rows(
        CUSTOMERS,
        {"id": 1, "country": "NO", "plan": "pro"},
        {"id": 2, "country": "SE", "plan": "free"},
        {"id": 3, "country": None, "plan": "free"},
        {"id": 4, "country": "NO", "plan": "free"},
    )
    world.rows(
        ORDERS,
        *(
            {"id": order, "customer_id": customer, "created_at": OLD, "email": f"{order}@x.example"}
            for order, customer in ((1, 1), (2, 2), (3, 3), (4, 99), (5, None), (6, 4))
        ),
    )
    return world


def test_a_filtered_delete_covers_only_its_subjects_in_plan_and_batched_run(world: World) -> None:
    """A delete filtered on the customer's country counts and deletes only the orders of
    Norwegian customers, batch by batch; the others are not covered at all."""
    config = world.config(
        [rule("delete-no", where={"subject.country": "NO"})], batch_size=1, audit={"keys": "plain"}
    )
    plan = world.plan(config, NOW)["delete-no"]
    assert (plan.in_scope, plan.due, plan.actionable, plan.samples) == (2, 2, 2, ("1", "6"))
    world.run(config, NOW)
    assert world.order_ids() == [2, 3, 4, 5]


def test_a_filtered_delete_takes_its_records_children_along(world: World) -> None:
    """The lines of a Norwegian customer's order go with it (`cascade`); others' lines stay."""
    world.rows(LINES, {"id": 10, "order_id": 1}, {"id": 20, "order_id": 2})
    datasets = {
        "orders": {
            **orders_dataset(),
            "cascade": [{"dataset": "order_lines", "column": "order_id"}],
        },
        "order_lines": lines_dataset(),
    }
    config = world.config([rule("delete-no", where={"subject.country": ["NO"]})], datasets=datasets)
    world.run(config, NOW)
    assert (world.order_ids(), world.line_ids()) == ([2, 3, 4, 5], [20])


def test_several_subject_filters_must_all_match(world: World) -> None:
    """Two subject filters on one rule are both required, like record filters."""
    config = world.config(
        [rule("delete-no-pro", where={"subject.country": ["NO"], "subject.plan": ["pro"]})]
    )
    assert world.plan(config, NOW)["delete-no-pro"].samples == ("1",)
    world.run(config, NOW)
    assert world.order_ids() == [2, 3, 4, 5, 6]


def test_a_filtered_keep_holds_its_country_and_every_order_of_unknown_country(
    world: World,
) -> None:
    """A longer minimum for one country is a filtered keep rule over the default delete: it
    blocks the Norwegian orders, and also, in doubt, the orders whose customer's country is
    NULL, whose customer row is gone and that name no customer. Only the Swedish order goes."""
    config = world.config(
        [
            rule("keep-no", where={"subject.country": ["NO"]}, retain="P10Y", action="keep"),
            rule("delete-all", retain="P2Y"),
        ]
    )
    plan = world.plan(config, NOW)
    assert plan["keep-no"].in_scope == 5
    delete = plan["delete-all"]
    assert (delete.due, delete.blocked, delete.actionable, delete.samples) == (6, 5, 1, ("2",))
    world.run(config, NOW)
    assert world.order_ids() == [1, 3, 4, 5, 6]


def test_an_unreadable_subject_value_is_never_covered_by_a_destructive_filter(
    world: World,
) -> None:
    """A delete filtered on a country covers no order whose country it cannot read; asking for
    `null` covers the orders of an existing customer with no country, never the order whose
    customer is gone nor the one that names none."""
    config = world.config(
        [
            rule("delete-se-or-fi", where={"subject.country": ["SE", "FI"]}),
            rule("delete-unknown", where={"subject.country": [None]}),
        ]
    )
    plan = world.plan(config, NOW)
    assert plan["delete-se-or-fi"].samples == ("2",)
    assert plan["delete-unknown"].samples == ("3",)
    world.run(config, NOW)
    assert world.order_ids() == [1, 4, 5, 6]


def test_a_filtered_anonymize_changes_only_its_subjects_records(world: World) -> None:
    """An anonymize filtered on the subject's country redacts only the Swedish order."""
    config = world.config(
        [
            rule(
                "anon-se",
                where={"subject.country": "SE"},
                action="anonymize",
                anonymize={"email": "redact"},
            )
        ],
        batch_size=1,
    )
    assert world.plan(config, NOW)["anon-se"].actionable == 1
    world.run(config, NOW)
    emails = world.emails()
    assert emails[2] != "2@x.example"
    assert all(emails[i] == f"{i}@x.example" for i in (1, 3, 4, 5, 6))
    assert world.plan(config, NOW)["anon-se"].done == 1


def test_explain_judges_a_record_by_its_subjects_filter(world: World) -> None:
    """`explain` judges one record with the same subject filter a plan counts."""
    config = world.config(
        [
            rule("keep-no", where={"subject.country": ["NO"]}, retain="P10Y", action="keep"),
            rule("delete-all", retain="P2Y"),
        ]
    )
    norwegian = explain(config, "orders", "1", NOW)
    swedish = explain(config, "orders", "2", NOW)
    statuses = {v.rule: v.status for v in norwegian.rules}
    assert statuses["delete-all"] == "blocked by a keep rule"
    assert "keep-no" in norwegian.verdict
    assert {v.rule: v.status for v in swedish.rules}["delete-all"] == "due"


def test_validate_names_the_line_of_an_unknown_subject_column(world: World) -> None:
    """A subject filter on a column the subject's table does not have is one problem naming
    the pack file, the line of the filter and the field."""
    path = world.write([rule("delete-no", where={"subject.countri": ["NO"]})])
    config = load_config(path)
    (problem,) = check_stores(config)
    pack = path.parent / "rules" / "pack.yaml"
    line = next(
        n for n, text in enumerate(pack.read_text().splitlines(), 1) if "subject.countri" in text
    )
    assert (problem.file, problem.line) == (str(pack), line)
    assert problem.where == "rule delete-no: where.subject.countri"
    assert "countri" in problem.message and "country" in problem.message


@pytest.mark.parametrize(
    ("where", "dataset", "message"),
    [
        ({"subject.": "NO"}, None, "a subject filter names one column"),
        ({"subject.a.b": "NO"}, None, "a subject filter names one column"),
        ({"subject.country": "NO"}, "nosubject", "has no subject"),
        ({"subject.country": "NO"}, "files", "applies to SQL datasets only"),
    ],
)
def test_subject_filters_the_config_cannot_read_are_refused(
    world: World, tmp_path: Path, where: dict[str, str], dataset: str | None, message: str
) -> None:
    """A malformed subject filter, or one on a dataset without a subject table to join (no
    subject, or an object store), is refused before anything runs, naming the rule's field."""
    datasets = None
    if dataset is not None:
        (tmp_path / "files").mkdir()
        datasets = {
            "nosubject": {"store": "app", "table": "orders", "key": "id", "category": "orders"},
            "files": {"store": "files", "glob": "{customer}/*", "category": "files"},
        }
    rules = [rule("r", where=where, applies_to={"dataset": dataset or "orders"})]
    if dataset == "files":
        rules[0]["after"] = "record.created"
    path = world.write(
        rules,
        datasets=datasets,
        stores={
            "app": {"kind": "sql", "url": world.db.url},
            "files": {"kind": "filesystem", "root": str(tmp_path / "files")},
        },
    )
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    errors = [e for e in caught.value.errors if message in str(e)]
    assert errors, [str(e) for e in caught.value.errors]
    assert errors[0].file == str(path.parent / "rules" / "pack.yaml")
    assert errors[0].field is not None and errors[0].field.startswith("rules[0].where")


def test_plan_and_run_refuse_an_unknown_subject_column_and_delete_nothing(world: World) -> None:
    """Planned or run without `validate`, a filter on a column the subject's table lacks skips
    the rule with a message naming the column, and nothing is deleted."""
    config = world.config([rule("delete-no", where={"subject.countri": ["NO"]})])
    plan = make_plan(config, NOW)
    (skipped,) = plan.skipped
    assert skipped.rules == ("delete-no",) and "countri" in skipped.message
    result = Executor(config, now=NOW, live=True).run()
    (outcome,) = result.outcomes
    assert str(outcome.status) != "ok" and "countri" in (outcome.message or "")
    assert world.order_ids() == [1, 2, 3, 4, 5, 6]
