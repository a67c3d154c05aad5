"""Tests for `retention.anonymize`: each strategy in Python, and its SQL on real databases.

The SQL tests run on SQLite (always), PostgreSQL (`RETENTION_TEST_POSTGRES_URL`) and MariaDB
(`RETENTION_TEST_MARIADB_URL`); the server-backed ones are skipped when their URL is unset.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql

from retention.anonymize import HASH_MARKER, STRATEGIES, Anonymizer, StrategySpec

KEY = b"test-hmac-key"

# --- value generators --------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=24)
HASHISH = st.one_of(
    st.text("0123456789abcdefABCDEF:hH", max_size=20),
    st.from_regex(r"h:[0-9a-f]{14}", fullmatch=True),
    st.from_regex(r"h:[0-9a-f]{64}", fullmatch=True),
)
MASKISH = st.text("*ab1 ", max_size=10)
IPS = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: a.exploded),
    st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
    st.ip_addresses(v=4).map(lambda a: str(a).rsplit(".", 1)[0] + ".0"),
    st.ip_addresses(v=6).map(
        lambda a: ipaddress.ip_network(f"{a}/48", strict=False).network_address.compressed
    ),
    st.text("0123456789abcdef.:AF %\n", max_size=20),
)
EMAILS = st.one_of(
    st.emails(),
    st.emails().map(lambda e: e.rpartition("@")[2]),
    st.emails().map(str.upper),
    st.text("abXY.@-_0\n", max_size=20),
)
OFFSETS = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(timezone)
DATETIMES = st.datetimes(min_value=datetime(1000, 1, 1))
DATES = st.dates(min_value=date(1000, 1, 1))
FIRSTS = st.builds(datetime, st.integers(1000, 9999), st.integers(1, 12), st.just(1))
DATE_TEXTS = st.one_of(
    st.dates().map(date.isoformat),
    st.datetimes(timezones=st.none() | OFFSETS).map(lambda d: d.isoformat(sep=" ")),
    st.datetimes(timezones=st.none() | OFFSETS).map(lambda d: d.isoformat(timespec="minutes")),
    FIRSTS.map(datetime.isoformat),
    FIRSTS.map(lambda d: d.date().isoformat()),
    st.text("0123456789-:T +Z.", max_size=26),
)


def typed_datetime() -> sa.types.TypeEngine[Any]:
    """A DATETIME that keeps microseconds on MariaDB too."""
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


@dataclass(frozen=True)
class Case:
    """One strategy on one column type, with raw values and a generator for hypothesis."""

    id: str
    spec: object
    column_type: Callable[[], sa.types.TypeEngine[Any]]
    raw: tuple[Any, ...]
    values: st.SearchStrategy[Any]


CASES = [
    Case("null", "null", lambda: sa.String(40), ("alice", "", "x"), TEXT),
    Case("redact", "redact", lambda: sa.String(40), ("alice", "[REDACTED]", " "), TEXT),
    Case(
        "redact-short",
        {"strategy": "redact", "token": "<gone>"},
        lambda: sa.String(4),
        ("bob", "<go", "<GON"),
        TEXT | st.sampled_from(["<gon", "<GON", "<gon "]),
    ),
    Case(
        "hash",
        "hash",
        lambda: sa.String(80),
        ("alice@example.com", "h:" + "A" * 64, "h:abc"),
        TEXT | HASHISH,
    ),
    Case(
        "hash-16",
        "hash",
        lambda: sa.String(16),
        ("alice", "h:0123456789ABCD", "h:0123456789abc"),
        TEXT | HASHISH.map(lambda s: s[:16]),
    ),
    Case(
        "mask",
        {"strategy": "mask", "keep": 4},
        lambda: sa.String(40),
        ("4111111111111111", "abc", "***a1234", "é✓😀xyz12"),
        TEXT | MASKISH,
    ),
    Case("mask-0", {"strategy": "mask", "keep": 0}, lambda: sa.String(40), ("ab", "*a"), MASKISH),
    Case(
        "truncate_ip",
        "truncate_ip",
        lambda: sa.String(45),
        ("192.168.1.77", "2001:db8:abcd:12::1", "::ffff:10.1.2.3", "unknown", "1.2.3.0\n"),
        TEXT | IPS,
    ),
    Case(
        "email_domain",
        "email_domain",
        lambda: sa.String(255),
        ("Bob@Example.COM", "a@bücher.de", "not an email", "EXAMPLE.COM"),
        TEXT | EMAILS,
    ),
    Case(
        "date-month",
        "generalize_date",
        sa.Date,
        (date(2024, 2, 29), date(1999, 12, 31)),
        DATES | FIRSTS.map(datetime.date),
    ),
    Case(
        "datetime-month",
        "generalize_date",
        typed_datetime,
        (datetime(2024, 3, 1, 0, 0, 0, 1), datetime(2024, 3, 15, 10, 20, 30)),
        DATETIMES | FIRSTS,
    ),
    Case(
        "datetime-year",
        {"strategy": "generalize_date", "to": "year"},
        typed_datetime,
        (datetime(2024, 3, 1), datetime(2024, 1, 1, 0, 0, 1)),
        DATETIMES | FIRSTS,
    ),
    Case(
        "text-date",
        "generalize_date",
        lambda: sa.String(40),
        ("2024-03-15", "2024-03-01T00:00:00Z", "2024-03-01 10:00:00+02:00", "soon"),
        TEXT | DATE_TEXTS,
    ),
]


def anonymizer(case: Case, column: sa.Column[Any] | None = None) -> Anonymizer:
    """The case's anonymizer on `column`, or on a free-standing column of its type."""
    column = sa.Column("value", case.column_type()) if column is None else column
    return Anonymizer(StrategySpec.parse(case.spec), column, hmac_key=KEY)


