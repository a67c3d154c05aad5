"""The packs, rules/README.md and these tests agree: every rule is documented, every documented
rule exists, every promise mapped to a rule has its test, and every pack validates on its demo."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from retention.catalog import pack_text, shipped_packs
from retention.cli import app
from retention.demo import build_company

from .conftest import NOW

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "rules" / "README.md"
_HEADING = re.compile(r"^### .*\(`(?P<pack>[0-9a-z]+)\.yaml`")
_PACKS = "|".join(shipped_packs())
_RULE_ID = re.compile(rf"`((?:{_PACKS})\.[a-z0-9-]+\.[a-z0-9*-]+)`")


def _pack_rule_ids() -> dict[str, set[str]]:
    return {
        pack: {rule["id"] for rule in yaml.safe_load(pack_text(pack))["rules"]}
        for pack in shipped_packs()
    }


def _promise_tables() -> dict[str, list[tuple[str, str]]]:
    """(promise, rule cell) of every row of each pack's table in README section 2."""
    tables: dict[str, list[tuple[str, str]]] = {}
    pack = None
    for line in README.read_text(encoding="utf-8").splitlines():
        heading = _HEADING.match(line)
        if heading:
            pack = heading["pack"]
            tables[pack] = []
        elif line.startswith("## "):
            pack = None
        elif pack and line.startswith("| ") and not line.startswith("| promise"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            if not set(cells[0]) <= set("- "):
                tables[pack].append((cells[0], cells[2]))
    return tables


def _matches(reference: str, ids: set[str]) -> bool:
    if reference.endswith("*"):
        return any(rule_id.startswith(reference[:-1]) for rule_id in ids)
    return reference in ids


def test_every_pack_has_a_promise_table() -> None:
    """rules/README.md has a promise table for each shipped pack."""
    assert sorted(_promise_tables()) == shipped_packs()


def test_every_rule_id_in_the_packs_is_in_the_readme() -> None:
    """Every rule a pack ships is named in rules/README.md."""
    mentioned = set(_RULE_ID.findall(README.read_text(encoding="utf-8")))
    for pack, ids in _pack_rule_ids().items():
        assert ids <= mentioned, f"{pack}: not in rules/README.md: {sorted(ids - mentioned)}"


def test_every_rule_id_in_the_readme_exists() -> None:
    """Every rule id rules/README.md names exists in a pack (`x.*` names a family)."""
    ids = set().union(*_pack_rule_ids().values())
    for reference in _RULE_ID.findall(README.read_text(encoding="utf-8")):
        assert _matches(reference, ids), f"rules/README.md names unknown rule {reference}"


def test_every_promise_table_row_names_rules_of_its_own_pack() -> None:
    """A promise of one policy is enforced by that policy's pack, not another's."""
    for pack, rows in _promise_tables().items():
        for promise, cell in rows:
            for reference in _RULE_ID.findall(cell):
                assert reference.startswith(f"{pack}."), (pack, promise, reference)


def _docstrings(pack: str) -> list[str]:
    module = ast.parse((Path(__file__).parent / f"test_{pack}.py").read_text(encoding="utf-8"))
    return [
        " ".join((ast.get_docstring(node) or "").split())
        for node in module.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


@pytest.mark.parametrize("pack", shipped_packs())
def test_every_promise_mapped_to_a_rule_has_a_test(pack: str) -> None:
    """Each README row whose promise maps to a rule has a test in tests/packs/test_<pack>.py
    whose docstring quotes that promise."""
    docstrings = _docstrings(pack)
    missing = [
        promise
        for promise, cell in _promise_tables()[pack]
        if _RULE_ID.search(cell)
        and not any(doc.startswith(" ".join(promise.split())) for doc in docstrings)
    ]
    assert not missing, f"no test quotes these {pack} promises: {missing}"


@pytest.mark.parametrize("pack", shipped_packs())
def test_validate_passes_for_the_pack_on_its_demo(pack: str, tmp_path: Path) -> None:
    """`retention validate` accepts every shipped pack against its demo's live schema."""
    company = build_company(tmp_path / pack, pack, NOW)
    result = CliRunner().invoke(app, ["validate", "--config", str(company.config)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok:")
    assert "warning" not in result.output, result.output


@pytest.mark.parametrize("pack", shipped_packs())
def test_every_delete_a_keep_rule_can_block_has_a_deadline(pack: str) -> None:
    """Every delete rule of a pack that covers what one of its keep rules covers has a
    `within`: once the statutory minimum ends, a failure to delete shows as overdue."""
    rules = yaml.safe_load(pack_text(pack))["rules"]
    kept = [r["applies_to"] for r in rules if r["action"] == "keep"]
    missing = [
        r["id"]
        for r in rules
        if r["action"] == "delete" and r["applies_to"] in kept and "within" not in r
    ]
    assert not missing, f"{pack}: delete rules a keep rule can block have no within: {missing}"


_ROLES = ("Legal", "Operator", "DPO", "The DPO", "Support", "Engineering", "The customer",
          "The Client", "The User", "The user", "Nobody")  # fmt: skip


def _period_cells() -> dict[str, list[tuple[str, str, str]]]:
    """(promise, rule cell, last cell) of every row of each pack's table in README section 2."""
    tables: dict[str, list[tuple[str, str, str]]] = {}
    pack = None
    for line in README.read_text(encoding="utf-8").splitlines():
        heading = _HEADING.match(line)
        if heading:
            pack = heading["pack"]
            tables[pack] = []
        elif line.startswith("## "):
            pack = None
        elif pack and line.startswith("| ") and not line.startswith("| promise"):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            if not set(cells[0]) <= set("- "):
                tables[pack].append((cells[0], cells[2], cells[-1]))
    return tables


def test_every_rule_says_whether_its_period_is_quoted_or_chosen() -> None:
    """Every shipped rule carries `period_source`: quoted from the policy or chosen by us."""
    for pack in shipped_packs():
        for rule in yaml.safe_load(pack_text(pack))["rules"]:
            assert rule.get("period_source") in ("quoted", "chosen"), (pack, rule["id"])


@pytest.mark.parametrize("pack", shipped_packs())
def test_the_readme_says_per_promise_whether_its_period_is_quoted_or_who_acts(pack: str) -> None:
    """The promise tables' last column agrees with the packs: a promise kept by rules starts
    with their `period_source` ("quoted", "chosen", or "chosen and quoted"); a promise no rule
    keeps names who must act instead (legal, the operator, the DPO, the customer, ...)."""
    rules = {rule["id"]: rule for rule in yaml.safe_load(pack_text(pack))["rules"]}
    for promise, cell, last in _period_cells()[pack]:
        ids = {i for i in _RULE_ID.findall(cell) if not i.endswith("*")}
        ids |= {
            rule_id
            for family in _RULE_ID.findall(cell)
            if family.endswith("*")
            for rule_id in rules
            if rule_id.startswith(family[:-1])
        }
        if ids:
            label = " and ".join(sorted({rules[i]["period_source"] for i in ids}))
            assert last == label or last.startswith((f"{label} ", f"{label};")), (promise, last)
        else:
            assert last.startswith(_ROLES), (promise, last)


def test_the_pack_tests_quote_the_policies_verbatim() -> None:
    """The policies the pack tests quote from are the seed documents the packs name, copied
    whole into tests/packs/policies/ (so a quote that drifts from the text fails)."""
    documents = {yaml.safe_load(pack_text(p))["policy"]["document"] for p in shipped_packs()}
    assert documents == {path.name for path in (Path(__file__).parent / "policies").iterdir()}
