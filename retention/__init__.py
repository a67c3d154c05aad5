"""retention: enforce data-retention promises on SQL databases, S3 buckets and file trees.

The library is usable without the CLI::

    from retention import load_config, make_plan
    config = load_config(Path("retention.yaml"))
    plan = make_plan(config, now=datetime.now(UTC))
"""

from __future__ import annotations

from .config import Config, load_config
from .durations import Duration
from .errors import (
    AuditError,
    AuditKeyError,
    CircuitBreakerTripped,
    ConfigError,
    ForeignKeyRefused,
    RetentionError,
    SafetyError,
    SchemaError,
    StateVersionError,
    StoreError,
    StoreMisconfigured,
)
from .explain import explain
from .planner import Plan, RulePlan, make_plan

__version__ = "0.1.0"

__all__ = [
    "AuditError",
    "AuditKeyError",
    "CircuitBreakerTripped",
    "Config",
    "ConfigError",
    "Duration",
    "ForeignKeyRefused",
    "Plan",
    "RetentionError",
    "RulePlan",
    "SafetyError",
    "SchemaError",
    "StateVersionError",
    "StoreError",
    "StoreMisconfigured",
    "explain",
    "load_config",
    "make_plan",
]