def fit(case: Case, value: Any) -> Any:
    """`value` cut to the case's column length, so it can be stored."""
    length = getattr(case.column_type(), "length", None)
    return value[:length] if isinstance(value, str) and length else value


# --- StrategySpec ---------------------------------------------------------------------------


def test_parse_name_and_mapping() -> None:
    """A bare name and a mapping with options both parse to a StrategySpec."""
    assert StrategySpec.parse("hash") == StrategySpec("hash")
    assert StrategySpec.parse({"strategy": "mask", "keep": 2}) == StrategySpec("mask", keep=2)
    assert StrategySpec.parse({"strategy": "generalize_date", "to": "year"}).to == "year"
    assert StrategySpec.parse({"strategy": "redact", "token": "X"}).token == "X"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("scramble", "allowed: null, redact, hash, mask"),
        ({"keep": 4}, "must be one of null, redact"),
        ({"strategy": "mask", "to": "year"}, "mask: unknown option(s) to; allowed: keep"),
        ({"strategy": "hash", "keep": 1}, "allowed: none"),
        ({"strategy": "mask", "keep": -1}, "keep must be a whole number"),
        ({"strategy": "mask", "keep": True}, "keep must be a whole number"),
        ({"strategy": "generalize_date", "to": "week"}, "'month' or 'year'"),
        ({"strategy": "redact", "token": ""}, "printable ASCII"),
        ({"strategy": "redact", "token": "gelöscht"}, "printable ASCII"),
        (4, "got int; allowed: null"),
    ],
)
def test_parse_rejects_with_a_clear_message(raw: object, message: str) -> None:
    """Invalid strategy config raises ValueError naming what is allowed."""
    with pytest.raises(ValueError) as error:
        StrategySpec.parse(raw)
    assert message in str(error.value)


def test_hash_needs_a_key() -> None:
    """A hash anonymizer without an HMAC key is refused up front; other strategies need none."""
    with pytest.raises(ValueError, match="HMAC key"):
        Anonymizer(StrategySpec("hash"), sa.column("v", sa.String(80)), hmac_key=None)
    Anonymizer(StrategySpec("redact"), sa.column("v", sa.String(80)), hmac_key=None)


