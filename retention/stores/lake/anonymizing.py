"""Anonymize rules on lake tables: the SQL stores' strategies (:mod:`retention.anonymize`),
applied in Python to a batch's rows, so a Delta or Iceberg row ends up with exactly the value
a SQL row would.

A column's Arrow type is read as the SQLAlchemy type the strategy checks (text, date,
timestamp, number), so a strategy a column cannot hold is refused by `validate` with the same
message as on SQL, and by a run before it writes anything. A row whose personal columns all
hold their anonymized form already (``apply(x) == x``) is done: it is not due again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import sqlalchemy as sa

from ...anonymize import Anonymizer
from ...datasets import Dataset
from ...rules import Rule

Fields = dict[str, Anonymizer]  # column -> its anonymizer, for one rule


def sql_type(type_: pa.DataType) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type a strategy sees for a column of Arrow type `type_`."""
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return sa.String()
    if pa.types.is_timestamp(type_):
        return sa.DateTime(timezone=type_.tz is not None)
    if pa.types.is_date(type_):
        return sa.Date()
    if pa.types.is_integer(type_):
        return sa.Integer()
    if pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return sa.Float()
    if pa.types.is_boolean(type_):
        return sa.Boolean()
    return sa.LargeBinary()  # anything else: no strategy but `null` accepts it


def field_anonymizer(
    personal: str, rule: Rule, dataset: Dataset, schema: pa.Schema, hmac_key: bytes | None
) -> tuple[str, Anonymizer]:
    """The column of one of `rule`'s personal fields and its anonymizer, checked against the
    column (ValueError saying why not: a missing column, a type or nullability the strategy
    cannot store, a key column, the hash without a key)."""
    column = dataset.config.personal.get(personal)
    if column is None or column not in schema.names:
        raise ValueError(f"table {dataset.config.table!r} has no column {column!r}")
    field = schema.field(column)
    sql = sa.Column(
        column,
        sql_type(field.type),
        nullable=field.nullable,
        primary_key=column in dataset.key_columns,
    )
    anonymizer = Anonymizer(rule.anonymize[personal], sql, hmac_key=hmac_key)
    anonymizer.check_column()
    return column, anonymizer


def rule_fields(rule: Rule, dataset: Dataset, schema: pa.Schema, hmac_key: bytes | None) -> Fields:
    """The anonymizers of `rule`'s personal fields on this table (ValueError naming the first
    field that cannot be anonymized and why)."""
    found: Fields = {}
    for personal in rule.anonymize:
        try:
            column, anonymizer = field_anonymizer(personal, rule, dataset, schema, hmac_key)
        except ValueError as exc:
            raise ValueError(f"rule {rule.id}: anonymize.{personal}: {exc}") from None
        found[column] = anonymizer
    return found


def is_done(fields: Fields, row: Mapping[str, Any]) -> bool:
    """Whether every personal column of `row` already holds its anonymized form."""
    for column, anonymizer in fields.items():
        value = row.get(column)
        try:
            if anonymizer.apply(value) != value:
                return False
        except TypeError:  # a value the strategy cannot read: not done (it will fail closed)
            return False
    return True


def anonymized(fields: Fields, rows: pa.Table, schema: pa.Schema) -> dict[str, pa.Array]:
    """Each personal column of `rows`, anonymized, typed as the table's column."""
    return {
        column: pa.array(
            anonymizer.apply_all(rows.column(column).to_pylist()), schema.field(column).type
        )
        for column, anonymizer in fields.items()
    }


__all__ = ["Fields", "anonymized", "field_anonymizer", "is_done", "rule_fields", "sql_type"]
