"""Anonymization strategies: what an `anonymize` rule does to one personal column.

Each strategy is a pair that must agree:

* :meth:`Anonymizer.apply`, the Python transform the executor writes back in batches, and
* :meth:`Anonymizer.done`, an SQL predicate "this value is already anonymized (or NULL)",
  so the planner finds the records still to do with one set-based query.

For every value ``x``: ``apply(apply(x)) == apply(x)``, and ``done`` holds for a stored value
exactly when ``apply`` would leave it unchanged, on SQLite, PostgreSQL and MariaDB/MySQL alike.
That is why anonymized values have recognisable shapes (``h:`` + hex, ``a.b.c.0``, a
lowercase domain, the first of a month) and why anything a strategy cannot parse becomes the
redact token instead of being kept. Outputs always fit the column: its type and its length.

Text shapes are matched with regular expressions written in the common subset of Python ``re``
(SQLite's ``REGEXP``, which SQLAlchemy's pysqlite dialect provides through ``re``), PostgreSQL
AREs and PCRE (MariaDB), anchored per dialect and case-sensitive everywhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal, TypeVar, get_args

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .hmackeys import KeyHmac
from .sqldialects import DIALECTS, Dialect, RegexFlavour

__all__ = ["HASH_MARKER", "STRATEGIES", "Anonymizer", "StrategyName", "StrategySpec"]

StrategyName = Literal[
    "null", "redact", "hash", "mask", "truncate_ip", "generalize_date", "email_domain"
]
STRATEGIES: Final[tuple[str, ...]] = get_args(StrategyName)

HASH_MARKER: Final = "h:"
_HASH_MIN_HEX: Final = 8
_HASH_MAX_HEX: Final = 64
_TOKEN_MAX: Final = 64

# Options each strategy accepts in rule YAML besides `strategy`; `token` is the redact token,
# also used as the fallback of strategies whose input may not parse.
_OPTIONS: Final[dict[str, tuple[str, ...]]] = {
    "null": (),
    "redact": ("token",),
    "hash": (),
    "mask": ("keep",),
    "truncate_ip": ("token",),
    "generalize_date": ("to", "token"),
    "email_domain": ("token",),
}

# Regular-expression bodies (unanchored, ASCII ranges only, no `.` and no `\d`).
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_V4_NET = rf"({_OCTET}\.){{3}}0"
_HEXTET = r"[1-9a-f][0-9a-f]{0,3}"
_V6_NET = rf"::|{_HEXTET}::|(0|{_HEXTET}):{_HEXTET}::|(0|{_HEXTET}):(0|{_HEXTET}):{_HEXTET}::"
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = rf"({_LABEL}\.)+([a-z]{{2,63}}|xn--[a-z0-9]([a-z0-9-]{{0,57}}[a-z0-9])?)"
_YEAR = r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_ANY_MONTH = r"(0[1-9]|1[0-2])"
_OFFSET = r"[+-]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{6})?)?"
_ISO_DATE_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# exactly the dotted quads ipaddress.IPv4Address accepts (ASCII, no leading zeros, <= 255)
_V4_QUAD = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


_D = TypeVar("_D", bound=date)


def _escape(text: str) -> str:
    """Escape printable ASCII for Python re, PostgreSQL AREs and PCRE alike."""
    return "".join(c if c.isalnum() else "\\" + c for c in text)


_ANCHORS: Final[dict[RegexFlavour, str]] = {
    "posix": "^({})$",  # PostgreSQL's AREs and RE2: `$` is the end of the text
    "pcre": "(?-i)^({})\\z",  # `$` alone would accept a trailing newline in PCRE
    "python": "^({})\\Z",  # Python re, and SQLite's REGEXP, which SQLAlchemy maps to re.search
}


def _anchored(body: str, flavour: RegexFlavour) -> str:
    """A full-match pattern for `body` in `flavour`."""
    return _ANCHORS[flavour].format(body)


def _dialect(name: str) -> Dialect:
    """A tested dialect's capabilities: whether a value counts as anonymized is a regular
    expression, whose meaning differs between engines, so untested ones are refused."""
    if name not in DIALECTS:
        raise ValueError(
            f"unsupported SQL dialect {name!r} for anonymization; supported: {', '.join(DIALECTS)}"
        )
    return DIALECTS[name]


def _char_length(dialect: Dialect, expr: ColumnElement[Any]) -> ColumnElement[int]:
    """Length in characters (MySQL's `length()` counts bytes)."""
    length: ColumnElement[int] = getattr(sa.func, dialect.char_length)(expr, type_=sa.Integer())
    return length


@dataclass(frozen=True)
class StrategySpec:
    """One anonymize strategy and its options, as written in a rule's `anonymize:` map."""

    name: StrategyName
    keep: int = 4
    to: Literal["month", "year"] = "month"
    token: str = "[redacted]"

    def __post_init__(self) -> None:
        if self.name not in STRATEGIES:
            raise ValueError(
                f"unknown anonymize strategy {self.name!r}; allowed: {', '.join(STRATEGIES)}"
            )
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or self.keep < 0:
            raise ValueError(f"mask: keep must be a whole number >= 0, got {self.keep!r}")
        if self.to not in ("month", "year"):
            raise ValueError(f"generalize_date: to must be 'month' or 'year', got {self.to!r}")
        token = self.token
        if not (
            isinstance(token, str)
            and 0 < len(token) <= _TOKEN_MAX
            and token.isascii()
            and token.isprintable()
        ):
            raise ValueError(
                f"token must be 1 to {_TOKEN_MAX} printable ASCII characters, got {token!r}"
            )

    @classmethod
    def parse(cls, raw: object) -> StrategySpec:
        """Read `hash` or `{strategy: mask, keep: 4}` from rule YAML; ValueError if invalid."""
        if isinstance(raw, StrategySpec):
            return raw
        if isinstance(raw, str):
            if raw not in STRATEGIES:
                raise ValueError(
                    f"unknown anonymize strategy {raw!r}; allowed: {', '.join(STRATEGIES)}"
                )
            return cls(name=raw)  # type: ignore[arg-type]  # checked against STRATEGIES
        if isinstance(raw, Mapping):
            options = dict(raw)
            name = options.pop("strategy", None)
            if not isinstance(name, str) or name not in STRATEGIES:
                raise ValueError(
                    f"anonymize strategy must be one of {', '.join(STRATEGIES)} "
                    f"(as a string or under 'strategy:'), got {name!r}"
                )
            allowed = _OPTIONS[name]
            unknown = sorted(str(key) for key in options if key not in allowed)
            if unknown:
                raise ValueError(
                    f"{name}: unknown option(s) {', '.join(unknown)}; allowed: "
                    f"{', '.join(allowed) or 'none'}"
                )
            return cls(name=name, **options)  # type: ignore[arg-type]
        raise ValueError(
            "an anonymize strategy is a name or a mapping with 'strategy:', "
            f"got {type(raw).__name__}; allowed: {', '.join(STRATEGIES)}"
        )


class Anonymizer:
    """Applies one StrategySpec to one column, in Python and as SQL predicates/expressions."""

    def __init__(
        self,
        spec: StrategySpec,
        column: sa.Column[Any] | ColumnElement[Any],
        *,
        hmac_key: bytes | None,
    ) -> None:
        if spec.name == "hash" and not hmac_key:
            raise ValueError("the hash strategy needs an HMAC key (setting hmac_key)")
        self.spec = spec
        self.column = column
        self._key = hmac_key or b""
        # keyed once: each value is hashed on a copy
        self._mac = KeyHmac(self._key) if spec.name == "hash" else None
        column_type = column.type
        self._length: int | None = (
            column_type.length if isinstance(column_type, sa.String) else None
        )
        self._token = spec.token[: self._length] if self._length else spec.token
        self._typed_date = isinstance(column_type, (sa.Date, sa.DateTime))
        self._hash_hex = _HASH_MAX_HEX
        if self._length is not None:
            self._hash_hex = max(_HASH_MIN_HEX, min(_HASH_MAX_HEX, self._length - len(HASH_MARKER)))
        self._body = self._done_body()
        self._python_re = re.compile(_anchored(self._body, "python")) if self._body else None

    def _done_body(self) -> str | None:
        """The regex of anonymized text values, or None where done is not a text shape."""
        token = _escape(self._token)
        match self.spec.name:
            case "redact":
                return token
            case "hash":
                return f"{_escape(HASH_MARKER)}[0-9a-f]{{{self._hash_hex}}}"
            case "truncate_ip":
                return f"{_V4_NET}|{_V6_NET}|{token}"
            case "email_domain":
                return f"{_DOMAIN}|{token}"
            case "generalize_date" if not self._typed_date:
                month = _ANY_MONTH if self.spec.to == "month" else "01"
                day = f"{_YEAR}-{month}-01"
                return f"{day}|{day}[T ]00:00:00({_OFFSET})?|{token}"
            case "generalize_date":  # a date/datetime column as SQLite stores it: text
                month = _ANY_MONTH if self.spec.to == "month" else "01"
                return rf"{_YEAR}-{month}-01([ T]00:00:00(\.0+)?)?"
            case _:
                return None

    def _label(self) -> str:
        table = getattr(self.column, "table", None)
        name = getattr(self.column, "name", str(self.column))
        table_name = getattr(table, "name", None)
        return f"{table_name}.{name}" if table_name else str(name)

    def check_column(self) -> None:
        """Raise ValueError if this strategy's values cannot be stored in this column."""
        name, label, column_type = self.spec.name, self._label(), self.column.type
        if getattr(self.column, "primary_key", False):
            raise ValueError(f"{label}: a primary key column cannot be anonymized")
        if name == "null":
            if getattr(self.column, "nullable", True) is False:
                raise ValueError(f"{label}: strategy null needs a nullable column (NOT NULL)")
            return
        if name == "generalize_date":
            if self._typed_date:
                return
            if not isinstance(column_type, sa.String) or isinstance(column_type, sa.Enum):
                raise ValueError(
                    f"{label}: generalize_date needs a date, datetime or text column, "
                    f"not {column_type}"
                )
            if self._length is not None and self._length < len("YYYY-MM-DD"):
                raise ValueError(f"{label}: {column_type} is too short for ISO dates")
            return
        if not isinstance(column_type, sa.String) or isinstance(column_type, sa.Enum):
            raise ValueError(f"{label}: strategy {name} needs a string column, not {column_type}")
        minimum = len(HASH_MARKER) + _HASH_MIN_HEX if name == "hash" else 1
        if self._length is not None and self._length < minimum:
            raise ValueError(
                f"{label}: strategy {name} needs a column of at least {minimum} characters, "
                f"not {column_type}"
            )

    def apply(self, value: Any) -> Any:
        """The anonymized form of `value`; idempotent, fits the column, None stays None."""
        if value is None:
            return None
        name = self.spec.name
        if name == "null":
            return None
        if name == "redact":
            return self._token
        if name == "generalize_date":
            if isinstance(value, date):
                return self._generalize(value)
            return self._generalize_text(self._text(value))
        text = self._text(value)
        if self._python_re is not None and self._python_re.search(text):
            return text
        if name == "hash":
            assert self._mac is not None
            return HASH_MARKER + self._mac.hexdigest(text)[: self._hash_hex]
        if name == "mask":
            return self._mask(text)
        if name == "truncate_ip":
            return self._truncate_ip(text)
        return self._email_domain(text)

    def apply_all(self, values: Sequence[Any]) -> list[Any]:
        """:meth:`apply` over one batch's values, in order. The keyed hash is computed in bulk
        (:meth:`KeyHmac.digests`: no call per value), the rest value by value."""
        if self.spec.name != "hash":
            apply = self.apply
            return [apply(value) for value in values]
        assert self._mac is not None
        done = self._python_re.search if self._python_re is not None else None
        out = list(values)
        due: list[int] = []
        for i, value in enumerate(values):
            if value is None:
                continue
            text = self._text(value)  # a non-text value fails here, as in apply
            if done is None or not done(text):
                due.append(i)
        width, marker = self._hash_hex, HASH_MARKER
        for i, digest in zip(due, self._mac.digests([values[i] for i in due]), strict=True):
            out[i] = marker + digest[:width]
        return out

    def _text(self, value: object) -> str:
        if not isinstance(value, str):
            raise TypeError(
                f"{self._label()}: strategy {self.spec.name} got a "
                f"{type(value).__name__}, expected text"
            )
        return value

    def _fit(self, text: str) -> str:
        """`text` if it fits the column, else the token: never a truncated half-value."""
        return text if self._length is None or len(text) <= self._length else self._token

    def _mask(self, text: str) -> str:
        hidden = len(text) - self.spec.keep if len(text) > self.spec.keep else len(text)
        return "*" * hidden + text[hidden:]

    def _truncate_ip(self, text: str) -> str:
        quad = _V4_QUAD.fullmatch(text.strip())
        if quad is not None:  # the common case, without ipaddress's cost
            return self._fit(f"{quad[1]}.{quad[2]}.{quad[3]}.0")
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            return self._token
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if isinstance(address, ipaddress.IPv4Address):
            return self._fit(str(ipaddress.IPv4Address(int(address) & 0xFFFF_FF00)))
        network = ipaddress.IPv6Address(int(address) & ~((1 << 80) - 1))
        return self._fit(network.compressed)

    def _email_domain(self, text: str) -> str:
        _local, at, domain = text.rpartition("@")
        if not at:
            return self._token
        try:
            domain = domain.strip().lower().encode("idna").decode("ascii")
        except UnicodeError:
            return self._token
        if self._python_re is not None and self._python_re.search(domain):
            return self._fit(domain)
        return self._token

    def _generalize(self, value: _D) -> _D:
        month = value.month if self.spec.to == "month" else 1
        if isinstance(value, datetime):
            return value.replace(
                month=month, day=1, hour=0, minute=0, second=0, microsecond=0, fold=0
            )
        return value.replace(month=month, day=1)

    def _generalize_text(self, text: str) -> str:
        if self._python_re is not None and self._python_re.search(text):
            return text
        if not _ISO_DATE_PREFIX.match(text):
            return self._token
        try:
            if len(text) == len("YYYY-MM-DD"):
                return self._generalize(date.fromisoformat(text)).isoformat()
            parsed = self._generalize(datetime.fromisoformat(text))
        except ValueError:
            return self._token
        full = parsed.isoformat(sep=text[10] if text[10] in "T " else "T")
        if self._python_re is not None and self._python_re.search(full) and self._fit(full) == full:
            return full
        return parsed.date().isoformat()  # never longer than the ISO input it came from

    def done(self, dialect_name: str) -> ColumnElement[bool]:
        """SQL: the column's value is already anonymized (or NULL), so there is no work left."""
        dialect = _dialect(dialect_name)
        column = self.column
        is_null = column.is_(None)
        if self.spec.name == "null":
            return is_null
        if self.spec.name == "mask":
            length = _char_length(dialect, column)
            head = sa.case(
                (length > self.spec.keep, sa.func.substr(column, 1, length - self.spec.keep)),
                else_=column,
            )
            stripped = sa.func.replace(head, "*", "", type_=sa.String())
            return sa.or_(is_null, _char_length(dialect, stripped) == 0)
        if self.spec.name == "generalize_date" and self._typed_date and not dialect.text_clocks:
            checks = [sa.extract("day", column) == 1]
            if self.spec.to == "year":
                checks.append(sa.extract("month", column) == 1)
            if isinstance(column.type, sa.DateTime):
                checks += [sa.extract(field, column) == 0 for field in ("hour", "minute", "second")]
                if dialect.whole_seconds:  # PostgreSQL's second already carries the fraction
                    checks.append(sa.extract("microsecond", column) == 0)
            return sa.or_(is_null, sa.and_(*checks))
        if self.spec.name == "hash":
            # the marker and exactly N hex digits, said as "hex digits only" plus the length:
            # PostgreSQL's regex engine takes ~5 µs a row for `{64}`, ten times this
            hex_only = _anchored(f"{_escape(HASH_MARKER)}[0-9a-f]*", dialect.regex)
            width = len(HASH_MARKER) + self._hash_hex
            return sa.or_(
                is_null,
                sa.and_(_char_length(dialect, column) == width, column.regexp_match(hex_only)),
            )
        assert self._body is not None
        text = sa.type_coerce(column, sa.String())  # SQLite stores dates as text: match that
        return sa.or_(is_null, text.regexp_match(_anchored(self._body, dialect.regex)))

    def set_based(self, dialect_name: str) -> ColumnElement[Any] | None:
        """SQL computing the anonymized value in place, when plain SQL can do it exactly."""
        dialect = _dialect(dialect_name)
        column = self.column
        name = self.spec.name
        if name == "null":
            return sa.null()
        if name == "redact":
            return sa.literal(self._token, sa.String())
        if name == "mask":
            keep = self.spec.keep
            length = _char_length(dialect, column)

            def stars(count: ColumnElement[int]) -> ColumnElement[str]:
                if not dialect.repeat:  # SQLite: hex(zeroblob(n)) is n times '00'
                    zeros = sa.func.hex(sa.func.zeroblob(count), type_=sa.String())
                    return sa.func.replace(zeros, "00", "*", type_=sa.String())
                return sa.func.repeat("*", count, type_=sa.String())

            tail = sa.func.substr(column, length - keep + 1, type_=sa.String())
            return sa.case((length > keep, stars(length - keep).concat(tail)), else_=stars(length))
        if name == "generalize_date" and self._typed_date and not dialect.text_clocks:
            column_type = column.type
            target: sa.types.TypeEngine[Any] = (
                sa.DateTime(timezone=column_type.timezone)
                if isinstance(column_type, sa.DateTime)
                else sa.Date()
            )
            if dialect.date_trunc:
                return sa.cast(sa.func.date_trunc(self.spec.to, column), target)
            pattern = "%Y-%m-01" if self.spec.to == "month" else "%Y-01-01"
            return sa.cast(sa.func.date_format(column, pattern, type_=sa.String()), target)
        return None
