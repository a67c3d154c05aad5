"""`retention discover`: a live schema read into a draft config that validates as written.

Pinned on three real schemas (Chinook on SQLite, Pagila on PostgreSQL, the demo database), on
odd schemas (no primary key, composite keys, quoted names, empty tables), and on the promise that
no sampled value is ever printed or written.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    select,
    text,
)
from typer.testing import CliRunner

from retention.cli import app
from retention.config import load_config
from retention.demo import build_company
from retention.discover import discover
from retention.draftconfig import write_draft
from retention.errors import ConfigError
from retention.personaldata import kind_by_values, luhn, recognise
from retention.validate import check_stores

from .conftest import Database
from .samples import load_pagila, require_sample, sample_file

CHINOOK = sample_file("chinook", "Chinook_Sqlite.sqlite")
NOW = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def discovered(url: str, out: Path, *extra: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Run `discover` and then `validate` on its draft; the summary, the config, all output."""
    code, stdout, stderr = run("discover", url, "--out", str(out), "--json", *extra)
    assert code == 0, stderr
    summary = json.loads(stdout)
    code, checked, problems = run("validate", "-c", str(out / "retention.yaml"))
    assert code == 0, problems
    assert checked.startswith("ok: 0 rules")
    config = yaml.safe_load((out / "retention.yaml").read_text())
    written = "".join(p.read_text() for p in out.rglob("*.yaml"))
    return summary, config, stdout + stderr + written + checked


def sampled_values(url: str, columns: dict[str, list[str]]) -> set[str]:
    """The values of the given columns long enough that finding one in a file is no accident."""
    engine = create_engine(url)
    found: set[str] = set()
    with engine.connect() as connection:
        for name, cols in columns.items():
            for col in cols:
                found |= {
                    str(v)
                    for (v,) in connection.execute(text(f'SELECT "{col}" FROM {name}'))
                    if v is not None and len(str(v)) >= 6
                }
    engine.dispose()
    return found


@require_sample("chinook", "Chinook_Sqlite.sqlite")
def test_chinook(tmp_path: Path) -> None:
    """On Chinook, discover finds the Customer subject, the e-mail, phone, address and name
    columns people would name, the foreign-key path of invoice lines and the cascades, and the
    draft validates; no sampled value is in its output or its files."""
    db = tmp_path / "chinook.sqlite"
    shutil.copy(CHINOOK, db)
    url = f"sqlite:///{db}"
    summary, config, output = discovered(url, tmp_path / "draft")
    assert summary["subject"] == "Customer"
    assert config["subjects"] == {
        "customer": {"store": "db", "table": "Customer", "key": "CustomerId", "events": {}}
    }
    customer = config["datasets"]["customer"]
    assert customer["category"] == "account_profile"
    assert customer["personal"] == {
        "first_name": "FirstName",
        "last_name": "LastName",
        "address": "Address",
        "postal_code": "PostalCode",
        "phone": "Phone",
        "fax": "Fax",
        "email": "Email",
    }
    assert customer["cascade"] == [{"dataset": "invoice", "column": "CustomerId"}]
    invoice = config["datasets"]["invoice"]
    assert invoice["subject"] == {"type": "customer", "column": "CustomerId"}
    assert invoice["timestamps"] == {"created": "InvoiceDate"}
    assert invoice["category"] == "billing"
    assert invoice["cascade"] == [{"dataset": "invoice_line", "column": "InvoiceId"}]
    assert "subject" not in config["datasets"]["invoice_line"]
    assert "InvoiceLine(InvoiceId) → Invoice(InvoiceId) then Invoice(CustomerId)" in output
    employee = config["datasets"]["employee"]
    assert employee["personal"]["birth_date"] == "BirthDate"
    assert "customer" not in [c["dataset"] for c in employee.get("cascade", [])]
    assert config["datasets"]["playlist_track"]["key"] == ["PlaylistId", "TrackId"]
    assert config["datasets"]["track"]["cascade"] == [
        {"dataset": "invoice_line", "column": "TrackId"},
        {"dataset": "playlist_track", "column": "TrackId"},
    ]
    assert "# guess: the name says e-mail addresses, and 50 of 50 sampled values" in output
    personal = {
        "Customer": ["Email", "Phone", "Address", "FirstName", "LastName", "Fax"],
        "Employee": ["Email", "Phone", "Address"],
    }
    leaked = [value for value in sampled_values(url, personal) if value in output]
    assert leaked == []


