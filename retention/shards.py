"""Shards: the units of work that replicas of `retention serve` divide among themselves.

With ``service.lease_scope: dataset`` every shard has a lease of its own. A shard is a dataset
together with its cascade children (and theirs): a parent's batch removes its children's rows
in the same store transaction, so a parent and its children must be led by one replica, fenced
by one lease. Datasets linked by cascades in any direction form one shard, named after its
first dataset in name order, so every replica reading the same configuration names the same
shards. One shard per cascade unit (not a hash of names modulo a count) lets three replicas
over six datasets lead two each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from .config import Config

LEASE_PREFIX = "shard:"
_NAME_ROOM = 100 - len(LEASE_PREFIX)  # retention_leases.name is 100 characters


def shards(config: Config) -> dict[str, tuple[str, ...]]:
    """Each shard's name and its datasets (sorted), for every configured dataset."""
    links: dict[str, set[str]] = {name: set() for name in config.settings.datasets}
    for name, dataset in config.settings.datasets.items():
        for child in dataset.cascade:
            if child.dataset in links:
                links[name].add(child.dataset)
                links[child.dataset].add(name)
    found: dict[str, tuple[str, ...]] = {}
    seen: set[str] = set()
    for name in sorted(links):
        if name in seen:
            continue
        unit, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current not in unit:
                unit.add(current)
                todo.extend(links[current] - unit)
        seen |= unit
        found[shard_name(min(unit))] = tuple(sorted(unit))
    return found


def shard_of(units: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """Each dataset's shard."""
    return {dataset: shard for shard, members in units.items() for dataset in members}


def shard_name(dataset: str) -> str:
    """The shard named after `dataset`: the name itself, or a digest when it is too long."""
    if len(dataset) <= _NAME_ROOM:
        return dataset
    return "sha256-" + hashlib.sha256(dataset.encode()).hexdigest()[:40]


def lease_name(shard: str) -> str:
    """The row of `shard` in retention_leases."""
    return LEASE_PREFIX + shard


__all__ = ["LEASE_PREFIX", "lease_name", "shard_name", "shard_of", "shards"]