# --- check_column ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "column", "message"),
    [
        ("null", sa.Column("v", sa.String(9), nullable=False), "needs a nullable column"),
        ("hash", sa.Column("v", sa.String(9)), "at least 10 characters"),
        ("hash", sa.Column("v", sa.Integer), "needs a string column"),
        ("redact", sa.Column("v", sa.Date), "needs a string column"),
        ("mask", sa.Column("v", sa.Enum("a", "b")), "needs a string column"),
        ("generalize_date", sa.Column("v", sa.Integer), "date, datetime or text column"),
        ("generalize_date", sa.Column("v", sa.String(8)), "too short for ISO dates"),
        ("redact", sa.Column("v", sa.String(9), primary_key=True), "primary key"),
    ],
)
def test_check_column_rejects_what_cannot_fit(
    spec: str, column: sa.Column[Any], message: str
) -> None:
    """check_column refuses a strategy whose output the column cannot hold."""
    sa.Table("t", sa.MetaData(), column)
    with pytest.raises(ValueError, match=message) as error:
        Anonymizer(StrategySpec(spec), column, hmac_key=KEY).check_column()  # type: ignore[arg-type]
    assert "t.v" in str(error.value)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_check_column_accepts_the_test_columns(case: Case) -> None:
    """Every column the database tests use is accepted for its strategy."""
    anonymizer(case).check_column()


# --- apply: explicit cases ------------------------------------------------------------------


def make(spec: object, column_type: sa.types.TypeEngine[Any] | None = None) -> Anonymizer:
    """An anonymizer for `spec` on a column of `column_type` (default VARCHAR(64))."""
    column = sa.column("v", sa.String(64) if column_type is None else column_type)
    return Anonymizer(StrategySpec.parse(spec), column, hmac_key=KEY)


def test_null_and_redact() -> None:
    """null empties the value; redact writes the token, cut to the column length."""
    assert make("null").apply("alice") is None
    assert make("redact").apply("alice") == "[redacted]"
    assert make("redact", sa.String(4)).apply("alice") == "[red"
    assert make({"strategy": "redact", "token": "-"}).apply("") == "-"


def test_hash_is_keyed_stable_and_fits() -> None:
    """hash is the marker + HMAC-SHA256 hex, the same for equal inputs, cut to the column."""
    digest = hmac.new(KEY, b"alice@example.com", hashlib.sha256).hexdigest()
    assert make("hash", sa.Text()).apply("alice@example.com") == HASH_MARKER + digest
    assert make("hash", sa.String(16)).apply("alice@example.com") == HASH_MARKER + digest[:14]
    assert make("hash").apply("x") == make("hash").apply("x")
    other_key = Anonymizer(StrategySpec("hash"), sa.column("v", sa.String(64)), hmac_key=b"k2")
    assert other_key.apply("x") != make("hash").apply("x")
    assert make("hash", sa.Text()).apply(HASH_MARKER + digest) == HASH_MARKER + digest
    assert make("hash", sa.Text()).apply(HASH_MARKER + digest.upper()) != HASH_MARKER + digest


@pytest.mark.parametrize(
    ("keep", "raw", "masked"),
    [
        (4, "4111111111111111", "************1111"),
        (4, "abcd", "****"),
        (4, "abc", "***"),
        (4, "", ""),
        (0, "abc", "***"),
        (2, "é✓😀", "*✓😀"),
        (4, "****1234", "****1234"),
    ],
)
def test_mask(keep: int, raw: str, masked: str) -> None:
    """mask hides all but the last `keep` characters; a value that short is hidden entirely."""
    assert make({"strategy": "mask", "keep": keep}).apply(raw) == masked


