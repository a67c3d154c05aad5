"""The error tree of `retention`.

Every error a user can cause or meet derives from :class:`RetentionError` and carries what is
needed to fix it, so the CLI can print one clear line and choose an exit code::

    RetentionError
    ├── ConfigError            bad settings, rules or holds (file, line, field)   exit 2
    ├── StoreError             a store is unreachable or its schema does not fit   exit 3
    │   ├── StoreFailed        a statement failed in the store                     exit 3
    │   │   └── BatchInFlight  an interrupted batch may still be committing elsewhere
    │   ├── StateDBError       the state DB cannot be read or written              exit 3
    │   ├── StoreMisconfigured the store as configured cannot exist here           exit 2
    │   │   └── SchemaError    a table or column named in config does not exist    exit 2
    │   └── StateVersionError  the state DB's schema is newer than this release   exit 2
    ├── SafetyError            an action was refused to protect data               exit 4
    │   ├── CircuitBreakerTripped   a rule would act on too much at once
    │   ├── ForeignKeyRefused       a delete would orphan rows of another table
    │   └── ApprovalRequired        a rule needs an approval it does not have
    ├── AuditError             the audit log does not verify                       exit 1
    ├── AuditKeyError          a seal or checkpoint is from a key not held here    exit 6
    ├── RecordNotFound         `explain` found no record with that key              exit 1
    └── LeaseError             the executor lease is another process's             exit 5
        ├── LeaseUnavailable   another process holds it: this one must not act
        └── LeaseLost          it was taken over mid-run: stop acting at once

Run and rule statuses are in :mod:`retention.outcomes`; :func:`exit_code_for` maps a rule's
status to the exit code of the error behind it, so exit codes live here only.
"""

from __future__ import annotations


class RetentionError(Exception):
    """Root of every error `retention` raises on purpose."""

    exit_code = 1


class ConfigError(RetentionError):
    """Invalid configuration, rule pack or holds file; nothing has been executed."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f": {self.field}"
        return f"{where}: {self.message}"


class ConfigErrors(ConfigError):
    """Several configuration errors found in one pass, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, file=first.file, line=first.line, field=first.field)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class StoreError(RetentionError):
    """A store could not be reached or used; its rules are skipped, others proceed."""

    exit_code = 3

    def __init__(self, message: str, *, store: str | None = None) -> None:
        self.store = store
        super().__init__(f"store {store!r}: {message}" if store else message)


class StoreFailed(StoreError):
    """A statement failed in a store that could be reached (a constraint, a lock timeout): that
    rule stops, the others go on."""


class BatchInFlight(StoreFailed):
    """Recovery found an interrupted batch whose rows another process (a paused replica) still
    holds locked: it may yet commit, so its intent stays pending and its datasets are left
    alone until a later run settles it."""

    def __init__(self, message: str, *, store: str | None = None, dataset: str) -> None:
        self.dataset = dataset
        super().__init__(message, store=store)


class StateDBError(StoreError):
    """The state DB could not be read or written (read-only, locked, gone). Nothing can be
    audited, so the run stops; the next run settles what this one left."""

    def __init__(self, message: str) -> None:
        super().__init__(message, store="state_db")


class StoreMisconfigured(StoreError):
    """The store cannot exist as configured: an unknown dialect or driver, a driver package that
    is not installed, a SQLite file that is not there. Bad input, not an outage."""

    exit_code = 2


class SchemaError(StoreMisconfigured):
    """A table or column named in config is missing from the live schema."""


class SafetyError(RetentionError):
    """An action was refused because carrying it out could destroy data that must be kept."""

    exit_code = 4

    def __init__(self, message: str, *, rule: str | None = None, dataset: str | None = None):
        self.rule = rule
        self.dataset = dataset
        super().__init__(message)


class CircuitBreakerTripped(SafetyError):
    """A rule would act on more than `limits` allow in one run."""


class ForeignKeyRefused(SafetyError):
    """A delete was refused by a foreign key that no `cascade` declares."""


class ApprovalRequired(SafetyError):
    """A rule marked ``approval: required`` has no valid approval for what it would do now."""


class AuditError(RetentionError):
    """The audit log failed verification: an entry was edited, removed, added or moved."""

    exit_code = 1


class AuditKeyError(RetentionError):
    """A seal or checkpoint was made with a key this process does not hold (another or a
    rotated key): not evidence of tampering, but nothing it covers could be checked.

    `signed_with` is the key id the seal or checkpoint names, `held` the ids of the keys given.
    """

    exit_code = 6

    def __init__(self, message: str, *, signed_with: str | None, held: tuple[str, ...]) -> None:
        self.signed_with = signed_with
        self.held = held
        super().__init__(message)


class StateVersionError(StoreError):
    """The state DB's schema is at a revision this release does not know: a newer release
    upgraded it. Running against it could corrupt it, so nothing is done."""

    exit_code = 2

    def __init__(self, message: str, *, revision: str, known: str) -> None:
        self.revision = revision
        self.known = known
        super().__init__(message, store="state_db")


class RecordNotFound(RetentionError):
    """`explain` was given a key that no record of the dataset has."""

    exit_code = 1


class LeaseError(RetentionError):
    """The executor lease of the state DB belongs to another process."""

    exit_code = 5


class LeaseUnavailable(LeaseError):
    """Another process holds the lease; this one must not act."""


class LeaseLost(LeaseError):
    """The lease was taken over while this process worked: it must stop acting at once."""


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (a driver's own, under `orig`; never a URL)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# The exit code of a rule that ended with each status (anything else: 0).
_STATUS_EXITS: dict[str, type[RetentionError]] = {
    "refused": SafetyError,
    "invalid": StoreMisconfigured,
    "unreachable": StoreError,
    "failed": StoreError,
}


def exit_code_for(statuses: set[str]) -> int:
    """A run's exit code from its rules' statuses: the most serious error behind them."""
    for status in ("refused", "invalid", "unreachable", "failed"):
        if status in statuses:
            return _STATUS_EXITS[status].exit_code
    return 0
