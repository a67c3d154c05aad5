"""The restore window on buckets and file trees (`quarantine: P7D`): a live delete moves its
objects into `.retention-quarantine/` (S3: copy, then delete; files: a rename), `retention
restore --run` puts them back while the window lasts, a run purges them once it has ended, and
`retention replay --since` deletes again what a restore of the bucket or folder brought back."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from retention.cli import app
from retention.config import load_config
from retention.executor import Executor
from retention.planner import make_plan
from retention.stores.sql import make_engine
from retention.testing import CrashAt, FixedClock, SimulatedCrash, examples

from ...conftest import Database
from ...scenario import Scenario, utc
from ..objectworld import DyingEndpoint, object_rule, s3_client, s3_store

NOW = utc("2026-06-01 00:00:00")
OLD = utc("2020-01-01 00:00:00")
AREA = ".retention-quarantine"
KEYS = [f"logs/{i:02d}.log" for i in range(1, 11)]
runner = CliRunner()


class Tree:
    """A bucket (plain or versioned) or a directory, seen from outside retention."""

    def __init__(self, kind: str, tmp_path: Path, endpoint: str | None) -> None:
        self.kind = kind
        self.endpoint = endpoint
        if kind == "files":
            self.root = tmp_path / "tree"
            self.root.mkdir()
        else:
            assert endpoint is not None
            self.client = s3_client(endpoint)
            self.bucket = f"q-{uuid.uuid4().hex[:16]}"
            self.client.create_bucket(Bucket=self.bucket)
            if kind == "s3-versioned":
                self.client.put_bucket_versioning(
                    Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"}
                )

    def store(self, endpoint: str | None = None) -> dict[str, Any]:
        if self.kind == "files":
            return {"kind": "filesystem", "root": str(self.root)}
        # an endpoint that goes away is given up on quickly
        attempts = {"max_attempts": 1} if endpoint else {}
        return s3_store(self.bucket, endpoint or self.endpoint or "", **attempts)

    def put(self, key: str, body: bytes, when: dt.datetime = OLD) -> None:
        if self.kind == "files":
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            os.utime(path, (when.timestamp(), when.timestamp()))
        else:
            seed_object(self.bucket, key, body, when)

    def read(self, key: str) -> bytes:
        if self.kind == "files":
            return (self.root / key).read_bytes()
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def listing(self) -> list[str]:
        """Every live key (the quarantine area included), sorted."""
        if self.kind == "files":
            return sorted(
                str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()
            )
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            found += [item["Key"] for item in page.get("Contents", [])]
        return sorted(found)

    def live(self) -> list[str]:
        return [k for k in self.listing() if not k.startswith(AREA)]

    def kept(self) -> list[str]:
        """The original keys of what the area holds."""
        return sorted(k.split("/", 5)[5] for k in self.listing() if k.startswith(AREA))

    def versions(self) -> list[str]:
        """Every version and delete marker's key (S3 versioned buckets)."""
        found = []
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket):
            found += [v["Key"] for v in page.get("Versions", [])]
            found += [m["Key"] for m in page.get("DeleteMarkers", [])]
        return sorted(found)


