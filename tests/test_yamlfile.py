"""Tests for retention.yamlfile: values read as written, hostile YAML refused with one clear error.

The fuzz tests feed any text (and any bytes) to the three loaders users give files to — the
config, a rule pack, the holds file — and require that each either loads or raises
``ConfigError``, within a time bound: never another exception.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retention.config import load_config
from retention.errors import ConfigError
from retention.yamlfile import ALIAS_EXPANSION_LIMIT, load_yaml, parse_yaml


def data(text: str) -> object:
    return parse_yaml(text, "f.yaml")[0]


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "f.yaml")
    return info.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0106", 106),  # YAML 1.1 would say octal 70
        ("1:05", "1:05"),  # YAML 1.1 would say sexagesimal 65
        ("yes", "yes"),
        ("on", "on"),
        ("true", True),
        ("False", False),
        ("0x1F", 31),
        ("0o17", 15),
        ("-12", -12),
        ("1e3", 1000.0),
        ("~", None),
        ("'0106'", "0106"),
        ("2027-05-01", dt.date(2027, 5, 1)),
    ],
)
def test_plain_scalars_follow_the_yaml_1_2_core_schema(text: str, expected: object) -> None:
    """No YAML 1.1 surprises: leading zeros are decimal, colons and yes/on are text."""
    assert data(f"a: {text}\n") == {"a": expected}


def test_every_scalar_keeps_the_text_written() -> None:
    """The LineMap keeps each scalar's text, so ids are read exactly as on the page."""
    _, lines = parse_yaml("ids: [0106, 1:05, true, ' 7']\n", "f.yaml")
    assert [lines.text_of(("ids", i)) for i in range(4)] == ["0106", "1:05", "true", " 7"]


