"""The command line: argument parsing and printing only; the work is done by the library.

Exit codes scripts can trust (their classes are in :mod:`retention.errors`): 0 ok, 1 audit
verification failed (tampering) or record not found, 2 bad input (config, rules, holds, schema,
a state DB newer than this release), 3 a store or the state DB unreachable (others still
processed), 4 refused for safety (circuit breaker, foreign key), 5 another process holds the
lease, 6 an audit seal or checkpoint made with a key not held here (rotated or wrong), 7 (`holds`
only) an active hold is past its review date, 130 `run` stopped by Ctrl-C or SIGTERM.
"""

from __future__ import annotations

from . import auditing, demo, onboarding, planning, running, subjects
from .common import app, main

__all__ = ["app", "auditing", "demo", "main", "onboarding", "planning", "running", "subjects"]
