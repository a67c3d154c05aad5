"""Rule packs: the retention promises of a policy as frozen, validated rules.

A pack is a YAML file with a ``policy`` header and a list of ``rules``. Each rule says which
records it applies to, from which moment their clock runs, how long they are kept and what
happens then (see DESIGN.md, "Rule packs"). This module parses packs into :class:`Rule` objects;
checking that the datasets, categories, events and columns a rule names exist is done by
:mod:`retention.config`, which sees the whole configuration.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from .anonymize import StrategySpec
from .durations import Duration
from .periods import PERIODS, Period
from .settings import FieldError, Model, check_cron

RULE_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
_CLOCK_PATTERN = re.compile(r"^(record|subject)\.([A-Za-z_][A-Za-z0-9_]*)$")

Action = Literal["delete", "anonymize", "keep"]
ABSENT = "assert_absent"  # written in packs; a rule carries it as `asserts_absent` (see Rule)
WhereValue = str | int | float | bool | None | list[str | int | float | bool | None]
SUBJECT_FIELD = "subject."  # a `where` key on the subject's table: ``subject.country``
_SUBJECT_WHERE = re.compile(r"^subject\.([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class ClockRef:
    """One clock: a record timestamp (``record.created``) or a subject event."""

    source: Literal["record", "subject"]
    name: str

    def __str__(self) -> str:
        return f"{self.source}.{self.name}"


@dataclass(frozen=True)
class Clock:
    """When a rule's clock starts: one reference, or the earliest/latest of several; moved to
    the end of its period (year, month, fiscal year) when `round_to` says so."""

    refs: tuple[ClockRef, ...]
    combine: Literal["one", "earliest", "latest"] = "one"
    round_to: Period | None = None

    def __str__(self) -> str:
        if not self.refs:
            return "none (at once)"
        if self.combine == "one":
            text = str(self.refs[0])
        else:
            text = f"{self.combine}({', '.join(str(r) for r in self.refs)})"
        return text if self.round_to is None else f"{text} rounded to {self.round_to}"

    @classmethod
    def none(cls) -> Clock:
        """No clock at all: what must be absent is due at once, always."""
        return cls(())

    def start(self, moments: Sequence[dt.datetime | None]) -> dt.datetime | None:
        """When this clock started, given when each of its references happened (None: not
        yet): the one; the earliest that happened; the latest, once all have. No clock has
        no start (it is due without one)."""
        if not self.refs:
            return None
        known = [m for m in moments if m is not None]
        if self.combine == "one":
            return moments[0]
        if self.combine == "earliest":
            return min(known, default=None)
        return max(known) if len(known) == len(moments) else None

    @classmethod
    def parse(cls, raw: object) -> Clock:
        """Parse ``record.x``, ``subject.y``, ``{earliest: [...]}``, ``{latest: [...]}``, or
        ``{event: record.x, round_to: year_end}`` (``round_to`` also beside earliest/latest)."""
        if isinstance(raw, Clock):
            return raw
        if isinstance(raw, str):
            return cls((_parse_ref(raw),))
        if isinstance(raw, Mapping) and raw:
            rest = dict(raw)
            round_to = _parse_period(rest.pop("round_to")) if "round_to" in rest else None
            if len(rest) == 1:
                ((combine, refs),) = rest.items()
                if combine == "event" and round_to is not None:
                    return cls((_parse_ref(refs),), "one", round_to)
                if combine in ("earliest", "latest") and isinstance(refs, list) and refs:
                    parsed = tuple(_parse_ref(r) for r in refs)
                    if len(set(parsed)) != len(parsed):
                        raise ValueError(f"{combine} lists the same clock twice")
                    return cls(parsed, combine, round_to)
        raise ValueError(
            "after must be record.<timestamp>, subject.<event>, "
            "{earliest: [...]}, {latest: [...]} or {event: ..., round_to: year_end}"
        )


def _parse_ref(raw: object) -> ClockRef:
    match = _CLOCK_PATTERN.match(raw) if isinstance(raw, str) else None
    if not match:
        raise ValueError(f"{raw!r} is not a clock: use record.<timestamp> or subject.<event>")
    source: Literal["record", "subject"] = "record" if match[1] == "record" else "subject"
    return ClockRef(source, match[2])


def _parse_period(raw: object) -> Period:
    for period in PERIODS:
        if raw == period:
            return period
    raise ValueError(f"round_to must be one of {', '.join(PERIODS)}, not {raw!r}")


def _parse_strategies(raw: object) -> dict[str, StrategySpec]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError("anonymize must map personal fields to strategies, e.g. {email: hash}")
    strategies = {}
    for field, spec in raw.items():
        try:
            strategies[str(field)] = StrategySpec.parse(spec)
        except ValueError as exc:
            raise FieldError(str(exc), str(field)) from None
    return strategies


class AppliesTo(Model):
    """Which records a rule covers: every dataset of a category, or one dataset."""

    category: str | None = None
    dataset: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> AppliesTo:
        if (self.category is None) == (self.dataset is None):
            raise ValueError("applies_to needs exactly one of category or dataset")
        return self


class Policy(Model):
    name: str
    document: str | None = None
    url: str | None = None


class Rule(Model):
    """One retention promise."""

    id: str = Field(pattern=RULE_ID_PATTERN)
    summary: str | None = None
    source: str | None = None
    applies_to: AppliesTo
    where: dict[str, WhereValue] = Field(default_factory=dict)
    # the subject type the rule reads (its `subject.*` clocks and filters) on a dataset with
    # several subjects; None: the dataset's first (its only one, on most datasets)
    subject: str | None = Field(default=None, min_length=1)
    after: Annotated[Clock, BeforeValidator(Clock.parse)]
    retain: Duration
    grace: Duration = Duration()
    within: Duration | None = None
    action: Action
    anonymize: Annotated[dict[str, StrategySpec], BeforeValidator(_parse_strategies)] = Field(
        default_factory=dict
    )
    schedule: str | None = None
    approval: Literal["required"] | None = None  # a live run waits for `retention approve`
    # whether the period (retain, grace, within) is quoted from the policy or chosen by whoever
    # wrote the rule: the record of processing (`retention schedule`) says which
    period_source: Literal["quoted", "chosen"] | None = None
    # `action: assert_absent`: data that must never be stored. The columns that must be NULL
    # (none: no record may exist), and what to do with a record that has them: `then` is the
    # action the engine carries out (None: report only, carried as a keep that never blocks)
    columns: list[str] | None = None
    then: Literal["delete", "anonymize"] | None = None
    asserts_absent: bool = False

    @model_validator(mode="before")
    @classmethod
    def _absent_needs_no_clock(cls, data: Any) -> Any:
        """`action: assert_absent` becomes the action it carries out, due at once, always."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if "asserts_absent" in data:
            raise FieldError("unknown field (write `action: assert_absent`)", "asserts_absent")
        if data.get("action") != ABSENT:
            for name in ("columns", "then"):
                if name in data:
                    raise FieldError(f"`{name}` belongs to `action: assert_absent`", name)
            return data
        for name in ("after", "retain", "grace", "within"):
            if name in data:
                raise FieldError(
                    f"assert_absent never waits on a clock: `{name}` has no meaning here", name
                )
        then = data.get("then")
        if then not in (None, "delete", "anonymize"):
            raise FieldError(f"then must be delete or anonymize, not {then!r}", "then")
        columns = data.get("columns")
        if columns is not None and (
            not isinstance(columns, list)
            or not columns
            or not all(isinstance(c, str) and c for c in columns)
        ):
            raise FieldError("columns must be a non-empty list of column names", "columns")
        if then == "anonymize" and columns is None:
            raise FieldError("then: anonymize needs the `columns` that must be absent", "columns")
        data.update(after=Clock.none(), retain="P0D", asserts_absent=True)
        data["action"] = then or "keep"
        return data

    @field_validator("where")
    @classmethod
    def _subject_fields(cls, value: dict[str, WhereValue]) -> dict[str, WhereValue]:
        for name in value:
            if name.startswith(SUBJECT_FIELD) and not _SUBJECT_WHERE.match(name):
                raise FieldError(
                    f"{name!r}: a subject filter names one column of the subject's table, "
                    "e.g. subject.country",
                    name,
                )
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @model_validator(mode="after")
    def _strategies_match_action(self) -> Rule:
        if self.action == "anonymize" and not self.anonymize:
            raise FieldError(
                "an anonymize rule needs `anonymize: {field: strategy, ...}`", "anonymize"
            )
        if self.action != "anonymize" and self.anonymize:
            raise FieldError(f"`anonymize` strategies given on a {self.action} rule", "anonymize")
        if self.subject is not None and not self.reads_subject:
            raise FieldError(
                "`subject` names the subject a rule's subject.* clock or filter reads; this "
                "rule reads none",
                "subject",
            )
        try:
            self.retain + self.grace + (self.within or Duration())
        except ValueError as exc:
            raise FieldError(f"retain + grace + within: {exc}", "retain") from None
        return self

    @cached_property
    def delay(self) -> Duration:
        """Time from the clock start to the due moment: retain + grace (computed once: the
        engine asks for it per record)."""
        return self.retain + self.grace

    @property
    def destructive(self) -> bool:
        return self.action != "keep"

    @property
    def record_where(self) -> dict[str, WhereValue]:
        """The `where` filters on the record's own columns."""
        return {k: v for k, v in self.where.items() if not k.startswith(SUBJECT_FIELD)}

    @property
    def subject_where(self) -> dict[str, WhereValue]:
        """The `where` filters on the subject's table, by column (``country``)."""
        return {
            k.removeprefix(SUBJECT_FIELD): v
            for k, v in self.where.items()
            if k.startswith(SUBJECT_FIELD)
        }

    @property
    def reads_subject(self) -> bool:
        """Whether the rule reads its subject's row: a subject clock or a subject filter."""
        return bool(self.subject_where) or any(r.source == "subject" for r in self.after.refs)


class RulePack(Model):
    policy: Policy
    rules: list[Rule]


def apply_override(rule: Rule, changes: Mapping[str, Any]) -> Rule:
    """`rule` with a deployer's overrides applied and validated like the original."""
    data = rule.model_dump(mode="python", exclude_none=True)
    data["after"] = rule.after
    data["anonymize"] = rule.anonymize
    data.pop("asserts_absent")
    if rule.asserts_absent:
        for name in ("after", "retain", "grace"):
            data.pop(name, None)
        data["action"] = ABSENT
    data.update({key: value for key, value in changes.items() if value is not None})
    return Rule.model_validate(data)
