"""Hold ids that match no subject are reported as warnings, on every dialect."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, MetaData, String, Table, insert

from retention.holdcheck import unmatched_hold_ids
from retention.holdsreport import hold_coverage
from retention.planner import make_plan
from retention.stores import Stores
from retention.validate import check_hold_ids

from .conftest import Database
from .scenario import SUBJECTS, TICKETS_DATASET, Scenario, rule, utc

NOW = utc("2026-06-01")


def test_unknown_hold_ids_are_warned_about(db: Database, tmp_path: Path) -> None:
    """An id no account has (4412, "abc" for an integer key) is a warning naming the hold, the
    subject type and the id; "0002" is account 2 and is not; a released hold is not checked.
    The same warnings come from validate, plan and holds."""
    world = Scenario(db, tmp_path)
    world.accounts({"id": 1}, {"id": 2})
    holds = {
        "holds": [
            {"id": "case-1", "subjects": {"account": [1, 4412]}},
            {"id": "case-2", "subjects": {"account": ["0002", "abc"]}},
            {"id": "old", "active": False, "subjects": {"account": [999]}},
        ]
    }
    config = world.config([rule()], holds=holds)
    with Stores(config.settings) as stores:
        warnings = unmatched_hold_ids(config, config.load_holds(), stores)
    assert [(w.hold, w.subject_type, w.id) for w in warnings] == [
        ("case-1", "account", "4412"),
        ("case-2", "account", "abc"),
    ]
    assert "hold case-1: account '4412' matches no account" in warnings[0].message
    assert "not an integer" in warnings[1].message
    assert check_hold_ids(config) == warnings
    assert make_plan(config, NOW).warnings == tuple(warnings)
    assert hold_coverage(config, now=NOW).warnings == tuple(warnings)


def test_text_subject_keys_match_in_canonical_form(db: Database, tmp_path: Path) -> None:
    """With a text subject key, a hold on 5 finds the subject '0005' and " ab " finds 'ab':
    no warning; 'ab' is not 'AB' (except where the collation ignores case)."""
    meta = MetaData()
    people = Table("people", meta, Column("ref", String(20), primary_key=True))
    meta.create_all(db.engine)
    with db.engine.begin() as connection:
        connection.execute(insert(people), [{"ref": "0005"}, {"ref": "ab"}])
    world = Scenario(db, tmp_path)
    subjects = {"person": {"store": "app", "table": "people", "key": "ref"}, **SUBJECTS}
    holds = {"holds": [{"id": "h", "subjects": {"person": [5, " ab ", "zz"]}}]}
    config = world.config(
        [rule()], holds=holds, subjects=subjects, datasets={"tickets": TICKETS_DATASET}
    )
    assert [w.id for w in check_hold_ids(config)] == ["zz"]
