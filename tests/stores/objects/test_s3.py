"""The S3 store against a moto server on a loopback port: boto3 over real HTTP, no mocks."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text
from typer.testing import CliRunner

from retention.audit import AuditLog
from retention.cli import app
from retention.config import Config
from retention.executor import Executor
from retention.explain import explain
from retention.planner import make_plan
from retention.runevents import RUN_ACTION
from retention.statedb import open_state
from retention.statetables import intents, legal_holds, runs
from retention.stores import Stores
from retention.stores.base import Intent, StoredIntent
from retention.stores.objects.s3 import S3Store
from retention.stores.sql import SqlStore
from retention.testing import FixedClock, Probe, SimulatedCrash

from ...conftest import Database
from ...scenario import Scenario, at, utc
from ..objectworld import DyingEndpoint, object_rule, s3_client, s3_store, seed

NOW = utc("2026-06-01 00:00:00")


def bucket_of(stores: Stores) -> S3Store:
    store = stores["bucket"]
    assert isinstance(store, S3Store)
    return store


OLD = utc("2020-01-01 00:00:00")
# objects uploaded over HTTP are as old as the wall clock; judge them well after that
LATER = dt.datetime.now(dt.UTC) + dt.timedelta(days=40)


@pytest.fixture
def world(sqlite_db: Database, tmp_path: Path) -> Scenario:
    return Scenario(sqlite_db, tmp_path)


@pytest.fixture
def client(moto_endpoint: str) -> Any:
    return s3_client(moto_endpoint)


@pytest.fixture
def bucket(client: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def locked_bucket(client: Any) -> str:
    name = f"lock-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def configure(
    world: Scenario,
    endpoint: str,
    bucket: str,
    rules: list[dict[str, Any]],
    *,
    holds: dict[str, Any] | None = None,
    prefix: str = "customers/{account}/",
    store: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
    **settings: Any,
) -> Config:
    return world.config(
        rules,
        holds=holds,
        datasets={
            "files": {
                "store": "bucket",
                "prefix": prefix,
                "category": "customer_content",
                **(dataset or {}),
            }
        },
        stores={
            "app": {"kind": "sql", "url": world.db.url},
            "bucket": s3_store(bucket, endpoint, **(store or {})),
        },
        audit={"keys": "plain"},
        **settings,
    )


def keys_in(client: Any, bucket: str) -> list[str]:
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found += [item["Key"] for item in page.get("Contents", [])]
    return sorted(found)


def versions_in(client: Any, bucket: str) -> list[tuple[str, bool]]:
    """(key, is delete marker) for every version and marker in the bucket."""
    found = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        found += [(v["Key"], False) for v in page.get("Versions", [])]
        found += [(m["Key"], True) for m in page.get("DeleteMarkers", [])]
    return sorted(found)


def entries(config: Config) -> list[Any]:
    """The batch entries in chain order (the runs' start and end events left out)."""
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        found = AuditLog(engine, keys="plain", hmac_key=None).entries()
        return [e for e in found if e.action != RUN_ACTION]
    finally:
        engine.dispose()


def verify(config: Config) -> bool:
    engine = open_state(config.settings.state_db.get_secret_value())
    key = config.settings.hmac_key
    try:
        log = AuditLog(
            engine, keys="plain", hmac_key=key.get_secret_value().encode() if key else None
        )
        return log.verify().ok
    finally:
        engine.dispose()


def run(config: Config, now: dt.datetime = NOW, *, live: bool = True) -> Any:
    return Executor(config, now=now, live=live, clock=FixedClock(now)).run()


def plan_of(config: Config, now: dt.datetime = NOW, **kwargs: Any) -> dict[str, Any]:
    result = make_plan(config, now, **kwargs)
    assert not result.skipped, result.skipped
    return {row.rule: row for row in result.rules}


# -- listing and planning ------------------------------------------------------------------------


def test_plan_pages_over_more_than_1000_keys_with_one_subject_query_a_page(
    world: Scenario, moto_endpoint: str, bucket: str
) -> None:
    """2,400 objects are planned from pages of at most 1,000 keys; keys outside the template
    are not in the dataset; subject clocks cost one query per page, never one per object."""
    world.accounts(*({"id": i, "closed_at": at("2025-01-01")} for i in range(0, 12, 2)))
    old = [f"customers/{i % 12}/f{i:05d}" for i in range(1800)]
    new = [f"customers/{i % 12}/f{i:05d}" for i in range(1800, 2400)]
    seed(bucket, old, OLD)
    seed(bucket, new, NOW - dt.timedelta(days=1))
    seed(bucket, ["customers/readme.txt", "other/1/x"], OLD)
    config = configure(
        world,
        moto_endpoint,
        bucket,
        [object_rule("age"), object_rule("closed", after="subject.closed", retain="P0D")],
    )
    with Stores(config.settings) as opened:
        sizes = [len(page) for page in bucket_of(opened).pages(config.datasets["files"])]
    assert sum(sizes) == 2400 and max(sizes) <= 1000 and len(sizes) >= 3

    app_config = config.settings.stores["app"]
    app = SqlStore("app", app_config, config.settings)  # type: ignore[arg-type]
    subject_queries: list[str] = []

    @event.listens_for(app.engine, "before_cursor_execute")
    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "accounts" in statement:
            subject_queries.append(statement)

    plans = plan_of(config, stores={"app": app})
    app.dispose()
    age, closed = plans["age"], plans["closed"]
    assert (age.in_scope, age.due, age.actionable) == (2400, 1800, 1800)
    assert age.samples == tuple(sorted(old)[:5])
    assert (closed.due, closed.actionable) == (1200, 1200)  # the even accounts' objects
    assert len(subject_queries) == len(sizes)  # both rules are counted in one listing


def test_a_split_listing_lists_every_key_once_and_deletes_exactly_the_due_unheld(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """3,600 objects in 40 account folders are listed past the first page on four threads,
    split across the prefixes below `customers/`: every key of the dataset comes exactly once,
    and a run deletes exactly the due objects of the unheld accounts (held and recent ones
    stay)."""
    old = [f"customers/{i % 40}/f{i:05d}" for i in range(3000)]
    new = [f"customers/{i % 40}/f{i:05d}" for i in range(3000, 3600)]
    seed(bucket, old, OLD)
    seed(bucket, new, NOW - dt.timedelta(days=1))
    seed(bucket, ["customers/readme.txt", "customers-other/1/x"], OLD)
    held = {"id": "case", "subjects": {"account": [3, 17, 30]}}
    config = configure(
        world,
        moto_endpoint,
        bucket,
        [object_rule("age")],
        holds={"holds": [held]},
        store={"max_concurrency": 4},
    )
    with Stores(config.settings) as opened:
        pages = list(bucket_of(opened).pages(config.datasets["files"]))
    listed = [record.key for page in pages for record in page]
    assert len(pages) > 4 and sorted(listed) == sorted(old + new)  # each key once
    plan = plan_of(config)["age"]
    assert (plan.in_scope, plan.due, plan.held) == (3600, 3000, 225)
    kept = [k for k in old if k.split("/")[1] in {"3", "17", "30"}]
    assert plan.samples == tuple(sorted(set(old) - set(kept))[:5])
    assert run(config).outcomes[0].acted == 3000 - 225
    others = ["customers/readme.txt", "customers-other/1/x"]
    assert keys_in(client, bucket) == sorted(kept + new + others)


def test_a_flat_prefix_is_listed_whole(world: Scenario, moto_endpoint: str, bucket: str) -> None:
    """1,500 keys directly under the prefix (no folders to split by) are one listing: every
    key comes once."""
    keys = [f"exports/{i}-report" for i in range(1500)]
    seed(bucket, keys, OLD)
    config = configure(
        world,
        moto_endpoint,
        bucket,
        [object_rule("age")],
        prefix="exports/{account}-",
        store={"max_concurrency": 4},
    )
    with Stores(config.settings) as opened:
        pages = list(bucket_of(opened).pages(config.datasets["files"]))
    assert [len(page) for page in pages] == [1000, 500]
    assert sorted(r.key for page in pages for r in page) == sorted(keys)


def test_record_created_from_an_object_tag_or_metadata(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """`tag: created` takes record.created from an object tag; `tag: metadata:created` from
    user metadata; without one the clock is LastModified; an unreadable value never starts."""
    client.put_object(Bucket=bucket, Key="customers/1/old", Body=b"x", Tagging="created=2020-01-01")
    client.put_object(Bucket=bucket, Key="customers/1/bad", Body=b"x", Tagging="created=soon")
    client.put_object(Bucket=bucket, Key="customers/1/plain", Body=b"x")
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    rules = [object_rule("age", retain="P30D")]
    tagged = configure(world, moto_endpoint, bucket, rules, dataset={"tag": "created"})
    plan = plan_of(tagged, soon)["age"]
    assert (plan.in_scope, plan.due, plan.samples) == (3, 1, ("customers/1/old",))

    client.put_object(
        Bucket=bucket, Key="customers/2/meta", Body=b"x", Metadata={"created": "2019-05-01"}
    )
    meta = configure(world, moto_endpoint, bucket, rules, dataset={"tag": "metadata:created"})
    assert plan_of(meta, soon)["age"].samples == ("customers/2/meta",)


def test_an_unreadable_tag_or_subject_event_is_counted_and_never_acted_on(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """An object whose `tag:` clock holds no timestamp ("soon"), or whose account was closed
    'soon' (text in the SQLite subject table), is never deleted and is counted as
    `unreadable` in the plan, in the run's outcome and by `explain`."""
    world.accounts({"id": 1, "closed_at": at("2020-01-01")}, {"id": 2})
    with world.db.engine.begin() as connection:
        connection.execute(text("UPDATE accounts SET closed_at = 'soon' WHERE id = 2"))
    client.put_object(Bucket=bucket, Key="customers/1/old", Body=b"x", Tagging="created=2020-01-01")
    client.put_object(Bucket=bucket, Key="customers/1/bad", Body=b"x", Tagging="created=soon")
    client.put_object(Bucket=bucket, Key="customers/2/new", Body=b"x", Tagging="created=2020-01-01")
    rules = [
        object_rule("age", retain="P30D"),
        object_rule("closed", after="subject.closed", retain="P0D"),
    ]
    config = configure(world, moto_endpoint, bucket, rules, dataset={"tag": "created"})
    plan = plan_of(config)
    assert (plan["age"].due, plan["age"].unreadable) == (2, 1)
    assert (plan["closed"].due, plan["closed"].unreadable) == (2, 1)
    assert make_plan(config, NOW).as_dict()["totals"]["unreadable"] == 2
    found = explain(config, "files", "customers/1/bad", NOW)
    assert [v.status for v in found.rules] == ["unreadable clock", "due"]
    result = run(config, live=False)
    assert [(o.rule, o.unreadable) for o in result.outcomes] == [("age", 1), ("closed", 1)]
    Executor(config, now=NOW, live=True).run(["age"])
    assert keys_in(client, bucket) == ["customers/1/bad"]


# -- rules, holds, runs ----------------------------------------------------------------------


def test_subject_linked_rule_deletes_only_closed_accounts_objects(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """Objects follow their account's clock: closed long enough ago → deleted; open, closed
    recently, unknown or unparsable subjects → kept. A second run does nothing."""
    world.accounts(
        {"id": 1, "closed_at": at("2025-01-01")},
        {"id": 2},
        {"id": 3, "closed_at": at("2026-05-20")},
    )
    keys = ["customers/1/a", "customers/0001/b", "customers/2/c", "customers/3/d"]
    seed(bucket, [*keys, "customers/abc/e", "customers/9/f"], OLD)
    config = configure(
        world, moto_endpoint, bucket, [object_rule("closed", after="subject.closed", retain="P30D")]
    )
    result = run(config)
    assert result.outcomes[0].acted == 2 and result.status == "complete"
    assert keys_in(client, bucket) == [
        "customers/2/c",
        "customers/3/d",
        "customers/9/f",
        "customers/abc/e",
    ]
    assert run(config).outcomes[0].acted == 0
    done = [e for e in entries(config) if e.outcome == "done"]
    assert [json.loads(e.keys) for e in done] == [["customers/0001/b", "customers/1/a"]]
    assert verify(config)


def test_holds_keep_objects_until_released(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """An active hold on an account keeps its objects (counted as held); released, they go."""
    seed(bucket, ["customers/1/a", "customers/2/b"], OLD)
    hold = {"id": "case-1", "subjects": {"account": [1]}}
    config = configure(world, moto_endpoint, bucket, [object_rule("age")], holds={"holds": [hold]})
    plan = plan_of(config)["age"]
    assert (plan.due, plan.held, plan.actionable) == (2, 1, 1)
    run(config)
    assert keys_in(client, bucket) == ["customers/1/a"]
    released = configure(
        world,
        moto_endpoint,
        bucket,
        [object_rule("age")],
        holds={"holds": [{**hold, "active": False}]},
    )
    run(released)
    assert keys_in(client, bucket) == []


def test_freeze_and_keep_rules_block(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """A keep rule not yet due blocks the delete; `freeze` holds everything."""
    seed(bucket, ["customers/1/a"], NOW - dt.timedelta(days=40))
    rules = [object_rule("age"), object_rule("statutory", action="keep", retain="P1Y")]
    kept = plan_of(configure(world, moto_endpoint, bucket, rules))["age"]
    assert (kept.due, kept.blocked, kept.actionable) == (1, 1, 0)
    frozen = configure(world, moto_endpoint, bucket, [object_rule("age")], holds={"freeze": True})
    assert plan_of(frozen)["age"].held == 1
    run(frozen)
    assert keys_in(client, bucket) == ["customers/1/a"]


def test_dry_run_changes_nothing_and_batches_are_audited(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """A dry run lists what it would delete, batch by batch, and deletes nothing; the live run
    deletes in DeleteObjects batches (several in flight), one audit entry each; the chain
    verifies; a second run writes nothing."""
    keys = [f"customers/{i}/f" for i in range(1, 8)]
    seed(bucket, keys, OLD)
    config = configure(world, moto_endpoint, bucket, [object_rule("age")], batch_size=2)
    dry = run(config, live=False)
    assert dry.outcomes[0].acted == 7 and keys_in(client, bucket) == sorted(keys)
    assert {e.outcome for e in entries(config)} == {"would delete"}
    live = run(config)
    assert live.outcomes[0].acted == 7 and live.outcomes[0].batches == 4
    assert keys_in(client, bucket) == []
    done = [e for e in entries(config) if e.outcome == "done"]
    assert sorted(k for e in done for k in json.loads(e.keys)) == sorted(keys)
    assert [e.count for e in done] == [2, 2, 2, 1] or sorted(e.count for e in done) == [1, 2, 2, 2]
    before = len(entries(config))
    assert run(config).outcomes[0].acted == 0 and len(entries(config)) == before
    assert verify(config)


def test_circuit_breaker_refuses_before_deleting(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """A rule that would delete more than max_fraction of the objects stops before acting."""
    seed(bucket, ["customers/1/a", "customers/1/b"], OLD)
    seed(bucket, ["customers/1/c"], NOW)
    config = configure(
        world, moto_endpoint, bucket, [object_rule("age")], limits={"max_fraction": 0.5}
    )
    result = run(config)
    assert result.outcomes[0].status == "refused" and result.exit_code == 4
    assert len(keys_in(client, bucket)) == 3


# -- versioned buckets and Object Lock -------------------------------------------------------


def test_versioned_bucket_loses_every_version_and_delete_marker(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """Deleting a key of a versioned bucket removes all its versions and delete markers, not
    just the current one behind a new marker; the plan says which mode applies."""
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"1", b"2"):
        client.put_object(Bucket=bucket, Key="customers/1/doc", Body=body)
    client.delete_object(Bucket=bucket, Key="customers/1/doc")
    client.put_object(Bucket=bucket, Key="customers/2/doc", Body=b"x")
    client.put_object(Bucket=bucket, Key="elsewhere/keep", Body=b"x")
    config = configure(world, moto_endpoint, bucket, [object_rule("age")])
    plan = plan_of(config, LATER)["age"]
    assert plan.actionable == 2 and "every version and delete marker" in plan.extra["mode"]
    run(config, LATER)
    assert versions_in(client, bucket) == [("elsewhere/keep", False)]


def test_object_lock_blocks_keys_and_the_run_audits_them(
    world: Scenario, moto_endpoint: str, locked_bucket: str, client: Any
) -> None:
    """Versions under a legal hold or a retention date still to come cannot be deleted: the
    plan counts their keys as blocked by object lock, the run audits them so and goes on."""
    bucket = locked_bucket
    for name in ("held", "retained", "free"):
        client.put_object(Bucket=bucket, Key=f"customers/1/{name}", Body=b"x")
    client.put_object_legal_hold(Bucket=bucket, Key="customers/1/held", LegalHold={"Status": "ON"})
    client.put_object_retention(
        Bucket=bucket,
        Key="customers/1/retained",
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": LATER + dt.timedelta(days=365)},
    )
    config = configure(world, moto_endpoint, bucket, [object_rule("age")])
    plan = plan_of(config, LATER)["age"]
    assert (plan.due, plan.vetoed, plan.actionable) == (3, 2, 1)
    assert "Object Lock" in str(plan.extra["mode"])
    result = run(config, LATER)
    assert result.status == "complete" and result.outcomes[0].status == "ok"
    assert "2 blocked by object lock" in (result.outcomes[0].message or "")
    assert keys_in(client, bucket) == ["customers/1/held", "customers/1/retained"]
    blocked = [e for e in entries(config) if e.outcome == "blocked by object lock"]
    assert json.loads(blocked[0].keys) == ["customers/1/held", "customers/1/retained"]
    assert "legal hold" in (blocked[0].detail or "")


def test_lock_placed_after_the_check_comes_back_as_a_per_key_error(
    world: Scenario,
    moto_endpoint: str,
    locked_bucket: str,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If a legal hold lands between the lock check and DeleteObjects, moto (like S3) answers
    AccessDenied for that key only: it is reported and audited, the others are deleted."""
    bucket = locked_bucket
    for name in ("a", "b"):
        client.put_object(Bucket=bucket, Key=f"customers/1/{name}", Body=b"x")
    real_delete = S3Store.delete

    def hold_then_delete(self: S3Store, dataset: str, records: Any) -> Any:
        client.put_object_legal_hold(Bucket=bucket, Key="customers/1/a", LegalHold={"Status": "ON"})
        return real_delete(self, dataset, records)

    monkeypatch.setattr(S3Store, "delete", hold_then_delete)
    config = configure(world, moto_endpoint, bucket, [object_rule("age")])
    result = run(config, LATER)
    assert keys_in(client, bucket) == ["customers/1/a"]
    outcome = result.outcomes[0]
    assert outcome.acted == 1 and "1 blocked by object lock" in (outcome.message or "")
    blocked = [e for e in entries(config) if e.outcome == "blocked by object lock"]
    assert json.loads(blocked[0].keys) == ["customers/1/a"]
    assert blocked[0].detail == "AccessDenied"


def test_a_failed_request_is_a_per_key_failure_never_ignored(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """When DeleteObjects itself fails (the bucket is gone), every key of the batch is reported
    failed with the error code."""
    seed(bucket, ["customers/1/a"], OLD)
    config = configure(world, moto_endpoint, bucket, [object_rule("age")])
    files = config.datasets["files"]
    with Stores(config.settings) as opened:
        store = bucket_of(opened)
        (page,) = list(store.pages(files))
        client.delete_object(Bucket=bucket, Key="customers/1/a")
        client.delete_bucket(Bucket=bucket)
        result = store.delete(files, page)
    assert result.deleted == () and result.failed["customers/1/a"].startswith("NoSuchBucket")


def test_mirror_holds_on_and_off(
    world: Scenario, moto_endpoint: str, locked_bucket: str, client: Any
) -> None:
    """mirror_holds puts an S3 legal hold on what an active hold covers and releases only the
    ones it placed: a legal hold somebody else set stays. Without mirror_holds nothing is set."""
    bucket = locked_bucket
    for key in ("customers/1/a", "customers/1/b", "customers/2/theirs", "customers/2/c"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    client.put_object_legal_hold(
        Bucket=bucket, Key="customers/2/theirs", LegalHold={"Status": "ON"}
    )

    def status(key: str) -> str:
        return str(
            client.head_object(Bucket=bucket, Key=key).get("ObjectLockLegalHoldStatus", "OFF")
        )

    holds = {
        "holds": [
            {"id": "case-1", "subjects": {"account": [1]}},
            {"id": "case-2", "subjects": {"account": [2]}},
            {"id": "only-one-rule", "subjects": {"account": [3]}, "rules": ["age"]},
        ]
    }
    rules = [object_rule("age", retain="P10Y")]  # nothing is due: only the mirroring acts
    off = configure(world, moto_endpoint, bucket, rules, holds=holds)
    run(off, LATER)
    assert [status(k) for k in ("customers/1/a", "customers/2/c")] == ["OFF", "OFF"]

    on = configure(world, moto_endpoint, bucket, rules, holds=holds, store={"mirror_holds": True})
    run(on, LATER)
    assert [status(k) for k in ("customers/1/a", "customers/1/b", "customers/2/c")] == ["ON"] * 3
    engine = open_state(on.settings.state_db.get_secret_value())
    with engine.connect() as connection:
        ours = sorted(r[0] for r in connection.execute(select(legal_holds.c.key)))
    engine.dispose()
    assert ours == ["customers/1/a", "customers/1/b", "customers/2/c"]

    released = {"holds": [{**h, "active": False} for h in holds["holds"]]}
    run(
        configure(
            world, moto_endpoint, bucket, rules, holds=released, store={"mirror_holds": True}
        ),
        LATER,
    )
    assert [status(k) for k in ("customers/1/a", "customers/1/b", "customers/2/c")] == ["OFF"] * 3
    assert status("customers/2/theirs") == "ON"
    actions = [e.action for e in entries(on) if e.action.startswith("legal hold")]
    assert actions == ["legal hold on", "legal hold on", "legal hold off"]  # a batch per page


def test_mirror_holds_reach_every_spelling_of_a_held_id(
    world: Scenario, moto_endpoint: str, locked_bucket: str, client: Any
) -> None:
    """A hold on account 5 puts the S3 legal hold on `customers/0005/` and `customers/+5/`
    too (the same account, as the plan and the run judge it), not on `customers/50/`."""
    bucket = locked_bucket
    keys = ["customers/5/a", "customers/0005/b", "customers/+5/c", "customers/50/d"]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    holds = {"holds": [{"id": "case-5", "subjects": {"account": ["5"]}}]}
    config = configure(
        world,
        moto_endpoint,
        bucket,
        [object_rule("age", retain="P10Y")],
        holds=holds,
        store={"mirror_holds": True},
    )
    run(config, LATER)
    status = {
        key: client.head_object(Bucket=bucket, Key=key).get("ObjectLockLegalHoldStatus", "OFF")
        for key in keys
    }
    assert status == {
        "customers/5/a": "ON",
        "customers/0005/b": "ON",
        "customers/+5/c": "ON",
        "customers/50/d": "OFF",
    }


def test_mirror_holds_needs_object_lock(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """On a bucket without Object Lock, mirror_holds is reported (validate and run), and the
    rule does not act rather than act without the mirror."""
    from retention.validate import check_stores

    seed(bucket, ["customers/1/a"], OLD)
    config = configure(
        world,
        moto_endpoint,
        bucket,
        [object_rule("age")],
        holds={"holds": [{"id": "c", "subjects": {"account": [1]}}]},
        store={"mirror_holds": True},
    )
    assert any("Object Lock" in p.message for p in check_stores(config))
    result = run(config)
    assert result.outcomes[0].status == "unreachable" and keys_in(client, bucket) == [
        "customers/1/a"
    ]


# -- crash safety, explain, validate ---------------------------------------------------------


def test_an_interrupted_batch_is_audited_once_by_the_next_run(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """An intent left by a killed run is settled from the bucket: keys that are gone are
    audited as deleted (once), keys still there are not."""
    seed(bucket, ["customers/1/gone", "customers/1/still"], NOW)
    config = configure(world, moto_endpoint, bucket, [object_rule("age")])
    client.delete_object(Bucket=bucket, Key="customers/1/gone")
    engine = open_state(config.settings.state_db.get_secret_value())
    with engine.begin() as connection:
        connection.execute(
            insert(intents).values(
                id="intent-1",
                run_id="killed-run",
                created_at=NOW,
                rule="age",
                dataset="files",
                action="delete",
                keys=json.dumps([["customers/1/gone", None], ["customers/1/still", None]]),
                children="[]",
            )
        )
    engine.dispose()
    result = run(config)
    assert result.recovered == 1
    (entry,) = [e for e in entries(config) if e.run_id == "killed-run"]
    assert json.loads(entry.keys) == ["customers/1/gone"] and "interruption" in (entry.detail or "")
    assert entry.records is None  # an intent written before intents kept facts has none
    assert run(config).recovered == 0


def test_explain_an_object(world: Scenario, moto_endpoint: str, bucket: str) -> None:
    """`explain` works on an object key: its clock, due date and verdict, holds included."""
    from retention.explain import explain

    seed(bucket, ["customers/1/a"], OLD)
    hold = {"id": "case-1", "subjects": {"account": [1]}}
    config = configure(world, moto_endpoint, bucket, [object_rule("age")], holds={"holds": [hold]})
    found = explain(config, "files", "customers/1/a", NOW)
    assert found.rules[0].status == "held" and found.holds == ("case-1",)
    assert found.rules[0].clock_start == OLD
    assert "held by case-1" in found.verdict


def test_validate_reports_a_missing_bucket(world: Scenario, moto_endpoint: str) -> None:
    """`validate` reaches the bucket and says when it is not there."""
    from retention.validate import check_stores

    config = configure(world, moto_endpoint, "no-such-bucket-here", [object_rule("age")])
    problems = check_stores(config)
    assert (
        problems
        and problems[0].unreachable
        and "no-such-bucket-here" in str(problems[0].store) + problems[0].message
    )


def test_an_endpoint_that_dies_mid_run_loses_nothing_from_the_audit(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """The endpoint goes away right after the first DeleteObjects succeeded: the run exits 3
    with the cause in one line, is not left `running`, and what the store did before it died is
    in this run's audit; the next run, with the endpoint back, finishes the work, each deleted
    key audited exactly once, and the chain verifies."""
    keys = [f"customers/1/{i:05}" for i in range(1000)]
    seed(bucket, keys, NOW - dt.timedelta(days=60))
    endpoint = DyingEndpoint(moto_endpoint, after=1)
    config = configure(
        world,
        endpoint.url,
        bucket,
        [object_rule("age")],
        store={"max_concurrency": 4, "max_attempts": 1},
        batch_size=200,
    )
    assert config.path is not None
    args = ["run", "-c", str(config.path), "--execute", "--json", "--now", NOW.isoformat()]
    first = CliRunner().invoke(app, args)
    endpoint.die()
    assert first.exit_code == 3, first.output
    (outcome,) = json.loads(first.stdout)["rules"]
    assert outcome["status"] == "unreachable" and "\n" not in outcome["message"]
    done_first = [e for e in entries(config) if e.outcome == "done"]
    assert outcome["acted"] >= 200 and sum(e.count for e in done_first) == outcome["acted"]
    assert len(keys_in(client, bucket)) <= 1000 - outcome["acted"]
    assert "running" not in {row["status"] for row in _runs(config)}
    endpoint.revive()
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert keys_in(client, bucket) == []
    audited = [k for e in entries(config) if e.outcome == "done" for k in json.loads(e.keys)]
    assert sorted(audited) == keys
    assert verify(config)
    endpoint.die()


def _runs(config: Config) -> list[dict[str, Any]]:
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(select(runs))]
    finally:
        engine.dispose()


def test_an_expiring_hold_keeps_objects_until_its_moment(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any
) -> None:
    """Until 00:00:00 of `expires_on` the held account's object stays; from then on it goes."""
    seed(bucket, ["customers/1/a"], OLD)
    hold = {"id": "extended", "subjects": {"account": [1]}, "expires_on": "2026-06-01"}
    config = configure(world, moto_endpoint, bucket, [object_rule("age")], holds={"holds": [hold]})
    before = NOW - dt.timedelta(seconds=1)
    assert make_plan(config, before).rules[0].held == 1
    Executor(config, now=before, live=True).run()
    assert keys_in(client, bucket) == ["customers/1/a"]
    Executor(config, now=NOW, live=True).run()
    assert keys_in(client, bucket) == []


def test_mirrored_holds_follow_blocks_and_expiry(
    world: Scenario, moto_endpoint: str, locked_bucket: str, client: Any
) -> None:
    """S3 objects are only deleted: `blocks: [anonymize]` places no S3 legal hold, `blocks:
    [delete]` does; an expiring hold's S3 legal hold is released by the first run at or after
    its moment."""
    bucket = locked_bucket
    for key in ("customers/1/a", "customers/2/b"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")

    def status(key: str) -> str:
        return str(
            client.head_object(Bucket=bucket, Key=key).get("ObjectLockLegalHoldStatus", "OFF")
        )

    ends = (LATER + dt.timedelta(days=1)).date().isoformat()
    holds = {
        "holds": [
            {"id": "rewrite", "subjects": {"account": [1]}, "blocks": ["anonymize"]},
            {
                "id": "evidence",
                "subjects": {"account": [2]},
                "blocks": ["delete"],
                "expires_on": ends,
            },
        ]
    }
    rules = [object_rule("age", retain="P10Y")]  # nothing is due: only the mirroring acts
    config = configure(
        world, moto_endpoint, bucket, rules, holds=holds, store={"mirror_holds": True}
    )
    run(config, LATER)
    assert [status(k) for k in ("customers/1/a", "customers/2/b")] == ["OFF", "ON"]
    run(config, LATER + dt.timedelta(days=2))
    assert status("customers/2/b") == "OFF"


def test_each_deleted_object_carries_its_subject_due_time_and_lateness(
    world: Scenario, moto_endpoint: str, bucket: str
) -> None:
    """A deleted object's audit entry names, per object, its account (from its key), when it
    became due and how late it went; a dry run's entry says the same of what it would do."""
    world.accounts(
        {"id": 1, "closed_at": at("2025-01-01")}, {"id": 2, "closed_at": at("2026-04-25")}
    )
    seed(bucket, ["customers/1/a", "customers/2/b"], OLD)
    rules = [object_rule("closed", after="subject.closed", retain="P30D", within="P7D")]
    config = configure(world, moto_endpoint, bucket, rules)
    expected = [
        ("1", "2025-01-31T00:00:00+00:00", int((NOW - utc("2025-02-07 00:00:00")).total_seconds())),
        ("2", "2026-05-25T00:00:00+00:00", None),
    ]
    run(config, live=False)
    run(config)
    (would,) = [e for e in entries(config) if e.outcome == "would delete"]
    (done,) = [e for e in entries(config) if e.outcome == "done"]
    assert json.loads(done.keys) == ["customers/1/a", "customers/2/b"]
    assert done.facts() == would.facts() == expected
    assert verify(config)


class _DiesAuditing(Probe):
    """Dies as a batch's audit entry is being written: its objects are gone, its intent is all
    the state DB has of it."""

    def reached(self, point: str, intent: Intent | StoredIntent | None = None) -> None:
        if point == "audit":
            raise SimulatedCrash


@pytest.mark.parametrize("quarantine", [False, True], ids=["delete", "quarantine"])
def test_a_batch_settled_after_a_crash_carries_the_facts_its_intent_kept(
    world: Scenario, moto_endpoint: str, bucket: str, client: Any, quarantine: bool
) -> None:
    """Killed after the bucket deleted a batch (or moved it into quarantine) and before its
    audit entry: the next run settles the batch from the bucket and audits each object that
    went with the facts its intent kept (account, due time, lateness); the chain verifies."""
    world.accounts({"id": 1, "closed_at": at("2025-01-01")})
    seed(bucket, ["customers/1/a", "customers/1/b"], OLD)
    rules = [object_rule("closed", after="subject.closed", retain="P30D", within="P7D")]
    dataset = {"quarantine": "P7D"} if quarantine else None
    config = configure(world, moto_endpoint, bucket, rules, dataset=dataset)
    killed = Executor(config, now=NOW, live=True, clock=FixedClock(NOW), probe=_DiesAuditing())
    with pytest.raises(SimulatedCrash):
        killed.run()
    assert [k for k in keys_in(client, bucket) if k.startswith("customers/")] == []
    assert run(config).recovered == 1
    (entry,) = [e for e in entries(config) if e.run_id == killed.run_id and e.outcome == "done"]
    late = int((NOW - utc("2025-02-07 00:00:00")).total_seconds())
    assert json.loads(entry.keys) == ["customers/1/a", "customers/1/b"]
    assert entry.facts() == [("1", "2025-01-31T00:00:00+00:00", late)] * 2
    assert verify(config)