def test_demo_database(tmp_path: Path) -> None:
    """On the demo database, discover finds the account subject with its lifecycle events, the
    personal columns of each category's table, the shipped categories, and the cascades from
    accounts; the draft validates."""
    company = build_company(tmp_path / "demo", "com7", NOW)
    url = f"sqlite:///{company.directory / 'app.db'}"
    _summary, config, output = discovered(url, tmp_path / "draft")
    assert config["subjects"]["account"]["table"] == "accounts"
    assert config["subjects"]["account"]["events"] == {
        "created": "created_at",
        "last_active": "last_login_at",
        "closed": "closed_at",
        "terminated": "contract_ended_at",
        "erasure_requested": "erasure_requested_at",
    }
    datasets = config["datasets"]
    for name, ds in datasets.items():
        if name != "accounts" and ds["table"] in {
            c["dataset"] for c in datasets["accounts"]["cascade"]
        }:
            assert ds["subject"] == {"type": "account", "column": "account_id"}
    expected = load_config(company.config).settings.datasets
    for name, ds in expected.items():
        if ds.table is None:
            continue
        assert datasets[ds.table]["category"] == ds.category, name
        assert set(datasets[ds.table].get("personal", {}).values()) >= set(ds.personal.values())
        assert datasets[ds.table]["timestamps"]["created"] == "created_at"
    personal = {ds.table: list(ds.personal.values()) for ds in expected.values() if ds.table}
    assert [v for v in sampled_values(url, personal) if v in output] == []


@pytest.mark.postgres
@require_sample("pagila", "pagila-data.sql")
def test_pagila(postgres_db: Database, tmp_path: Path) -> None:
    """On Pagila (PostgreSQL, --schema), discover finds the customer subject with its created
    event, the names, e-mail, phone and address columns, the monthly payment partitions read as
    one dataset with their foreign keys, and the cascades from customer; the draft validates."""
    schema = load_pagila(postgres_db.url)
    _summary, config, output = discovered(postgres_db.url, tmp_path / "draft", "--schema", schema)
    assert config["subjects"] == {
        "customer": {
            "store": "db",
            "table": f"{schema}.customer",
            "key": "customer_id",
            "events": {"created": "create_date"},
        }
    }
    datasets = config["datasets"]
    assert not [name for name in datasets if name.startswith("payment_p")]
    assert datasets["customer"]["personal"] == {
        "first_name": "first_name",
        "last_name": "last_name",
        "email": "email",
    }
    assert sorted(c["dataset"] for c in datasets["customer"]["cascade"]) == ["payment", "rental"]
    assert datasets["payment"]["subject"] == {"type": "customer", "column": "customer_id"}
    assert datasets["payment"]["timestamps"]["created"] == "payment_date"
    assert datasets["rental"]["subject"] == {"type": "customer", "column": "customer_id"}
    assert datasets["rental"]["timestamps"]["created"] == "rental_date"
    assert {"address", "phone", "postal_code"} <= set(datasets["address"]["personal"])
    assert datasets["address"]["category"] == "contact_details"
    assert datasets["staff"]["personal"]["email"] == "email"
    values = sampled_values(
        postgres_db.url.replace("+psycopg", "+psycopg"),
        {
            f'"{schema}".customer': ["email", "first_name", "last_name"],
            f'"{schema}".address': ["address", "phone"],
        },
    )
    assert [v for v in values if v in output] == []


# --- recognising personal data --------------------------------------------------------------


def test_card_numbers_by_luhn() -> None:
    """A column of digits is a card number only when its values pass the Luhn check."""
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    cards = ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009"]
    assert kind_by_values(cards) == ("card_number", 3)
    assert kind_by_values(["4111111111111112", "1234567890123"]) != ("card_number", 2)
    found = recognise("ref", cards, dated=False, people=False)
    assert found is not None and found.strategy == "mask"
    assert "3 of 3 sampled values" in found.evidence


def test_values_decide_over_the_name() -> None:
    """Sampled values find e-mail and IP columns whatever they are called; a bare `name` is a
    person's name only in a table of people; a date of birth must be a date."""
    mails = recognise("contact", ["a@example.org", "b@example.net"], dated=False, people=False)
    assert mails is not None and mails.kind == "email"
    ips = recognise("origin", ["10.1.2.3", "2001:db8::1", "192.0.2.1"], dated=False, people=False)
    assert ips is not None and ips.kind == "ip"
    assert recognise("name", ["Rock"], dated=False, people=False) is None
    assert recognise("name", ["Rock"], dated=False, people=True) is not None
    assert recognise("birth_date", ["n/a"], dated=False, people=True) is None
    assert recognise("BirthDate", None, dated=True, people=True) is not None
    assert recognise("title", ["Mr", "Ms"], dated=False, people=True) is None


# --- odd schemas -----------------------------------------------------------------------------


