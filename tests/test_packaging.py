"""Packaging: the rule packs travel inside the package; no subpackage is left out of the wheel."""

from __future__ import annotations

import datetime as dt
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml

from retention.catalog import pack_path, pack_text, shipped_packs
from retention.config import load_config
from retention.demo import build_company
from retention.errors import ConfigError, ConfigErrors

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


def test_config_adopts_a_shipped_pack_by_name(tmp_path: Path) -> None:
    """`rules: ["pack:com7"]` loads the shipped pack, with no copy of it next to the config."""
    company = build_company(tmp_path / "com7", "com7", dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    shutil.rmtree(company.directory / "rules")
    data = yaml.safe_load(company.config.read_text())
    data["rules"] = ["pack:com7"]
    company.config.write_text(yaml.safe_dump(data))
    config = load_config(company.config)
    assert len(config.rules) == len(yaml.safe_load(pack_text("com7"))["rules"])
    assert config.origins["com7.backups.rotation"].file == str(pack_path("com7"))


def test_config_naming_an_unknown_pack_lists_the_shipped_ones(tmp_path: Path) -> None:
    """An unknown `pack:` name is an error at its line in the config, naming the shipped packs."""
    path = tmp_path / "config.yaml"
    path.write_text("dry_run: true\nrules:\n  - pack:acme\n")
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    (error,) = caught.value.errors
    assert (error.file, error.line, error.field) == (str(path), 3, "rules[0]")
    assert "no shipped rule pack 'acme' (shipped: 247, 24sessions" in error.message


def test_every_module_is_held_to_the_import_contracts() -> None:
    """The contract "nothing imports cli or service" names its sources one by one: a new
    top-level module must join it, or nothing would stop it importing the CLI."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (guard,) = [c for c in contracts["contracts"] if c["name"] == "Nothing imports cli or service"]
    modules = {
        f"retention.{path.stem}" if path.suffix else f"retention.{path.name}"
        for path in (ROOT / "retention").iterdir()
        if (path.suffix == ".py" and path.stem not in ("__init__", "__main__"))
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    expected = modules - {"retention.cli", "retention.service"}
    assert set(guard["source_modules"]) == expected


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """`.ci/run` runs exactly the test commands README.md gives a newcomer (its second block:
    the everyday suite, then the tests marked slow), and together they deselect nothing."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = readme.split("```sh\n")[1:3]
    commands = [line for block in blocks for line in block.split("```")[0].splitlines()]
    test_commands = [c for c in commands if "pytest" in c and not c.startswith("#")]
    assert [c.rsplit(" -m ", 1)[-1] for c in test_commands] == ['"not slow"', "slow"]
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert all(command in ci_lines for command in test_commands)
