"""Circuit breakers: a rule that would act on too much at once stops before it acts.

``limits.max_fraction``: a rule may not delete or anonymize more than this share of a dataset in
one run; ``limits.max_actions_per_run``: a run may not act on more records than this in all.
Checked before a rule's first batch, from a fresh count; ``--force`` overrides both.
"""

from __future__ import annotations

from .errors import CircuitBreakerTripped
from .settings import Limits
from .stores.base import Tally, Target


def check_breakers(target: Target, tally: Tally, limits: Limits, actions_so_far: int) -> None:
    """Raise CircuitBreakerTripped, saying which limit and how to proceed, if `target` would
    act on more than `limits` allow."""
    planned, total, rule = tally.actionable, tally.size, target.rule
    dataset = target.dataset.name
    if total and planned / total > limits.max_fraction:
        raise CircuitBreakerTripped(
            f"rule {rule.id} would {rule.action} {planned} of {total} records of {dataset} "
            f"({planned / total:.0%}), more than limits.max_fraction ({limits.max_fraction:.0%}); "
            "check the rule, then re-run with --force if it is right",
            rule=rule.id,
            dataset=dataset,
        )
    if actions_so_far + planned > limits.max_actions_per_run:
        raise CircuitBreakerTripped(
            f"rule {rule.id} would bring this run to {actions_so_far + planned} actions, more "
            f"than limits.max_actions_per_run ({limits.max_actions_per_run}); re-run with "
            "--force if it is right",
            rule=rule.id,
            dataset=dataset,
        )


__all__ = ["check_breakers"]
