"""A world whose records belong to two subjects: customers (with a country and a plan) and the
users who placed each order, for the tests of subject filters and of several subjects.

Like :mod:`tests.scenario`, tests describe rows and rules as plain data; :class:`World` creates
the tables on the test's database, writes the config, a rule pack and the holds file, and
loads them exactly as the CLI would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.dialects import mysql

from retention.config import Config, load_config
from retention.executor import Executor
from retention.planner import RulePlan, make_plan

TS = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

metadata = MetaData()
CUSTOMERS = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("country", String(2)),
    Column("plan", String(20)),
    Column("closed_at", TS),
)
USERS = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("deleted_at", TS),
)
# no foreign keys: an order may name a customer that is gone (its subject row is missing)
ORDERS = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("customer_id", Integer),
    Column("user_id", Integer),
    Column("created_at", TS),
    Column("email", String(120)),
)

# an order's lines, deleted with it (`cascade`); a line may name a user of its own
LINES = Table(
    "order_lines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("order_id", Integer, nullable=False),
    Column("user_id", Integer),
)

SUBJECTS = {
    "customer": {
        "store": "app",
        "table": "customers",
        "key": "id",
        "events": {"closed": "closed_at"},
    },
    "user": {"store": "app", "table": "users", "key": "id", "events": {"deleted": "deleted_at"}},
}
CUSTOMER = {"type": "customer", "column": "customer_id"}
USER = {"type": "user", "column": "user_id"}


def orders_dataset(subject: Any = None) -> dict[str, Any]:
    """The orders dataset; `subject` defaults to its customer (the single-subject form)."""
    return {
        "store": "app",
        "table": "orders",
        "key": "id",
        "category": "orders",
        "subject": CUSTOMER if subject is None else subject,
        "timestamps": {"created": "created_at"},
        "personal": {"email": "email"},
    }


def lines_dataset(subject: Any = None) -> dict[str, Any]:
    """The order lines, a cascade child of the orders; `subject`: none by default."""
    found: dict[str, Any] = {
        "store": "app",
        "table": "order_lines",
        "key": "id",
        "category": "order_lines",
    }
    return found if subject is None else {**found, "subject": subject}


def at(text: str) -> dt.datetime:
    """A naive timestamp as stored (UTC wall time)."""
    return dt.datetime.fromisoformat(text)


def utc(text: str) -> dt.datetime:
    """An aware UTC instant, for `now`."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def rule(rule_id: str, **fields: Any) -> dict[str, Any]:
    """A rule with test defaults: orders, record.created, one year, delete."""
    return {
        "id": rule_id,
        "applies_to": {"dataset": "orders"},
        "after": "record.created",
        "retain": "P1Y",
        "action": "delete",
        **fields,
    }


class World:
    """Tables, config files, plans and runs for one test."""

    def __init__(self, db: Any, directory: Path) -> None:
        self.db = db
        self.directory = directory
        metadata.create_all(db.engine)

    def rows(self, table: Table, *rows: Mapping[str, Any]) -> World:
        columns = [c.name for c in table.columns]
        if rows:
            with self.db.engine.begin() as connection:
                connection.execute(insert(table), [{n: r.get(n) for n in columns} for r in rows])
        return self

    def clear(self) -> None:
        with self.db.engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(delete(table))

    def line_ids(self) -> list[int]:
        with self.db.engine.connect() as connection:
            return [r[0] for r in connection.execute(select(LINES.c.id).order_by(LINES.c.id))]

    def order_ids(self) -> list[int]:
        with self.db.engine.connect() as connection:
            return [r[0] for r in connection.execute(select(ORDERS.c.id).order_by(ORDERS.c.id))]

    def emails(self) -> dict[int, str | None]:
        with self.db.engine.connect() as connection:
            rows = connection.execute(select(ORDERS.c.id, ORDERS.c.email).order_by(ORDERS.c.id))
            return {row[0]: row[1] for row in rows}

    def write(
        self,
        rules: list[dict[str, Any]],
        *,
        holds: Iterable[dict[str, Any]] = (),
        subject: Any = None,
        datasets: dict[str, Any] | None = None,
        **settings: Any,
    ) -> Path:
        """Write config.yaml, rules/pack.yaml and holds.yaml; return the config path."""
        (self.directory / "rules").mkdir(exist_ok=True)
        pack = {"policy": {"name": "Orders policy"}, "rules": rules}
        (self.directory / "rules" / "pack.yaml").write_text(yaml.safe_dump(pack, sort_keys=False))
        (self.directory / "holds.yaml").write_text(
            yaml.safe_dump({"holds": list(holds)}, sort_keys=False)
        )
        config = {
            "state_db": f"sqlite:///{self.directory / 'state.db'}",
            "rules": ["rules/"],
            "holds": "holds.yaml",
            "hmac_key": "test-key-not-secret",
            "stores": {"app": {"kind": "sql", "url": self.db.url}},
            "subjects": SUBJECTS,
            "datasets": datasets or {"orders": orders_dataset(subject)},
            "limits": {"max_fraction": 1.0},
            **settings,
        }
        path = self.directory / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def config(self, rules: list[dict[str, Any]], **kwargs: Any) -> Config:
        return load_config(self.write(rules, **kwargs))

    def plan(self, config: Config, now: dt.datetime) -> dict[str, RulePlan]:
        result = make_plan(config, now)
        assert not result.skipped, result.skipped
        return {row.rule: row for row in result.rules}

    def run(self, config: Config, now: dt.datetime) -> None:
        """A live run that must end well."""
        result = Executor(config, now=now, live=True).run()
        failed = [o.as_dict() for o in result.outcomes if str(o.status) != "ok"]
        assert not failed, failed
