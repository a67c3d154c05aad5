"""Shared fixtures: a fresh database on every dialect, and a way to write a whole configuration.

SQLite always runs. PostgreSQL and MariaDB run when ``RETENTION_TEST_POSTGRES_URL`` /
``RETENTION_TEST_MARIADB_URL`` are set (``.ci/run`` sets them); each test gets its own schema or
database, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from retention.stores.sql import make_engine

POSTGRES_ENV = "RETENTION_TEST_POSTGRES_URL"
MARIADB_ENV = "RETENTION_TEST_MARIADB_URL"


@dataclass
class Database:
    """One isolated database for one test."""

    url: str
    dialect: str
    engine: Engine


def _server_url(env: str) -> str:
    url = os.environ.get(env)
    if not url:
        pytest.skip(f"{env} is not set: no server to test against (.ci/run sets it)")
    return url


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(url)
    yield Database(url, "sqlite", engine)
    engine.dispose()


@pytest.fixture
def postgres_db() -> Iterator[Database]:
    base = _server_url(POSTGRES_ENV)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    engine = make_engine(rendered)
    yield Database(rendered, "postgresql", engine)
    engine.dispose()
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def mariadb_db() -> Iterator[Database]:
    base = _server_url(MARIADB_ENV)
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE DATABASE `{name}`"))
    rendered = make_url(base).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(rendered)
    yield Database(rendered, "mysql", engine)
    engine.dispose()
    with admin.begin() as connection:
        connection.execute(text(f"DROP DATABASE `{name}`"))
    admin.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def db(request: pytest.FixtureRequest) -> Database:
    """The same test on SQLite, PostgreSQL and MariaDB."""
    fixture: Database = request.getfixturevalue(f"{request.param}_db")
    return fixture
