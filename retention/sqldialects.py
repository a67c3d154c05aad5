"""What each SQLAlchemy dialect can do, as data: the SQL store and the anonymizers read this table
instead of asking ``if dialect == ...``.

A dialect not in the table gets :data:`GENERIC`: the statements every SQL database runs (no
``RETURNING``, no write-back in one statement, row locks, PostgreSQL-style regular expressions),
so an untested dialect works where it runs standard SQL, and fails with the database's own message
where it does not. :data:`UNTESTED` says what the README promises for the warehouses we have not
run: the flags each would need.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Protocol

# how a full-match pattern is anchored: Python's re (SQLite's REGEXP), PostgreSQL's AREs and
# RE2 (DuckDB, Trino, BigQuery), or PCRE (MySQL/MariaDB)
RegexFlavour = Literal["python", "posix", "pcre"]
# how a subject id stored as text is trimmed: a registered function (SQLite), btrim (PostgreSQL),
# trim with a character list (DuckDB), or two regular-expression replacements (MySQL/MariaDB)
IdTrim = Literal["function", "btrim", "trim_chars", "regexp"]
# how a batch's anonymized values computed in Python are written back in one statement
WriteBack = Literal["jsonb", "json_table", "per_record"]
# how recovery waits, for a bounded time, for a batch another process may still be committing:
# row locks bounded by ``lock_timeout`` (PostgreSQL) or ``innodb_lock_wait_timeout`` (InnoDB),
# the database's write lock bounded by ``busy_timeout`` (SQLite), or not at all (one process
# only: DuckDB; or no known bound: the untested warehouses)
SettleWait = Literal["lock_timeout", "innodb_lock_wait_timeout", "busy_timeout", "none"]


@dataclass(frozen=True)
class Dialect:
    """One SQL dialect's capabilities.

    - ``delete_returning``, ``update_returning``: ``DELETE``/``UPDATE ... RETURNING`` (else the
      keys are selected first); None: as SQLAlchemy's dialect reports for the server it reached
      (MariaDB has ``DELETE ... RETURNING``, MySQL does not; neither has it for ``UPDATE``).
    - ``returning_subqueries``: a ``RETURNING`` list may hold a subquery (the per-record facts
      of a subject clock read the subject table); DuckDB refuses one ("SUBQUERY is not
      supported in returning statements"), so there the rows are selected first.
    - ``row_locks``: ``SELECT ... FOR UPDATE`` (DuckDB has none: its optimistic transactions
      refuse a conflicting commit instead).
    - ``snapshot_at_begin``: a transaction reads the database as of its start (DuckDB), not as
      of each statement (READ COMMITTED), so a batch's transaction begins after its window is
      chosen, for its DELETE/UPDATE to see what changed meanwhile (an account reopened).
    - ``cascade_with_foreign_keys``: a row and the rows whose foreign key refers to it can be
      deleted in one transaction (DuckDB checks the key before the transaction ends, and
      refuses).
    - ``transactions``: DML (and, for partition drops, DDL) is transactional.
    - ``self_subquery``: a ``DELETE`` may read the table it changes in a subquery.
    - ``write_back``: how anonymized values computed in Python reach the table in one statement.
    - ``pipelined``: a live run may write one batch while it commits the one before.
    - ``facts_in_sql``: the audit's per-record due times and lateness are computed by the
      batch's own statement where the calendar allows (:mod:`.stores.sql.factsql`).
    - ``utc_timestamps``: a ``TIMESTAMP`` column reads as UTC (MySQL's, the session in UTC).
    - ``python_functions``: Python functions can be registered on a connection (SQLite), so a
      strategy SQL cannot express still runs inside one ``UPDATE``.
    - ``text_clocks``: timestamps are kept as text (SQLite) and parsed by a registered function.
    - ``catalog``: how tables are reflected: SQLAlchemy's inspector, or DuckDB's own catalog
      functions (duckdb_engine's inspector queries ``pg_catalog`` tables DuckDB lacks).
    - ``partitions``: native partitioned tables whose partitions can be dropped whole.
    - ``regex``, ``id_trim``: see the types above.
    - ``char_length``: the function that counts characters (SQLite's ``length``).
    - ``repeat``: ``repeat(text, n)`` exists (SQLite builds it from ``zeroblob``).
    - ``date_trunc``: ``date_trunc(unit, value)`` (else MySQL's ``date_format``).
    - ``whole_seconds``: ``EXTRACT(SECOND ...)`` drops the fraction, which is checked apart.
    - ``max_integer``: the widest integer a column can hold.
    - ``settle_wait``: see the type above (:mod:`retention.stores.sql.inflight`).
    """

    name: str
    tested: bool
    delete_returning: bool | None
    update_returning: bool | None
    returning_subqueries: bool = True
    row_locks: bool = True
    snapshot_at_begin: bool = False
    cascade_with_foreign_keys: bool = True
    transactions: bool = True
    self_subquery: bool = True
    write_back: WriteBack = "per_record"
    pipelined: bool = False
    facts_in_sql: bool = False
    utc_timestamps: bool = False
    python_functions: bool = False
    text_clocks: bool = False
    catalog: Literal["inspector", "duckdb"] = "inspector"
    partitions: bool = False
    regex: RegexFlavour = "posix"
    id_trim: IdTrim = "btrim"
    char_length: str = "char_length"
    repeat: bool = True
    date_trunc: bool = True
    whole_seconds: bool = False
    max_integer: int = 2**64 - 1
    settle_wait: SettleWait = "none"


SQLITE = Dialect(
    "sqlite",
    tested=True,
    delete_returning=True,
    update_returning=True,
    python_functions=True,
    text_clocks=True,
    regex="python",
    id_trim="function",
    char_length="length",
    repeat=False,
    date_trunc=False,
    max_integer=2**63 - 1,
    settle_wait="busy_timeout",
)
POSTGRESQL = Dialect(
    "postgresql",
    tested=True,
    delete_returning=True,
    update_returning=True,
    write_back="jsonb",
    pipelined=True,
    facts_in_sql=True,
    partitions=True,
    settle_wait="lock_timeout",
)
MYSQL = Dialect(
    "mysql",
    tested=True,
    delete_returning=None,
    update_returning=False,
    self_subquery=False,
    write_back="json_table",
    utc_timestamps=True,
    regex="pcre",
    id_trim="regexp",
    date_trunc=False,
    whole_seconds=True,
    settle_wait="innodb_lock_wait_timeout",
)
DUCKDB = Dialect(
    "duckdb",
    tested=True,
    delete_returning=True,
    update_returning=True,
    returning_subqueries=False,
    row_locks=False,
    snapshot_at_begin=True,
    cascade_with_foreign_keys=False,
    catalog="duckdb",
    id_trim="trim_chars",
    whole_seconds=True,
)
GENERIC = Dialect("generic", tested=False, delete_returning=False, update_returning=False)

DIALECTS: dict[str, Dialect] = {
    d.name: d for d in (SQLITE, POSTGRESQL, MYSQL, replace(MYSQL, name="mariadb"), DUCKDB)
}

# what the README's store table expects of the warehouses not run here (their dialect packages
# name themselves so): the flags each needs beyond GENERIC, none of them tested
UNTESTED: dict[str, Dialect] = {
    "trino": replace(GENERIC, name="trino", row_locks=False, transactions=False),
    "snowflake": replace(GENERIC, name="snowflake", row_locks=False),
    "bigquery": replace(GENERIC, name="bigquery", row_locks=False, transactions=False),
    "redshift": replace(GENERIC, name="redshift", row_locks=False),
}


def dialect(name: str) -> Dialect:
    """The capabilities of the SQLAlchemy dialect `name` (:data:`GENERIC` when unknown)."""
    return DIALECTS.get(name) or UNTESTED.get(name) or replace(GENERIC, name=name)


class _Connected(Protocol):
    name: str
    delete_returning: bool
    update_returning: bool


def connected(reached: _Connected) -> Dialect:
    """The capabilities of a SQLAlchemy dialect that has reached its server: the flags the
    table leaves to the server (None) are what the dialect found."""
    found = dialect(reached.name)
    return replace(
        found,
        delete_returning=bool(
            reached.delete_returning if found.delete_returning is None else found.delete_returning
        ),
        update_returning=bool(
            reached.update_returning if found.update_returning is None else found.update_returning
        ),
    )


__all__ = [
    "DIALECTS",
    "GENERIC",
    "UNTESTED",
    "Dialect",
    "IdTrim",
    "RegexFlavour",
    "connected",
    "dialect",
]
