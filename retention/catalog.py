"""The rule packs shipped inside the package: one per seed policy, read with importlib.resources.

The packs are the files of ``rules/`` in the repository, installed as the package
``retention.packs`` (see pyproject.toml), so they are there after a plain ``pip install`` with
no checkout. A config adopts one by name, ``rules: ["pack:com7"]``, and `retention demo` copies
them next to the configs it writes.
"""

from __future__ import annotations

import contextlib
import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

from .errors import ConfigError

PACKAGE = "retention.packs"
PREFIX = "pack:"

_keep_open = contextlib.ExitStack()


def _files() -> Traversable:
    return importlib.resources.files(PACKAGE)


def shipped_packs() -> list[str]:
    """The names of the shipped packs (``24sevenoffice``, ``com7``, …), sorted."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in _files().iterdir()
        if entry.name.endswith(".yaml") and entry.is_file()
    )


def _entry(name: str) -> Traversable:
    if name not in shipped_packs():
        raise ConfigError(
            f"no shipped rule pack {name!r} (shipped: {', '.join(shipped_packs())})",
            field="rules",
        )
    return _files() / f"{name}.yaml"


def pack_text(name: str) -> str:
    """The YAML text of shipped pack `name`; ConfigError naming the shipped packs if unknown."""
    return _entry(name).read_text(encoding="utf-8")


def pack_path(name: str) -> Path:
    """A file path for shipped pack `name` (extracted once if the package is zipped)."""
    entry = _entry(name)
    if isinstance(entry, Path):
        return entry
    return _keep_open.enter_context(importlib.resources.as_file(entry))


def pack_reference(location: str) -> str | None:
    """The pack name of a ``pack:<name>`` entry of `rules:`, or None for a file path."""
    return location[len(PREFIX) :] if location.startswith(PREFIX) else None


__all__ = ["PREFIX", "pack_path", "pack_reference", "pack_text", "shipped_packs"]
