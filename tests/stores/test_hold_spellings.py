"""Property: a held record is never changed by a live run, however either side spells the id.

Hypothesis draws hold ids in random spellings (``5``, ``"5"``, ``"0005"``, ``" 5"``, ``"+5"``)
and records whose subject is written in random spellings too: integer and text subject columns
on every SQL dialect, key segments on S3 (moto) and on the filesystem. Every record is due; after
one live run exactly the records whose id is held (compared as :func:`canonical_id`) remain.
Each store keeps one small world for all its examples.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, select

from retention.config import Config
from retention.executor import Executor
from retention.ids import canonical_id
from retention.stores.sql import make_engine

from ..conftest import Database
from ..scenario import TS, Scenario, at, utc
from .objectworld import s3_client, s3_store, seed

NOW = utc("2026-06-01 00:00:00")
OLD = utc("2020-01-01 00:00:00")
RULE = {
    "id": "purge",
    "applies_to": {"category": "records"},
    "after": "record.created",
    "retain": "P30D",
    "action": "delete",
}


def spellings(number: int) -> st.SearchStrategy[Any]:
    """One id, written as YAML or a column or a key may write it."""
    return st.sampled_from(
        [number, str(number), f"{number:04d}", f" {number}", f"+{number}", f"0{number} "]
    )


subject_numbers = st.integers(1, 4)
hold_ids = st.lists(subject_numbers.flatmap(spellings), min_size=1, max_size=3)
text_subjects = st.one_of(st.none(), st.just("x1"), subject_numbers.flatmap(spellings).map(str))
key_subjects = subject_numbers.flatmap(spellings).map(str)


def held(subject: object, ids: list[Any]) -> bool:
    wanted = {canonical_id(i) for i in ids}
    return subject is not None and canonical_id(subject) in wanted


def write_holds(config: Config, ids: list[Any]) -> None:
    assert config.holds_path is not None
    holds = {"holds": [{"id": "case", "subjects": {"account": ids}}]}
    config.holds_path.write_text(yaml.safe_dump(holds))


def live_run(config: Config) -> None:
    result = Executor(config, now=NOW, live=True).run()
    assert result.status == "complete", result.outcomes


# -- SQL: integer and text subject columns -------------------------------------------------------

META = MetaData()
BY_NUMBER = Table(
    "by_number",
    META,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("account_id", Integer),
    Column("created_at", TS),
)
BY_TEXT = Table(
    "by_text",
    META,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("account_ref", String(20)),
    Column("created_at", TS),
)


def sql_dataset(table: str, column: str) -> dict[str, Any]:
    return {
        "store": "app",
        "table": table,
        "key": "id",
        "category": "records",
        "subject": {"type": "account", "column": column},
        "timestamps": {"created": "created_at"},
    }


@dataclass
class SqlWorld:
    db: Database
    config: Config


@pytest.fixture(scope="module")
def sql_world(module_db: Database, tmp_path_factory: pytest.TempPathFactory) -> SqlWorld:
    scenario = Scenario(module_db, tmp_path_factory.mktemp("spellings-sql"))
    META.create_all(module_db.engine)
    scenario.accounts(*({"id": n} for n in range(1, 5)))
    config = scenario.config(
        [RULE],
        datasets={
            "by_number": sql_dataset("by_number", "account_id"),
            "by_text": sql_dataset("by_text", "account_ref"),
        },
    )
    return SqlWorld(module_db, config)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    ids=hold_ids,
    numbers=st.lists(st.one_of(st.none(), subject_numbers), max_size=6),
    texts=st.lists(text_subjects, max_size=6),
)
def test_sql_held_rows_survive_a_live_run(
    sql_world: SqlWorld, ids: list[Any], numbers: list[int | None], texts: list[str | None]
) -> None:
    """On SQLite, PostgreSQL and MariaDB, integer and text subject columns: the rows of a held
    id survive a live run whatever the spellings, and every other due row is deleted."""
    engine = sql_world.db.engine
    with engine.begin() as connection:
        for table, values, column in (
            (BY_NUMBER, numbers, "account_id"),
            (BY_TEXT, texts, "account_ref"),
        ):
            connection.execute(delete(table))
            if values:
                rows = [
                    {"id": key, column: value, "created_at": at("2020-01-01")}
                    for key, value in enumerate(values)
                ]
                connection.execute(insert(table), rows)
    write_holds(sql_world.config, ids)
    live_run(sql_world.config)
    with engine.connect() as connection:
        left = {
            table.name: [
                row[0] for row in connection.execute(select(table.c.id).order_by(table.c.id))
            ]
            for table in (BY_NUMBER, BY_TEXT)
        }
    assert left["by_number"] == [k for k, v in enumerate(numbers) if held(v, ids)]
    assert left["by_text"] == [k for k, v in enumerate(texts) if held(v, ids)]


# -- object stores: S3 keys and file paths -------------------------------------------------------


@pytest.fixture(scope="module")
def subjects_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """The accounts of the object-store worlds (SQLite; no subject clock is read)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('spellings-subjects') / 'app.db'}"
    engine = make_engine(url)
    yield Database(url, "sqlite", engine)
    engine.dispose()