@pytest.mark.parametrize(
    ("raw", "truncated"),
    [
        ("192.168.1.77", "192.168.1.0"),
        (" 10.0.0.1 ", "10.0.0.0"),
        ("192.168.1.0", "192.168.1.0"),
        ("2001:db8:abcd:12::1", "2001:db8:abcd::"),
        ("2001:0DB8:0000:0012:0000:0000:0000:0001", "2001:db8::"),
        ("0:0:5::1", "0:0:5::"),
        ("::1", "::"),
        ("fe80::1%eth0", "fe80::"),
        ("::ffff:10.1.2.3", "10.1.2.0"),
        ("unknown", "[redacted]"),
        ("10.1.2.3:8080", "[redacted]"),
        ("010.1.2.3", "[redacted]"),
        ("", "[redacted]"),
    ],
)
def test_truncate_ip(raw: str, truncated: str) -> None:
    """IPv4 keeps its /24, IPv6 its /48 (compressed), v4-mapped counts as v4, the rest is
    redacted."""
    assert make("truncate_ip").apply(raw) == truncated


@pytest.mark.parametrize(
    ("raw", "domain"),
    [
        ("user@example.com", "example.com"),
        ("Bob.Smith@Mail.Example.CO.UK", "mail.example.co.uk"),
        ('"odd@local"@example.org', "example.org"),
        ("a@bücher.de", "xn--bcher-kva.de"),
        ("example.com", "example.com"),
        ("user@localhost", "[redacted]"),
        ("Bob <bob@example.com>", "[redacted]"),
        ("not an email", "[redacted]"),
        ("", "[redacted]"),
    ],
)
def test_email_domain(raw: str, domain: str) -> None:
    """email_domain keeps the lowercase (punycode) domain; anything else becomes the token."""
    assert make("email_domain").apply(raw) == domain


def test_email_domain_that_does_not_fit_is_redacted() -> None:
    """A punycode domain longer than the column is replaced by the token, not cut."""
    assert make("email_domain", sa.String(12)).apply("a@bücher.de") == "[redacted]"


UTC2 = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("to", "raw", "generalized"),
    [
        ("month", date(2024, 2, 29), date(2024, 2, 1)),
        ("year", date(2024, 2, 29), date(2024, 1, 1)),
        ("month", datetime(2024, 3, 31, 23, 59, 59, 999999), datetime(2024, 3, 1)),
        ("month", datetime(2024, 3, 31, 23, 0, tzinfo=UTC2), datetime(2024, 3, 1, tzinfo=UTC2)),
        ("month", "2024-03-15", "2024-03-01"),
        ("year", "2024-03-15", "2024-01-01"),
        ("month", "2024-03-15T10:20:30.5+02:00", "2024-03-01T00:00:00+02:00"),
        ("month", "2024-03-15 10:20", "2024-03-01 00:00:00"),
        ("month", "2024-03-01T00:00:00Z", "2024-03-01T00:00:00+00:00"),
        ("month", "2024-02-30", "[redacted]"),
        ("month", "20240315", "[redacted]"),
        ("month", "last week", "[redacted]"),
    ],
)
def test_generalize_date(to: str, raw: Any, generalized: Any) -> None:
    """Dates and datetimes go to the first of their month or year at midnight, keeping their
    type, time zone and (for text) ISO shape; text that is no ISO date becomes the token."""
    result = make({"strategy": "generalize_date", "to": to}, sa.String(40)).apply(raw)
    assert result == generalized
    assert type(result) is type(generalized)


def test_generalize_date_text_falls_back_to_a_date_when_too_long() -> None:
    """A datetime text whose generalized form would not fit is written as a plain date."""
    assert make("generalize_date", sa.String(16)).apply("2024-03-15T10:20") == "2024-03-01"


@pytest.mark.parametrize("name", STRATEGIES)
def test_none_stays_none(name: str) -> None:
    """NULL is never turned into a value."""
    assert make(name, sa.String(64)).apply(None) is None


def test_non_text_value_is_a_type_error() -> None:
    """A text strategy given a non-string value fails loudly instead of hashing its repr."""
    with pytest.raises(TypeError, match="expected text"):
        make("hash").apply(42)
    with pytest.raises(TypeError, match="expected text"):
        make("hash").apply_all(["alice", 42])