def test_odd_schema(tmp_path: Path) -> None:
    """No primary key, a composite key, quoted names, a dot in a name and empty tables: the
    tables that can be datasets are, the others are listed as skipped, and the draft
    validates."""
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    metadata = MetaData()
    Table("nokey", metadata, Column("email", String(50)))
    users = Table(
        "User Accounts",
        metadata,
        Column("User ID", Integer, primary_key=True),
        Column('say "hi"', String(10)),
        Column("E-Mail", String(80)),
        Column("Created At", DateTime),
    )
    Table(
        "pairs",
        metadata,
        Column("a", Integer, primary_key=True),
        Column("b", Integer, primary_key=True),
        Column("owner", Integer, ForeignKey(users.c["User ID"])),
        Column("born", Date),
    )
    Table("dotted.name", metadata, Column("id", Integer, primary_key=True))
    engine = create_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    summary, config, output = discovered(url, tmp_path / "draft")
    assert sorted(summary["skipped"]) == ["dotted.name", "nokey"]
    assert "no primary key" in output
    users = config["datasets"]["user_accounts"]
    assert users["table"] == "User Accounts" and users["key"] == "User ID"
    assert users["personal"] == {"email": "E-Mail"}
    assert users["timestamps"] == {"created": "Created At"}
    assert config["subjects"]["account"]["table"] == "User Accounts"
    assert config["datasets"]["pairs"]["key"] == ["a", "b"]
    assert config["datasets"]["pairs"]["subject"] == {"type": "account", "column": "owner"}
    assert users["cascade"] == [{"dataset": "pairs", "column": "owner"}]


def test_refusals(tmp_path: Path) -> None:
    """A URL that is none is bad input (exit 2), a database that cannot be opened is exit 3,
    and a draft is never written over an existing config (exit 2)."""
    code, _, stderr = run("discover", "not a url", "--out", str(tmp_path / "a"))
    assert code == 2 and "URL" in stderr
    missing = tmp_path / "nowhere" / "x.db"
    code, _, stderr = run("discover", f"sqlite:///{missing}", "--out", str(tmp_path / "b"))
    assert code == 3
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "retention.yaml").write_text("x: 1\n")
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    create_engine(url).connect().close()
    code, _, stderr = run("discover", url, "--out", str(tmp_path / "c"))
    assert code == 2 and "refusing to overwrite" in stderr
    assert (tmp_path / "c" / "retention.yaml").read_text() == "x: 1\n"


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
)
columns = st.lists(
    st.tuples(names, st.sampled_from(["int", "text", "date", "timestamp"])),
    min_size=1,
    max_size=5,
    unique_by=lambda c: c[0].lower(),
)
tables = st.lists(
    st.tuples(names, columns, st.integers(0, 2), st.booleans()),
    min_size=1,
    max_size=4,
    unique_by=lambda t: t[0].lower(),
)
TYPES = {"int": Integer, "text": String(40), "date": Date, "timestamp": DateTime}
KEYS: dict[type, Any] = {
    Integer: 1,
    String: "k",
    Date: dt.date(2020, 1, 1),
    DateTime: dt.datetime(2020, 1, 1),
}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(schema=tables, value=st.text(max_size=30))
@example(schema=[("t", [("id", "int"), ("note", "text")], 1, True)], value="holds.")
def test_any_schema_drafts_or_refuses(tmp_path: Path, schema: Any, value: str) -> None:
    """Any SQLite schema (odd names, no or composite keys, empty or filled tables) gives a
    draft that loads and whose names all exist, or a ConfigError, within a time bound."""
    root = tmp_path / uuid.uuid4().hex
    root.mkdir()
    url = f"sqlite:///{root / 'any.db'}"
    metadata = MetaData()
    built = []
    for name, cols, keys, filled in schema:
        table = Table(
            name,
            metadata,
            *(Column(c, TYPES[kind], primary_key=i < keys) for i, (c, kind) in enumerate(cols)),
        )
        built.append((table, filled))
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
        with engine.begin() as connection:
            for table, filled in built:
                if filled:
                    row = {
                        c.name: (value if isinstance(c.type, String) else None)
                        for c in table.columns
                        if not c.primary_key
                    }
                    row |= {c.name: KEYS[type(c.type)] for c in table.columns if c.primary_key}
                    connection.execute(table.insert().values(row))
                    assert connection.execute(select(table)).first() is not None
    finally:
        engine.dispose()
    started = time.monotonic()
    try:
        draft = discover(url)
        write_draft(draft, root / "draft", NOW)
        config = load_config(root / "draft" / "retention.yaml")
    except ConfigError:
        return
    finally:
        assert time.monotonic() - started < 30
    assert check_stores(config) == []
    stored = any(
        filled and any(isinstance(c.type, String) and not c.primary_key for c in table.columns)
        for table, filled in built
    )
    if stored and len(value) >= 6:
        written = "".join(p.read_text() for p in (root / "draft").rglob("*.yaml"))
        assert value not in written or value in _empty_draft(root, metadata)


def _empty_draft(root: Path, metadata: MetaData) -> str:
    """The draft of the same schema with every table empty: text the value may share with the
    draft's own words (`holds.`) without having been sampled."""
    url = f"sqlite:///{root / 'empty.db'}"
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()
    write_draft(discover(url), root / "empty", NOW)
    return "".join(p.read_text() for p in (root / "empty").rglob("*.yaml"))