def object_config(
    db: Database, directory: Path, store: dict[str, Any], location: dict[str, str]
) -> Config:
    return Scenario(db, directory).config(
        [RULE],
        datasets={"files": {"store": "objects", "category": "records", **location}},
        stores={"app": {"kind": "sql", "url": db.url}, "objects": store},
    )


@dataclass
class BucketWorld:
    client: Any
    bucket: str
    config: Config


@pytest.fixture(scope="module")
def bucket_world(
    moto_endpoint: str, subjects_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> BucketWorld:
    client = s3_client(moto_endpoint)
    bucket = f"spell-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    directory = tmp_path_factory.mktemp("spellings-s3")
    config = object_config(
        subjects_db, directory, s3_store(bucket, moto_endpoint), {"prefix": "customers/{account}/"}
    )
    return BucketWorld(client, bucket, config)


def bucket_keys(world: BucketWorld) -> list[str]:
    pages = world.client.get_paginator("list_objects_v2").paginate(Bucket=world.bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ids=hold_ids, subjects=st.lists(key_subjects, max_size=6))
def test_s3_held_objects_survive_a_live_run(
    bucket_world: BucketWorld, ids: list[Any], subjects: list[str]
) -> None:
    """On S3, `customers/0005/...`, `customers/ 5/...` and `customers/+5/...` are account 5:
    kept when 5 is held in any spelling, deleted otherwise."""
    for key in bucket_keys(bucket_world):
        bucket_world.client.delete_object(Bucket=bucket_world.bucket, Key=key)
    keys = {f"customers/{subject}/r{index}": subject for index, subject in enumerate(subjects)}
    seed(bucket_world.bucket, list(keys), OLD)
    write_holds(bucket_world.config, ids)
    live_run(bucket_world.config)
    assert bucket_keys(bucket_world) == sorted(k for k, s in keys.items() if held(s, ids))


@dataclass
class TreeWorld:
    root: Path
    config: Config


@pytest.fixture(scope="module")
def tree_world(
    subjects_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TreeWorld]:
    directory = tmp_path_factory.mktemp("spellings-fs")
    root = directory / "files"
    root.mkdir()
    config = object_config(
        subjects_db,
        directory,
        {"kind": "filesystem", "root": str(root)},
        {"glob": "uploads/{account}/*"},
    )
    yield TreeWorld(root, config)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ids=hold_ids, subjects=st.lists(key_subjects, max_size=6))
def test_filesystem_held_files_survive_a_live_run(
    tree_world: TreeWorld, ids: list[Any], subjects: list[str]
) -> None:
    """In a file tree, `uploads/0005/...` and `uploads/+5/...` are account 5: kept when 5 is
    held in any spelling, deleted otherwise."""
    shutil.rmtree(tree_world.root)
    tree_world.root.mkdir()
    paths = {f"uploads/{subject}/r{index}": subject for index, subject in enumerate(subjects)}
    old = OLD.timestamp()
    for relative in paths:
        path = tree_world.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("personal data")
        os.utime(path, (old, old))
    write_holds(tree_world.config, ids)
    live_run(tree_world.config)
    left = sorted(
        str(p.relative_to(tree_world.root)) for p in tree_world.root.rglob("*") if p.is_file()
    )
    assert left == sorted(k for k, s in paths.items() if held(s, ids))