def test_unknown_dialect() -> None:
    """SQL for an unsupported dialect is refused with the supported list."""
    with pytest.raises(ValueError, match="supported: sqlite, postgresql, mysql, mariadb"):
        make("redact").done("mssql")


# --- apply: properties ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_apply_is_idempotent_and_fits(case: Case) -> None:
    """apply(apply(x)) == apply(x), and a text output is never longer than the column."""
    anon = anonymizer(case)
    length = getattr(case.column_type(), "length", None)

    @settings(max_examples=100, deadline=None)
    @given(case.values)
    def check(value: Any) -> None:
        once = anon.apply(fit(case, value))
        assert anon.apply(once) == once
        if isinstance(once, str) and length:
            assert len(once) <= length

    check()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_apply_all_is_apply_on_each_value(case: Case) -> None:
    """A batch's values through apply_all are exactly apply's, value by value, in order (the
    keyed hash is computed in bulk there), already-anonymized values and None included."""
    anon = anonymizer(case)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(case.values | st.none(), max_size=12), st.data())
    def check(values: list[Any], data: st.DataObject) -> None:
        batch = [None if v is None else fit(case, v) for v in values]
        done = [anon.apply(v) for v in batch]
        mixed = [data.draw(st.sampled_from([v, d])) for v, d in zip(batch, done, strict=True)]
        assert anon.apply_all(mixed) == [anon.apply(v) for v in mixed]

    check()


@pytest.mark.parametrize(
    "spec", ["redact", "hash", "mask", "truncate_ip", "email_domain", "generalize_date"]
)
def test_output_fits_any_string_length(spec: str) -> None:
    """For every String(n) the strategy accepts, outputs have at most n characters."""

    @settings(max_examples=100, deadline=None)
    @given(st.integers(1, 80), TEXT | IPS | EMAILS | DATE_TEXTS)
    def check(length: int, value: str) -> None:
        anon = make(spec, sa.String(length))
        try:
            anon.check_column()
        except ValueError:
            return
        once = anon.apply(value[:length])
        assert once is None or len(once) <= length
        assert anon.apply(once) == once

    check()


# --- SQL on real databases ------------------------------------------------------------------

BACKENDS = [
    pytest.param(None, id="sqlite"),
    pytest.param("duckdb", id="duckdb"),
    pytest.param("RETENTION_TEST_POSTGRES_URL", id="postgres", marks=pytest.mark.postgres),
    pytest.param("RETENTION_TEST_MARIADB_URL", id="mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(scope="module", params=BACKENDS)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.Engine]:
    """One engine per backend: a temporary SQLite or DuckDB file, or the server named by the
    env var."""
    variable: str | None = request.param
    if variable is None:
        url = f"sqlite:///{tmp_path_factory.mktemp('anonymize') / 'test.db'}"
    elif variable == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('anonymize') / 'test.duckdb'}"
    else:
        url = os.environ.get(variable, "")
        if not url:
            pytest.skip(f"{variable} is not set; export a SQLAlchemy URL to run this backend")
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


@contextmanager
def table_for(engine: sa.Engine, case: Case) -> Iterator[sa.Table]:
    """A uniquely named table (id, value) for the case's column type, dropped afterwards."""
    metadata = sa.MetaData()
    table = sa.Table(
        f"anon_{uuid.uuid4().hex[:12]}",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", case.column_type(), nullable=True),
        mysql_charset="utf8mb4",
    )
    metadata.create_all(engine)
    try:
        yield table
    finally:
        metadata.drop_all(engine)


def load(conn: sa.Connection, table: sa.Table, values: list[Any]) -> None:
    """Replace the table's rows by `values`."""
    conn.execute(sa.delete(table))
    if values:
        conn.execute(sa.insert(table), [{"id": i, "value": v} for i, v in enumerate(values)])


def rows(conn: sa.Connection, table: sa.Table) -> list[Any]:
    """The stored values in id order."""
    return list(conn.execute(sa.select(table.c.value).order_by(table.c.id)).scalars())


def not_done(conn: sa.Connection, table: sa.Table, anon: Anonymizer) -> int:
    """How many rows the planner would still find to anonymize."""
    query = sa.select(sa.func.count()).select_from(table)
    return int(conn.execute(query.where(sa.not_(anon.done(conn.dialect.name)))).scalar_one())


def update_in_python(conn: sa.Connection, table: sa.Table, anon: Anonymizer) -> None:
    """Write apply() of every stored value back, one executemany, as the executor does."""
    stored = conn.execute(sa.select(table.c.id, table.c.value)).all()
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"))
        .values(value=sa.bindparam("b_value"))
    )
    params = [{"b_id": key, "b_value": anon.apply(value)} for key, value in stored]
    if params:
        conn.execute(statement, params)


