"""Shared fixtures: a fresh database on every dialect, a SQLite world for the audit tests, and a
moto S3 server.

SQLite and DuckDB (embedded files) always run. PostgreSQL and MariaDB run when
``RETENTION_TEST_POSTGRES_URL`` / ``RETENTION_TEST_MARIADB_URL`` are set (``.ci/run`` sets them);
each test gets its own schema or database, dropped afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from moto.server import ThreadedMotoServer
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from retention.stores.sql import make_engine
from retention.testing import moto_process

from .scenario import Scenario
from .stores.objectworld import free_port

POSTGRES_ENV = "RETENTION_TEST_POSTGRES_URL"
MARIADB_ENV = "RETENTION_TEST_MARIADB_URL"


@dataclass
class Database:
    """One isolated database for one test."""

    url: str
    dialect: str
    engine: Engine


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test starts with structlog's defaults: a CLI run in an earlier test (in the same
    worker) configures the level for the whole process, and would hide later tests' events."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def _server_url(env: str) -> str:
    url = os.environ.get(env)
    if not url:
        pytest.skip(f"{env} is not set: no server to test against (.ci/run sets it)")
    return url


@contextmanager
def _postgres() -> Iterator[Database]:
    base = _server_url(POSTGRES_ENV)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    engine = make_engine(rendered)
    try:
        yield Database(rendered, "postgresql", engine)
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def _mariadb() -> Iterator[Database]:
    base = _server_url(MARIADB_ENV)
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE DATABASE `{name}`"))
    rendered = make_url(base).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(rendered)
    try:
        yield Database(rendered, "mysql", engine)
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP DATABASE `{name}`"))
        admin.dispose()


@contextmanager
def _sqlite(directory: Path) -> Iterator[Database]:
    url = f"sqlite:///{directory / 'app.db'}"
    engine = make_engine(url)
    try:
        yield Database(url, "sqlite", engine)
    finally:
        engine.dispose()


@contextmanager
def _duckdb(directory: Path) -> Iterator[Database]:
    url = f"duckdb:///{directory / 'app.duckdb'}"
    engine = make_engine(url)
    try:
        yield Database(url, "duckdb", engine)
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    with _sqlite(tmp_path) as database:
        yield database


@pytest.fixture
def duckdb_db(tmp_path: Path) -> Iterator[Database]:
    with _duckdb(tmp_path) as database:
        yield database


@pytest.fixture
def postgres_db() -> Iterator[Database]:
    with _postgres() as database:
        yield database


@pytest.fixture
def mariadb_db() -> Iterator[Database]:
    with _mariadb() as database:
        yield database


DIALECTS = [
    "sqlite",
    "duckdb",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


# DuckDB is a store, never a state DB (Alembic has no DuckDB support)
STATE_DIALECTS = [d for d in DIALECTS if d != "duckdb"]


@pytest.fixture(params=STATE_DIALECTS)
def state_db(request: pytest.FixtureRequest) -> Database:
    """The same state-DB test on SQLite, PostgreSQL and MariaDB."""
    fixture: Database = request.getfixturevalue(f"{request.param}_db")
    return fixture


@pytest.fixture(params=DIALECTS)
def db(request: pytest.FixtureRequest) -> Database:
    """The same test on SQLite, DuckDB, PostgreSQL and MariaDB."""
    fixture: Database = request.getfixturevalue(f"{request.param}_db")
    return fixture


@pytest.fixture
def fast_path(tmp_path: Path) -> Iterator[Path]:
    """A directory on tmpfs when there is one: these tests commit often and never need fsync."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="retention-audit-", dir=shm))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def world(fast_path: Path) -> Iterator[Scenario]:
    """Accounts and tickets on SQLite in `fast_path`, for the audit tests."""
    url = f"sqlite:///{fast_path / 'app.db'}"
    engine = make_engine(url)
    yield Scenario(Database(url, "sqlite", engine), fast_path)
    engine.dispose()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port; boto3 talks to it over real HTTP."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_process_endpoint() -> Iterator[str]:
    """A moto S3 server in its own process: for delta-rs, which holds the GIL while it waits
    for some answers (an in-process server thread could not give them)."""
    with moto_process() as endpoint:
        yield endpoint


@pytest.fixture(scope="module", params=DIALECTS)
def module_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """One database per module on SQLite, DuckDB, PostgreSQL and MariaDB: for property tests
    that reuse one small world across many examples."""
    if request.param == "sqlite":
        opened = _sqlite(tmp_path_factory.mktemp("module-db"))
    elif request.param == "duckdb":
        opened = _duckdb(tmp_path_factory.mktemp("module-db"))
    else:
        opened = _postgres() if request.param == "postgres" else _mariadb()
    with opened as database:
        yield database