def test_aliases_within_the_budget_load() -> None:
    """An anchor reused a few times is fine."""
    assert data("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


def test_an_alias_bomb_is_refused_quickly() -> None:
    """'Billion laughs' stops at ALIAS_EXPANSION_LIMIT values, with the line, in well under a
    second."""
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        levels.append(f"a{level}: &a{level} [{refs}]")
    started = time.monotonic()
    problem = error("\n".join(levels) + "\n")
    assert time.monotonic() - started < 1
    assert f"more than {ALIAS_EXPANSION_LIMIT} values" in problem.message
    assert problem.line is not None


def test_a_recursive_alias_is_refused() -> None:
    """An anchor that contains itself is an error naming its line, not a RecursionError."""
    problem = error("x: 1\nloop: &me [*me]\n")
    assert "recursive alias" in problem.message and problem.line == 2


def test_merge_keys_are_refused() -> None:
    """`<<:` would hide settings behind an anchor; it is refused, with its line."""
    problem = error("base: &b {x: 1}\nchild:\n  <<: *b\n  y: 2\n")
    assert "merge keys" in problem.message and problem.line == 3


def test_a_quoted_double_less_than_is_an_ordinary_key() -> None:
    """Only the plain `<<` is a merge key."""
    assert data('"<<": 1\n') == {"<<": 1}


@pytest.mark.parametrize(
    "text", ["a: !!python/object/apply:os.system [echo]\n", "a: !!binary aGk=\n", "a: !custom x\n"]
)
def test_tags_beyond_the_core_ones_are_refused(text: str) -> None:
    """Only plain values, mappings and lists: no object construction, no binary blobs."""
    assert "unsupported tag" in error(text).message


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    """A document nested thousands deep says so."""
    assert "nested too deeply" in error("a: " + "[" * 5000).message


def test_a_forbidden_character_names_its_line() -> None:
    """A NUL byte (or another character YAML forbids) is reported with its line."""
    problem = error("a: 1\nb: x\x00y\n")
    assert problem.line == 2 and "#x0000" in problem.message


def test_bytes_that_are_not_utf8_name_the_file_and_line(tmp_path: Path) -> None:
    """A Latin-1 file is refused with the line and column of the first bad byte."""
    path = tmp_path / "holds.yaml"
    path.write_bytes("holds:\n  - id: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert (info.value.file, info.value.line) == (str(path), 2)
    assert "not UTF-8" in info.value.message and "0xe9" in info.value.message


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    """Naming a directory where a file belongs is a ConfigError, not an IsADirectoryError."""
    with pytest.raises(ConfigError, match="directory"):
        load_yaml(tmp_path)


# --- fuzz: any input loads or is a ConfigError ----------------------------------------------

VALID_CONFIG = """\
state_db: sqlite:///state.db
rules: [rules/]
holds: holds.yaml
stores:
  app: {kind: sql, url: "sqlite:///app.db"}
subjects:
  account: {store: app, table: accounts, key: id, events: {closed: closed_at}}
datasets:
  tickets:
    store: app
    table: tickets
    key: id
    category: support_data
    subject: {type: account, column: account_id}
    timestamps: {created: created_at}
audit: {keys: plain}
fiscal_year_start: 07-01
"""
VALID_PACK = """\
policy: {name: Fuzz}
rules:
  - {id: r, applies_to: {dataset: tickets}, after: record.created, retain: P30D, action: delete}
  - id: fy
    applies_to: {dataset: tickets}
    after: {event: record.created, round_to: fiscal_year_end}
    retain: P5Y
    action: keep
"""
VALID_HOLDS = """\
holds:
  - id: case
    subjects: {account: [0106]}
    expires_on: 2027-05-01
    blocks: [delete]
  - {id: rewrite, blocks: [anonymize, delete], expires_on: 2030-01-31}
"""

# Text that looks like YAML often enough to reach the checks behind the parser: fragments of the
# valid files, YAML punctuation, and arbitrary characters.
_FRAGMENTS = [
    *VALID_CONFIG.splitlines(),
    *VALID_PACK.splitlines(),
    *VALID_HOLDS.splitlines(),
    "- ",
    ": ",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "[",
    "]",
    "{",
    "}",
    "? ",
    "---",
    "...",
    "%YAML 1.1",
    "\t",
    '"',
    "'",
    "|",
    ">",
    "#",
    "0106",
    "1:05",
    "P9999Y",
    "2027-13-01",
    "    expires_on: 2027-02-30",
    "    expires_on: 2027-05-01T12:00:00",
    "    blocks: []",
    "    blocks: [keep]",
    "    blocks: delete",
    "    after: {event: subject.closed, round_to: month_end}",
    "    after: {latest: [record.created], round_to: year_end}",
    "    after: {event: record.created, round_to: week_end}",
    "    after: {round_to: year_end}",
    "fiscal_year_start: 02-29",
    "  - {id: cvv, applies_to: {dataset: tickets}, action: assert_absent, columns: [cvv]}",
    "    action: assert_absent",
    "    then: delete",
    "    then: anonymize",
    "    columns: []",
    "    columns: [email]",
    "fiscal_year_start: 7",
    "    subject: [{type: account, column: account_id}, {type: account, column: id}]",
    "    subject: [{type: account, column: account_id}]",
    "    subject: []",
    "    subject: [{type: user, column: user_id}]",
    "    subject: account",
    "    subject: user",
    "    where: {subject.country: [NO, null]}",
    "    where: {subject.: x, subject.a.b: y}",
    "    where: {subject.country: {nested: 1}}",
    "  - {id: s, applies_to: {dataset: tickets}, subject: account, after: subject.closed, "
    "retain: P1Y, action: delete}",
    "null",
    "true",
    "\x00",
    "\ufeff",
]
yamlish = st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=20)), max_size=30).map(
    lambda parts: "\n".join(parts)
)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _loads_or_config_error(root: Path, name: str, content: bytes) -> None:
    files = {"config.yaml": VALID_CONFIG, "rules/pack.yaml": VALID_PACK, "holds.yaml": VALID_HOLDS}
    for file, text in files.items():
        path = root / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / name).write_bytes(content)
    started = time.monotonic()
    try:
        config = load_config(root / "config.yaml")
        config.load_holds()
    except ConfigError:
        pass
    assert time.monotonic() - started < 2, "a loader took more than two seconds"


@pytest.mark.parametrize("name", ["config.yaml", "rules/pack.yaml", "holds.yaml"])
@FUZZ
@given(text=yamlish)
def test_fuzz_any_text_loads_or_is_a_config_error(name: str, text: str, tmp_path: Path) -> None:
    """For any text in any of the three files: it loads, or a ConfigError — nothing else."""
    _loads_or_config_error(tmp_path, name, text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("name", ["config.yaml", "rules/pack.yaml", "holds.yaml"])
@FUZZ
@given(content=st.binary(max_size=200))
def test_fuzz_any_bytes_load_or_are_a_config_error(
    name: str, content: bytes, tmp_path: Path
) -> None:
    """Arbitrary bytes, valid UTF-8 or not: a ConfigError at worst."""
    _loads_or_config_error(tmp_path, name, content)


@pytest.mark.parametrize("name", ["config.yaml", "rules/pack.yaml", "holds.yaml"])
@FUZZ
@given(data=st.data())
def test_fuzz_one_line_of_a_valid_file_changed(
    name: str, data: st.DataObject, tmp_path: Path
) -> None:
    """A valid file with one line replaced by anything: it loads or says what is wrong."""
    text = {"config.yaml": VALID_CONFIG, "rules/pack.yaml": VALID_PACK, "holds.yaml": VALID_HOLDS}[
        name
    ]
    lines = text.splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    lines[index] = data.draw(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=40)))
    _loads_or_config_error(tmp_path, name, "\n".join(lines).encode("utf-8", "surrogatepass"))
