"""Retention rules on the Chinook sample database: a real schema with real foreign keys."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text

from retention.config import load_config
from retention.executor import Executor
from retention.validate import check_stores

from .samples import require_sample, sample_file
from .scenario import utc

CHINOOK = sample_file("chinook", "Chinook_Sqlite.sqlite")
NOW = utc("2026-11-21 00:00:00")

pytestmark = require_sample("chinook", "Chinook_Sqlite.sqlite")


def write(tmp_path: Path, *, cascade: bool, rules: list[dict[str, Any]]) -> Path:
    db = tmp_path / "chinook.sqlite"
    shutil.copy(CHINOOK, db)
    invoices: dict[str, Any] = {
        "store": "shop",
        "table": "Invoice",
        "key": "InvoiceId",
        "category": "billing",
        "subject": {"type": "customer", "column": "CustomerId"},
        "timestamps": {"created": "InvoiceDate"},
        "personal": {"address": "BillingAddress"},
    }
    if cascade:
        invoices["cascade"] = [{"dataset": "invoice_lines", "column": "InvoiceId"}]
    config = {
        "state_db": f"sqlite:///{tmp_path / 'state.db'}",
        "rules": ["rules.yaml"],
        "audit": {"keys": "plain"},
        "limits": {"max_fraction": 1.0},
        "stores": {"shop": {"kind": "sql", "url": f"sqlite:///{db}"}},
        "subjects": {"customer": {"store": "shop", "table": "Customer", "key": "CustomerId"}},
        "datasets": {
            "invoices": invoices,
            "invoice_lines": {
                "store": "shop",
                "table": "InvoiceLine",
                "key": "InvoiceLineId",
                "category": "billing_lines",
            },
        },
    }
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump({"policy": {"name": "Chinook"}, "rules": rules})
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def count(tmp_path: Path, sql: str) -> Any:
    engine = create_engine(f"sqlite:///{tmp_path / 'chinook.sqlite'}")
    with engine.connect() as connection:
        value = connection.execute(text(sql)).scalar_one()
    engine.dispose()
    return value


DELETE_OLD = {
    "id": "chinook.invoices.old",
    "applies_to": {"dataset": "invoices"},
    "after": "record.created",
    "retain": "P3Y",
    "action": "delete",
}


def test_validate_passes_on_the_real_schema(tmp_path: Path) -> None:
    """Tables, keys, timestamps and personal columns of Chinook are found as configured."""
    config = load_config(write(tmp_path, cascade=True, rules=[DELETE_OLD]))
    assert check_stores(config) == []


def test_foreign_key_refusal_names_invoice_line(tmp_path: Path) -> None:
    """Invoices are referenced by invoice lines: without a cascade the delete is refused, the
    message names InvoiceLine.InvoiceId, and nothing is deleted."""
    config = load_config(write(tmp_path, cascade=False, rules=[DELETE_OLD]))
    result = Executor(config, now=NOW, live=True).run()
    outcome = result.outcomes[0]
    assert result.exit_code == 4 and outcome.status == "refused"
    assert "InvoiceLine.InvoiceId" in (outcome.message or "")
    assert count(tmp_path, "select count(*) from Invoice") == 412


def test_cascade_deletes_lines_then_invoices(tmp_path: Path) -> None:
    """With `cascade`, the lines of each due invoice go first, in the same transaction."""
    config = load_config(write(tmp_path, cascade=True, rules=[DELETE_OLD]))
    due = count(tmp_path, "select count(*) from Invoice where InvoiceDate <= '2023-11-21 00:00:00'")
    lines = count(
        tmp_path,
        "select count(*) from InvoiceLine where InvoiceId in "
        "(select InvoiceId from Invoice where InvoiceDate <= '2023-11-21 00:00:00')",
    )
    result = Executor(config, now=NOW, live=True).run()
    outcome = result.outcomes[0]
    assert (outcome.acted, outcome.cascaded) == (due, {"invoice_lines": lines})
    assert (
        count(tmp_path, "select count(*) from Invoice where InvoiceDate <= '2023-11-21 00:00:00'")
        == 0
    )
    assert count(tmp_path, "select count(*) from Invoice") == 412 - due
    orphans = (
        "select count(*) from InvoiceLine where InvoiceId not in (select InvoiceId from Invoice)"
    )
    assert count(tmp_path, orphans) == 0


def test_keep_rule_blocks_recent_invoices(tmp_path: Path) -> None:
    """A statutory keep rule wins over the delete until its own period has run out."""
    keep = {
        "id": "chinook.invoices.statutory",
        "applies_to": {"dataset": "invoices"},
        "after": "record.created",
        "retain": "P4Y",
        "action": "keep",
    }
    config = load_config(write(tmp_path, cascade=True, rules=[DELETE_OLD, keep]))
    older = count(
        tmp_path, "select count(*) from Invoice where InvoiceDate <= '2022-11-21 00:00:00'"
    )
    result = Executor(config, now=NOW, live=True).run()
    assert result.outcomes[0].acted == older
    assert count(tmp_path, "select min(InvoiceDate) from Invoice") > "2022-11-21"