def seed_object(bucket: str, key: str, body: bytes, when: dt.datetime) -> None:
    """Put one object straight into the moto server's backend with a LastModified (setup
    only, like :func:`seed`: the code under test talks HTTP)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].put_object(bucket, key, body)
    stored.last_modified = when.astimezone(dt.UTC).replace(tzinfo=None)


@pytest.fixture(params=["files", "s3", "s3-versioned"])
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tree]:
    """A file tree, a plain bucket and a versioned one (moto over HTTP)."""
    endpoint = request.getfixturevalue("moto_endpoint") if request.param != "files" else None
    yield Tree(request.param, tmp_path, endpoint)


def world(
    db: Database, tmp_path: Path, tree: Tree, endpoint: str | None = None, **settings: Any
) -> Path:
    for key in KEYS:
        tree.put(key, f"body of {key}".encode())
    scenario = Scenario(db, tmp_path)
    dataset = "prefix" if tree.kind != "files" else "glob"
    location = "logs/" if tree.kind != "files" else "logs/*.log"
    return scenario.write(
        [object_rule("logs.delete")],
        datasets={
            "files": {
                "store": "tree",
                dataset: location,
                "category": "logs",
                "quarantine": "P7D",
            }
        },
        stores={"app": {"kind": "sql", "url": db.url}, "tree": tree.store(endpoint)},
        audit={"keys": "plain"},
        **settings,
    )


def run(config: Path, moment: dt.datetime = NOW, **kwargs: Any) -> Any:
    return Executor(
        load_config(config), now=moment, live=True, clock=FixedClock(moment), **kwargs
    ).run()


def restore(config: Path, run_id: str, **kwargs: Any) -> Any:
    return Executor(load_config(config), now=NOW, live=True, **kwargs).restore(run_id)


def audit(config: Path) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["audit", "export", "-c", str(config), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def keys_of(config: Path, action: str, run_id: str | None = None) -> list[str]:
    return sorted(
        key
        for entry in audit(config)
        if entry["action"] == action and entry["outcome"] == "done" and not entry["dry_run"]
        if run_id is None or entry["run_id"] == run_id
        for key in entry.get("keys") or []
    )


def verifies(config: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", "-c", str(config)])
    assert result.exit_code == 0, result.output


def test_a_delete_moves_objects_to_quarantine_and_restore_puts_them_back(
    sqlite_db: Database, tmp_path: Path, tree: Tree
) -> None:
    """A live delete empties the dataset and fills the quarantine area with exactly its
    objects; the plan says how many are kept and when they are purged; a dry-run restore
    changes nothing; `restore --run --execute` puts back every object with its content,
    audited, the area is empty again and the chain verifies."""
    config = world(sqlite_db, tmp_path, tree)
    result = run(config)
    assert tree.live() == [] and tree.kept() == KEYS
    assert keys_of(config, "delete") == KEYS
    plan = make_plan(load_config(config), NOW)
    (kept,) = plan.quarantine
    assert (kept.dataset, kept.count) == ("files", 10)
    assert kept.first_purge == kept.last_purge == NOW + dt.timedelta(days=7)
    shown = runner.invoke(app, ["plan", "-c", str(config), "--now", NOW.isoformat()])
    assert "quarantine: files keeps 10, purged on 2026-06-08" in shown.stdout, shown.output
    restoring = ["restore", "--run", result.run_id, "-c", str(config), "--now", NOW.isoformat()]
    dry = runner.invoke(app, restoring)
    assert dry.exit_code == 0, dry.output
    assert "would" in dry.stdout and tree.live() == []
    done = runner.invoke(app, [*restoring, "--execute"])
    assert done.exit_code == 0, done.output
    assert tree.live() == KEYS and tree.kept() == []
    assert all(tree.read(key) == f"body of {key}".encode() for key in KEYS)
    assert keys_of(config, "restore") == KEYS
    assert make_plan(load_config(config), NOW).quarantine[0].count == 0
    verifies(config)


def test_an_object_that_exists_again_is_reported_not_overwritten(
    sqlite_db: Database, tmp_path: Path, tree: Tree
) -> None:
    """A key written again after the delete keeps its new content: the restore reports it
    (audited), puts back the others, and the old object stays in quarantine."""
    config = world(sqlite_db, tmp_path, tree)
    result = run(config)
    tree.put(KEYS[3], b"new", when=NOW)
    restored = restore(config, result.run_id)
    assert tree.live() == KEYS and tree.read(KEYS[3]) == b"new"
    assert tree.kept() == [KEYS[3]]
    (outcome,) = restored.outcomes
    assert outcome.acted == 9 and "1 not restored" in (outcome.message or "")
    refused = [e for e in audit(config) if e["outcome"].startswith("not restored")]
    assert [e["keys"] for e in refused] == [[KEYS[3]]]
    verifies(config)


def test_what_is_past_its_window_is_not_restored(
    sqlite_db: Database, tmp_path: Path, tree: Tree
) -> None:
    """Eight days on, before any run purged them, a P7D window's objects stay in quarantine
    (they wait for their purge) and the restore finds nothing to put back."""
    config = world(sqlite_db, tmp_path, tree)
    result = run(config)
    late = Executor(load_config(config), now=NOW + dt.timedelta(days=8), live=True)
    assert late.restore(result.run_id).outcomes == ()
    assert tree.live() == [] and tree.kept() == KEYS


def test_a_run_purges_what_is_past_its_window(
    sqlite_db: Database, tmp_path: Path, tree: Tree
) -> None:
    """Six days on a run purges nothing; eight days on it purges every object for good (no
    version left behind), audited as `purge quarantine`, and a restore finds nothing."""
    config = world(sqlite_db, tmp_path, tree)
    first = run(config)
    run(config, NOW + dt.timedelta(days=6))
    assert tree.kept() == KEYS
    run(config, NOW + dt.timedelta(days=8))
    assert tree.listing() == []
    if tree.kind == "s3-versioned":
        assert [v for v in tree.versions() if v.startswith(AREA)] == []
    assert keys_of(config, "purge quarantine") == KEYS
    assert restore(config, first.run_id).outcomes == () and tree.live() == []
    verifies(config)


@pytest.mark.parametrize("step", ["delete", "restore", "purge"])
def test_a_crash_in_the_middle_loses_nothing_and_does_nothing_twice(
    sqlite_db: Database, tmp_path: Path, tree: Tree, step: str
) -> None:
    """Killed after the second batch's intent (a delete: as the second batch's audit entry is
    written, so the first batch's objects have surely moved — S3 batches overlap): the next
    run settles that batch and finishes; every object is quarantined, restored or purged
    exactly once, each audited once, and the chain verifies."""
    config = world(sqlite_db, tmp_path, tree, batch_size=3)
    crash = CrashAt("intent", 2)
    if step == "delete":
        with pytest.raises(SimulatedCrash):
            run(config, probe=CrashAt("audit", 2))
        assert len(tree.live()) < len(KEYS)  # the first batches' objects have moved
        assert len(keys_of(config, "delete")) < len(KEYS)  # not every move is audited yet
        run(config)
        assert tree.live() == [] and tree.kept() == KEYS
    elif step == "restore":
        first = run(config)
        with pytest.raises(SimulatedCrash):
            restore(config, first.run_id, probe=crash)
        restore(config, first.run_id)
        assert tree.live() == KEYS and tree.kept() == []
    else:
        run(config)
        later = NOW + dt.timedelta(days=8)
        with pytest.raises(SimulatedCrash):
            run(config, later, probe=crash)
        run(config, later)
        assert tree.listing() == []
    action = {"delete": "delete", "restore": "restore", "purge": "purge quarantine"}[step]
    assert keys_of(config, action) == KEYS
    verifies(config)


def test_a_crash_between_copy_and_delete_loses_nothing(
    sqlite_db: Database, tmp_path: Path, moto_endpoint: str
) -> None:
    """S3: the endpoint goes away as the second batch's DeleteObjects is sent, after its
    objects were copied into quarantine. Nothing is lost (originals and copies both there);
    the next run settles the batch (the copies go, the originals stay) and moves them again:
    every object deleted once, kept once, audited once."""
    tree = Tree("s3", tmp_path, moto_endpoint)
    dying = DyingEndpoint(moto_endpoint, after=1, before=True)
    config = world(sqlite_db, tmp_path, tree, endpoint=dying.url, batch_size=3)
    try:
        broken = run(config)
        assert broken.outcomes[0].status != "ok"
        live, kept = set(tree.live()), set(tree.kept())
        assert live | kept == set(KEYS)  # nothing lost
        assert live & kept  # copied, never deleted
        assert kept - live  # an earlier batch went through
    finally:
        dying.revive()
    run(config)
    assert tree.live() == [] and tree.kept() == KEYS
    assert keys_of(config, "delete") == KEYS
    verifies(config)


def test_replay_deletes_again_what_a_restore_of_the_tree_brought_back(
    sqlite_db: Database, tmp_path: Path, tree: Tree
) -> None:
    """After the folder or bucket is restored from a backup taken before the run, a replay
    (keys matched by their HMAC: the log keeps no plain keys) deletes again the recorded
    objects that came back, into quarantine; an object the backup did not know stays."""
    config = world(sqlite_db, tmp_path, tree)
    text = config.read_text().replace("keys: plain", "keys: hmac")
    config.write_text(text)
    run(config)
    for key in KEYS:  # the backup comes back
        tree.put(key, f"body of {key}".encode())
    tree.put("logs/new.log", b"new", when=NOW)
    since = NOW - dt.timedelta(days=1)
    dry = runner.invoke(app, ["replay", "--since", since.isoformat(), "-c", str(config)])
    assert dry.exit_code == 0, dry.output
    assert len(tree.live()) == 11
    replayed = Executor(load_config(config), now=NOW, live=True, clock=FixedClock(NOW)).replay(
        since
    )
    assert [o.acted for o in replayed.outcomes] == [10]
    assert tree.live() == ["logs/new.log"]
    assert len([k for k in tree.listing() if k.startswith(AREA)]) == 20  # two runs' quarantine
    exported = json.dumps(audit(config))
    assert "01.log" not in exported
    verifies(config)


@settings(
    max_examples=examples(10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    recreated=st.sets(st.sampled_from(KEYS), max_size=10),
    batch=st.integers(1, 12),
)
def test_restore_never_overwrites_and_never_loses(
    tmp_path_factory: pytest.TempPathFactory, recreated: set[str], batch: int
) -> None:
    """File trees: whatever keys were written again and whatever the batch size, after a
    quarantined delete and a restore each key holds either its restored content or the new
    one, never neither; what was not restored is still in quarantine, nothing else is."""
    directory = tmp_path_factory.mktemp("fq")
    url = f"sqlite:///{directory / 'app.db'}"
    database = Database(url, "sqlite", make_engine(url))
    try:
        tree = Tree("files", directory, None)
        config = world(database, directory, tree, batch_size=batch)
        result = run(config)
        for key in sorted(recreated):
            tree.put(key, b"again", when=NOW)
        restore(config, result.run_id)
        assert tree.live() == KEYS
        for key in KEYS:
            assert tree.read(key) == (b"again" if key in recreated else f"body of {key}".encode())
        assert tree.kept() == sorted(recreated)
    finally:
        database.engine.dispose()
