"""Recognising personal data in a column: by its name, and by a small sample of its values.

`retention discover` asks :func:`recognise` about every column of every table it reads. The
answer is a :class:`Finding`: which kind of personal data it looks like (``email``, ``ip``,
``phone``, ``name``, ``address``, ``card_number``, ``birth_date``, ``user_agent``), the
anonymize strategy suggested for it, and the evidence in words. The evidence names the column
and counts values; it never quotes one, so a finding can be printed and written to a draft
config without leaking what was sampled.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

# share of the sampled (non-null) values that must look alike before the values are evidence
VALUE_THRESHOLD = 0.8

STRATEGIES: dict[str, str] = {
    "email": "hash",
    "ip": "truncate_ip",
    "phone": "redact",
    "name": "redact",
    "address": "redact",
    "card_number": "mask",
    "birth_date": "generalize_date",
    "user_agent": "redact",
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().\-/]{5,22}[0-9]$")

# normalised column name → kind; a name matches when it equals one of these or ends in `_<it>`
_NAMES: dict[str, tuple[str, ...]] = {
    "email": ("email", "e_mail", "email_address", "mail"),
    "ip": ("ip", "ip_address", "ipaddress", "remote_addr", "client_ip", "ip_addr"),
    "phone": ("phone", "phone_number", "telephone", "mobile", "cell", "fax"),
    "name": (
        "first_name",
        "last_name",
        "firstname",
        "lastname",
        "full_name",
        "fullname",
        "surname",
        "given_name",
        "family_name",
        "middle_name",
        "display_name",
    ),
    "address": ("address", "address1", "address2", "street", "street_address", "postal_code",
                "postcode", "zip", "zip_code"),
    "card_number": ("card_number", "cc_number", "credit_card", "card_no", "pan"),
    "birth_date": ("birth_date", "birthdate", "date_of_birth", "dob", "birthday"),
    "user_agent": ("user_agent", "useragent"),
}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One column that looks personal: what kind, the suggested strategy, and why."""

    column: str
    kind: str
    strategy: str
    evidence: str


def snake(name: str) -> str:
    """`name` in snake case: ``BillingAddress`` → ``billing_address``, ``E-Mail`` → ``e_mail``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return re.sub(r"[^0-9a-z]+", "_", spaced.lower()).strip("_")


def kind_by_name(column: str) -> str | None:
    """The kind of personal data a column's name says it holds, if any."""
    name = snake(column)
    for kind, names in _NAMES.items():
        if any(name == n or name.endswith(f"_{n}") for n in names):
            return kind
    return None


def luhn(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check card numbers carry."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def kind_of_value(value: str) -> str | None:
    """The kind of personal data one value looks like, if any."""
    text = value.strip()
    if not text or len(text) > 320:
        return None
    if _EMAIL.match(text):
        return "email"
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return "ip"
    digits = re.sub(r"[ \-]", "", text)
    if digits.isdigit() and 13 <= len(digits) <= 19 and luhn(digits):
        return "card_number"
    if _PHONE.match(text) and sum(c.isdigit() for c in text) >= 7:
        return "phone"
    return None


def kind_by_values(values: Sequence[str]) -> tuple[str, int] | None:
    """The kind most sampled values look like, and how many do, when they are enough."""
    if not values:
        return None
    counts: dict[str, int] = {}
    for value in values:
        kind = kind_of_value(value)
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        return None
    kind, count = max(counts.items(), key=lambda item: item[1])
    return (kind, count) if count >= VALUE_THRESHOLD * len(values) else None


def recognise(
    column: str, values: Sequence[str] | None, *, dated: bool, people: bool
) -> Finding | None:
    """Whether `column` holds personal data, judged by its name and its sampled text values.

    `dated`: the column is a date or timestamp (only those can be birth dates). `people`: its
    table holds people (the subject table, or one with other personal columns), where a bare
    ``name`` column is a person's name. `values` are a sample of the column's non-null text
    values, or None when it is not a text column.
    """
    by_name = kind_by_name(column)
    if by_name is None and people and snake(column) == "name":
        by_name = "name"
    if by_name == "birth_date" and not dated:
        by_name = None
    by_values = kind_by_values(values) if values is not None else None
    if by_values is not None:
        kind, count = by_values
        evidence = f"{count} of {len(values or ())} sampled values look like {_WORDS[kind]}"
        if by_name == kind:
            evidence = f"the name says {_WORDS[kind]}, and {evidence}"
        return Finding(column, kind, STRATEGIES[kind], evidence)
    if by_name is None:
        return None
    return Finding(column, by_name, STRATEGIES[by_name], f"the name says {_WORDS[by_name]}")


_WORDS = {
    "email": "e-mail addresses",
    "ip": "IP addresses",
    "phone": "phone numbers",
    "name": "a person's name",
    "address": "a postal address",
    "card_number": "card numbers (Luhn check)",
    "birth_date": "a date of birth",
    "user_agent": "a browser's user agent",
}

__all__ = ["STRATEGIES", "Finding", "kind_by_name", "kind_by_values", "luhn", "recognise", "snake"]
