"""Packaging: the rule packs travel inside the package; no subpackage is left out of the wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from retention.catalog import pack_path, pack_text, shipped_packs
from retention.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject() -> None:
    """pyproject.toml lists packages explicitly (to map rules/); a new subpackage must be added."""
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "retention").rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert "retention.packs" in listed


def test_shipped_packs_are_the_files_of_rules() -> None:
    """Every rules/*.yaml is a shipped pack, read through importlib.resources."""
    assert shipped_packs() == sorted(p.stem for p in (ROOT / "rules").glob("*.yaml"))
    for name in shipped_packs():
        assert pack_text(name) == (ROOT / "rules" / f"{name}.yaml").read_text(encoding="utf-8")
        assert pack_path(name).read_text(encoding="utf-8") == pack_text(name)


def test_unknown_pack_names_the_shipped_ones() -> None:
    """Asking for a pack that is not shipped is a config error listing the ones that are."""
    with pytest.raises(ConfigError, match=r"no shipped rule pack 'acme'.*24sevenoffice.*com7"):
        pack_text("acme")
