"""The SQL dialect table: every dialect the README's store table names is in it, with the flags
the README gives it, and a dialect it does not know gets the plain statements."""

from __future__ import annotations

from pathlib import Path

from retention.sqldialects import DIALECTS, GENERIC, UNTESTED, dialect

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_dialect_is_in_the_readme_store_table() -> None:
    """Each tested and untested dialect has a row, marked as what it is."""
    rows = [line for line in README.splitlines() if line.startswith("  | ")]
    labels = {"mysql": "MariaDB / MySQL", "mariadb": "MariaDB / MySQL", "sqlite": "SQLite"}
    for name, capabilities in {**DIALECTS, **UNTESTED}.items():
        label = labels.get(name, name)
        (row,) = [r for r in rows if r.lower().startswith(f"  | {label.lower()}")]
        assert ("| tested |" in row) == capabilities.tested, name


def test_an_unknown_dialect_gets_the_plain_statements() -> None:
    """No RETURNING, no one-statement write-back, not tested; named as asked."""
    found = dialect("nosuchdb")
    assert (found.name, found.delete_returning, found.write_back, found.tested) == (
        "nosuchdb",
        GENERIC.delete_returning,
        "per_record",
        False,
    )


def test_duckdb_reads_as_of_begin_and_has_no_row_locks() -> None:
    """What the batch loop asks of DuckDB differs from PostgreSQL's only as data."""
    duck, pg = dialect("duckdb"), dialect("postgresql")
    assert (duck.snapshot_at_begin, duck.row_locks, duck.catalog) == (True, False, "duckdb")
    assert (pg.snapshot_at_begin, pg.row_locks, pg.catalog) == (False, True, "inspector")