def update_in_sql(conn: sa.Connection, table: sa.Table, anon: Anonymizer) -> bool:
    """The set-based UPDATE, if the strategy has one on this dialect."""
    dialect = conn.dialect.name
    expression = anon.set_based(dialect)
    if expression is None:
        return False
    conn.execute(sa.update(table).where(sa.not_(anon.done(dialect))).values(value=expression))
    return True


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_sql_finds_raw_values_and_no_work_after_update(engine: sa.Engine, case: Case) -> None:
    """Before: every non-NULL raw value is work; after an UPDATE with Python values (and with
    the set-based expression, which gives the same values) none is, and a rerun changes
    nothing."""
    raw = [*case.raw, None]
    with table_for(engine, case) as table, engine.begin() as conn:
        anon = anonymizer(case, table.c.value)
        anon.check_column()
        load(conn, table, raw)
        assert not_done(conn, table, anon) == len(case.raw)
        update_in_python(conn, table, anon)
        assert not_done(conn, table, anon) == 0
        expected = rows(conn, table)
        assert [anon.apply(v) for v in expected] == expected
        assert expected == [anon.apply(v) for v in raw]

        load(conn, table, raw)
        if update_in_sql(conn, table, anon):
            assert not_done(conn, table, anon) == 0
            assert rows(conn, table) == expected


def test_set_based_exists_for_null_redact_mask_and_typed_dates() -> None:
    """Plain-SQL anonymization is offered where it is exact, and nowhere else."""
    offered = {
        (case.id, dialect)
        for case in CASES
        for dialect in ("sqlite", "postgresql", "mariadb", "duckdb")
        if anonymizer(case).set_based(dialect) is not None
    }
    simple = {c.id for c in CASES if c.id.startswith(("null", "redact", "mask"))}
    typed = {"date-month", "datetime-month", "datetime-year"}
    every = ("sqlite", "postgresql", "mariadb", "duckdb")
    assert offered == {(c, d) for c in simple for d in every} | {
        (c, d) for c in typed for d in ("postgresql", "mariadb", "duckdb")
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_sql_done_agrees_with_python(engine: sa.Engine, case: Case) -> None:
    """For any stored value, SQL `done` is true exactly when apply() would leave it unchanged,
    and the set-based UPDATE writes what apply() computes."""
    with table_for(engine, case) as table, engine.connect() as conn:
        anon = anonymizer(case, table.c.value)
        dialect = conn.dialect.name

        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(st.lists(case.values, max_size=8))
        def check(values: list[Any]) -> None:
            with conn.begin():
                load(conn, table, [fit(case, v) for v in values])
                query = sa.select(table.c.value, anon.done(dialect).label("done"))
                for value, done in conn.execute(query.order_by(table.c.id)):
                    assert done in (True, False), (value, done)
                    assert bool(done) == (anon.apply(value) == value), value
                expected = [anon.apply(v) for v in rows(conn, table)]
                if update_in_sql(conn, table, anon):
                    assert rows(conn, table) == expected
                update_in_python(conn, table, anon)
                assert not_done(conn, table, anon) == 0

        check()
