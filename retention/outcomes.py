"""What a run did: per rule and dataset (:class:`RuleOutcome`), and as a whole (:class:`RunResult`).

Statuses are enums (their values are what the state DB, ``--json`` and the logs show); exit codes
come from :func:`retention.errors.exit_code_for`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import exit_code_for


class RunStatus(StrEnum):
    """A run's row in the state DB."""

    RUNNING = "running"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"  # stopped (SIGTERM) or killed; the next run finishes the work
    FAILED = "failed"  # an error stopped it (the state DB, an unusable holds file)
    REFUSED = "refused"  # complete, but a rule was refused (a circuit breaker, a foreign key)


class RuleStatus(StrEnum):
    """How one rule on one dataset ended in a run."""

    OK = "ok"
    REFUSED = "refused"  # a circuit breaker or a foreign key: nothing of it was done
    FAILED = "failed"  # a statement failed, or some records could not be acted on
    UNREACHABLE = "unreachable"  # its store could not be reached (others went on)
    INVALID = "invalid"  # config names what its store does not have
    STOPPED = "stopped"  # asked to stop before it was done


@dataclass
class RuleOutcome:
    """What one rule did (or would do) on one dataset in this run."""

    rule: str
    dataset: str
    action: str
    planned: int = 0
    acted: int = 0
    batches: int = 0
    cascaded: dict[str, int] = field(default_factory=dict)
    status: RuleStatus = RuleStatus.OK
    message: str | None = None
    lingering: int = 0
    # covered, never acted on: a clock the rule needs holds a value that is no timestamp
    unreadable: int = 0
    # assert_absent: the records found holding what must never be stored, and some keys
    violations: int = 0
    samples: tuple[str, ...] = ()

    def note(self, text: str) -> None:
        """Add `text` to the outcome's message."""
        self.message = f"{self.message}; {text}" if self.message else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "dataset": self.dataset,
            "action": self.action,
            "planned": self.planned,
            "acted": self.acted,
            "batches": self.batches,
            "cascaded": dict(self.cascaded),
            "status": str(self.status),
            "message": self.message,
            "lingering": self.lingering,
            "unreadable": self.unreadable,
            **(
                {"violations": self.violations, "sample_keys": list(self.samples)}
                if self.violations
                else {}
            ),
        }


@dataclass(frozen=True)
class RunResult:
    """One run: its id, mode, status, what each rule did, and what recovery settled first."""

    run_id: str
    live: bool
    status: RunStatus
    outcomes: tuple[RuleOutcome, ...]
    recovered: int = 0
    as_of: dt.datetime | None = None  # the moment the rules were evaluated at (--now)

    @property
    def exit_code(self) -> int:
        return exit_code_for({str(o.status) for o in self.outcomes})

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": "live" if self.live else "dry-run",
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "status": str(self.status),
            "recovered_entries": self.recovered,
            "rules": [o.as_dict() for o in self.outcomes],
            "totals": {
                "acted": sum(o.acted for o in self.outcomes),
                "cascaded": sum(sum(o.cascaded.values()) for o in self.outcomes),
                "lingering": sum(o.lingering for o in self.outcomes),
                "unreadable": sum(o.unreadable for o in self.outcomes),
            },
        }


__all__ = ["RuleOutcome", "RuleStatus", "RunResult", "RunStatus"]
