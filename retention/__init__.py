"""retention: enforce data-retention promises on SQL databases, S3 buckets and file trees.

The library is usable without the CLI::

    from retention import load_config, make_plan
    config = load_config(Path("retention.yaml"))
    plan = make_plan(config, now=datetime.now(UTC))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# The public names are imported on first use (PEP 562), so that `retention --help` and
# `import retention.errors` do not load SQLAlchemy, pydantic and the engine.
_PUBLIC = {
    "Config": "config",
    "load_config": "config",
    "Duration": "durations",
    "explain": "explain",
    "Plan": "planner",
    "RulePlan": "planner",
    "make_plan": "planner",
    **dict.fromkeys(
        (
            "AuditError",
            "AuditKeyError",
            "CircuitBreakerTripped",
            "ConfigError",
            "ForeignKeyRefused",
            "RetentionError",
            "SafetyError",
            "SchemaError",
            "StateVersionError",
            "StoreError",
            "StoreMisconfigured",
        ),
        "errors",
    ),
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'retention' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)


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
