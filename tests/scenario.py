"""A small retention world for tests: accounts with a lifecycle, tickets that belong to them.

Tests describe rows and rules as plain data; :class:`Scenario` creates the tables on the test's
database, writes ``config.yaml``, a rule pack and ``holds.yaml`` into a temporary directory and
loads them exactly as the CLI would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    literal,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects import mysql

from retention.audit import AuditEntry, AuditLog
from retention.config import Config, load_config
from retention.planner import RulePlan, make_plan
from retention.runevents import RUN_ACTION
from retention.statedb import open_state

UTC = dt.UTC
TS = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

metadata = MetaData()
ACCOUNTS = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("created_at", TS),
    Column("last_login_at", TS),
    Column("closed_at", TS),
    Column("contract_ended_at", TS),
    Column("erasure_requested_at", TS),
)
TICKETS = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=True),
    Column("created_at", TS),
    Column("status", String(20)),
    Column("is_child", Boolean),
    Column("email", String(120)),
    Column("name", String(80)),
    Column("ip", String(45)),
)
MESSAGES = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("body", String(200)),
)

SUBJECTS = {
    "account": {
        "store": "app",
        "table": "accounts",
        "key": "id",
        "events": {
            "created": "created_at",
            "last_active": "last_login_at",
            "closed": "closed_at",
            "terminated": "contract_ended_at",
            "erasure_requested": "erasure_requested_at",
        },
    }
}
TICKETS_DATASET: dict[str, Any] = {
    "store": "app",
    "table": "tickets",
    "key": "id",
    "category": "support_data",
    "subject": {"type": "account", "column": "account_id"},
    "timestamps": {"created": "created_at"},
    "personal": {"email": "email", "name": "name", "ip": "ip"},
}


def at(text: str) -> dt.datetime:
    """A naive timestamp as stored (UTC wall time unless a test says otherwise)."""
    return dt.datetime.fromisoformat(text)


def utc(text: str) -> dt.datetime:
    """An aware UTC instant, for `now`."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


class Scenario:
    """Tables, config files and plans for one test."""

    def __init__(self, db: Any, directory: Path) -> None:
        self.db = db
        self.directory = directory
        metadata.create_all(db.engine)

    def accounts(self, *rows: Mapping[str, Any]) -> Scenario:
        self._insert(ACCOUNTS, rows)
        return self

    def tickets(self, *rows: Mapping[str, Any]) -> Scenario:
        self._insert(TICKETS, rows)
        return self

    def messages(self, *rows: Mapping[str, Any]) -> Scenario:
        self._insert(MESSAGES, rows)
        return self

    def clear(self) -> None:
        with self.db.engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(delete(table))

    def _insert(self, table: Table, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = list(rows)
        if rows:
            columns = [c.name for c in table.columns]
            full = [{name: row.get(name) for name in columns} for row in rows]
            with self.db.engine.begin() as connection:
                connection.execute(insert(table), full)

    def ticket_ids(self) -> list[int]:
        with self.db.engine.connect() as connection:
            return [r[0] for r in connection.execute(select(TICKETS.c.id).order_by(TICKETS.c.id))]

    def write(
        self,
        rules: list[dict[str, Any]],
        *,
        holds: dict[str, Any] | None = None,
        datasets: dict[str, Any] | None = None,
        **settings: Any,
    ) -> Path:
        """Write config.yaml, rules/pack.yaml and holds.yaml; return the config path."""
        rules_dir = self.directory / "rules"
        rules_dir.mkdir(exist_ok=True)
        (rules_dir / "pack.yaml").write_text(
            yaml.safe_dump({"policy": {"name": "Test policy"}, "rules": rules}, sort_keys=False)
        )
        holds_path = self.directory / "holds.yaml"
        holds_path.write_text(yaml.safe_dump(holds or {"holds": []}, sort_keys=False))
        config: dict[str, Any] = {
            "state_db": f"sqlite:///{self.directory / 'state.db'}",
            "rules": ["rules/"],
            "holds": "holds.yaml",
            "hmac_key": "test-key-not-secret",
            "stores": {"app": {"kind": "sql", "url": self.db.url}},
            "subjects": SUBJECTS,
            "datasets": datasets or {"tickets": TICKETS_DATASET},
            # tests act on most of their tiny tables; the breaker has its own tests
            "limits": {"max_fraction": 1.0},
        }
        config.update(settings)
        path = self.directory / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def config(self, rules: list[dict[str, Any]], **kwargs: Any) -> Config:
        return load_config(self.write(rules, **kwargs))

    def plan(self, config: Config, now: dt.datetime) -> dict[str, RulePlan]:
        result = make_plan(config, now)
        assert not result.skipped, result.skipped
        return {row.rule: row for row in result.rules}


def verified_entries(config: Config) -> list[AuditEntry]:
    """The audit log of `config`'s state DB (keys in plain text) once its chain verifies, less
    the runs' own start and end entries."""
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        log = AuditLog(engine, keys="plain", hmac_key=None)
        assert log.verify().ok
        return [e for e in log.entries() if e.action != RUN_ACTION]
    finally:
        engine.dispose()


def rule(rule_id: str = "r", **fields: Any) -> dict[str, Any]:
    """A rule with test defaults: tickets, record.created, delete."""
    base: dict[str, Any] = {
        "id": rule_id,
        "applies_to": {"dataset": "tickets"},
        "after": "record.created",
        "retain": "P30D",
        "action": "delete",
    }
    base.update(fields)
    return base


def unreadable_clocks(world: Scenario) -> Scenario:
    """Tickets and an account whose clock text is no timestamp (SQLite keeps timestamps as
    text): ticket 1 due, 2 'yesterday', 3 '2020-13-45', 4 recent with its account closed
    'soon', 5 never started."""
    world.accounts(
        {"id": 1, "closed_at": at("2020-01-01")},
        {"id": 2, "closed_at": at("2020-01-01")},
        {"id": 3},
    )
    world.tickets(
        {"id": 1, "account_id": 1, "created_at": at("2020-01-01")},
        {"id": 2, "account_id": 1, "created_at": at("2020-01-01")},
        {"id": 3, "account_id": 1, "created_at": at("2020-01-01")},
        {"id": 4, "account_id": 2, "created_at": at("2026-05-30")},
        {"id": 5, "account_id": 3, "created_at": None},
    )
    with world.db.engine.begin() as connection:
        for table, key, value in (
            (TICKETS, 2, "yesterday"),
            (TICKETS, 3, "2020-13-45"),
            (ACCOUNTS, 2, "soon"),
        ):
            column = table.c.created_at if table is TICKETS else table.c.closed_at
            connection.execute(
                update(table)
                .where(table.c.id == key)
                .values({column.name: type_coerce(literal(value), String())})
            )
    return world
