"""The holds file fails closed: ids are read as written, and a file that does not say what it
holds — empty, comment-only, truncated — stops destructive work, at start and at every re-read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retention.cli import app
from retention.config import load_config
from retention.errors import ConfigError
from retention.executor import Executor
from retention.holdsreport import hold_coverage

from .conftest import Database
from .scenario import Scenario, at, rule, utc

NOW = utc("2026-06-01 00:00:00")


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Scenario:
    return Scenario(db, tmp_path)


def populate(world: Scenario) -> None:
    """Accounts 70, 65, 1 and 106, each with one long-due ticket of the same id."""
    ids = (70, 65, 1, 106)
    world.accounts(*({"id": i} for i in ids))
    world.tickets(*({"id": i, "account_id": i, "created_at": at("2020-01-01")} for i in ids))


@pytest.mark.parametrize(
    ("written", "held"),
    [("0106", 106), ("'0106'", 106), ("1:05", None), ("true", None), ("106", 106)],
)
def test_a_held_id_is_read_as_the_text_written(
    world: Scenario, written: str, held: int | None
) -> None:
    """`0106` holds account 106 (YAML 1.1 read it as octal 70 and the run deleted 106); `1:05` is
    not 65 and `true` is not 1: they hold no account, so nothing is spared by accident either."""
    populate(world)
    config = world.config([rule()])
    assert config.holds_path is not None
    config.holds_path.write_text(f"holds:\n  - id: case\n    subjects: {{account: [{written}]}}\n")
    holds = config.load_holds()
    assert holds.holds[0].subjects == {"account": [written.strip("'")]}
    Executor(config, now=NOW, live=True).run()
    assert world.ticket_ids() == ([held] if held is not None else [])


def test_an_id_that_is_a_list_or_mapping_names_file_line_and_field(tmp_path: Path) -> None:
    """A value that is not a plain scalar where an id belongs is an error, not a silent miss."""
    world_dir = tmp_path
    holds = world_dir / "holds.yaml"
    holds.write_text("holds:\n  - id: case\n    subjects:\n      account: [4411, [7], {a: 1}]\n")
    config_path = _minimal_config(world_dir)
    with pytest.raises(ConfigError) as info:
        load_config(config_path)
    lines = str(info.value).splitlines()
    assert lines == [
        f"{holds}:4: holds[0].subjects.account[1]: an id must be a plain value, not a list",
        f"{holds}:4: holds[0].subjects.account[2]: an id must be a plain value, not a mapping",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "# all holds released? no: this file was truncated\n",
        "freeze: false\n",
        "holds:\n",
    ],
)
def test_a_holds_file_that_does_not_say_what_it_holds_is_refused(tmp_path: Path, text: str) -> None:
    """Empty, comment-only, or without `holds:` — refused like a missing file, exit 2 before
    anything runs; `holds: []` is how "no holds" is said."""
    config_path = _minimal_config(tmp_path)
    (tmp_path / "holds.yaml").write_text(text)
    result = CliRunner().invoke(app, ["run", "--execute", "-c", str(config_path)])
    assert result.exit_code == 2
    assert "holds: []" in result.stderr and str(tmp_path / "holds.yaml") in result.stderr
    (tmp_path / "holds.yaml").write_text("holds: []\n")
    assert load_config(config_path).load_holds().holds == []


def test_freeze_alone_says_what_it_holds(tmp_path: Path) -> None:
    """`freeze: true` without a list holds everything: accepted (it can only protect)."""
    config_path = _minimal_config(tmp_path)
    (tmp_path / "holds.yaml").write_text("freeze: true\n")
    assert load_config(config_path).load_holds().freeze


def test_a_holds_file_truncated_mid_run_stops_destructive_work(world: Scenario) -> None:
    """The file is re-read before every batch: emptied after the first batch (an editor's
    truncation), the run deletes nothing more and fails with the file named; the next run,
    with the file whole again, still honours the hold."""
    world.accounts({"id": 1}, {"id": 2})
    world.tickets(
        *(
            {"id": i, "account_id": 1 if i <= 2 else 2, "created_at": at("2020-01-01")}
            for i in range(1, 7)
        )
    )
    held = {"holds": [{"id": "case", "subjects": {"account": ["2"]}}]}
    config = world.config([rule()], batch_size=2, holds=held)
    assert config.holds_path is not None
    whole = config.holds_path.read_text()

    def truncate(*_: object) -> None:
        assert config.holds_path is not None
        config.holds_path.write_text("")

    with pytest.raises(ConfigError, match="holds file is empty"):
        Executor(config, now=NOW, live=True, progress=truncate).run()
    assert world.ticket_ids() == [3, 4, 5, 6]  # batch 1 (account 1's tickets) only
    config.holds_path.write_text(whole)
    Executor(config, now=NOW, live=True).run()
    assert world.ticket_ids() == [3, 4, 5, 6]


def test_holds_coverage_counts_an_id_written_with_leading_zeros(world: Scenario) -> None:
    """`retention holds` counts what `0106` really covers: account 106's records."""
    populate(world)
    config = world.config(
        [rule()], holds={"holds": [{"id": "case", "subjects": {"account": ["0106"]}}]}
    )
    assert config.holds_path is not None
    config.holds_path.write_text("holds:\n  - id: case\n    subjects: {account: [0106]}\n")
    (row,) = hold_coverage(config, now=NOW).holds
    assert row.records == 1


def _minimal_config(directory: Path) -> Path:
    (directory / "rules").mkdir(exist_ok=True)
    (directory / "rules" / "pack.yaml").write_text("policy: {name: P}\nrules: []\n")
    if not (directory / "holds.yaml").exists():
        (directory / "holds.yaml").write_text("holds: []\n")
    path = directory / "config.yaml"
    path.write_text(
        json.dumps(
            {
                "state_db": f"sqlite:///{directory / 'state.db'}",
                "rules": ["rules/"],
                "holds": "holds.yaml",
                "audit": {"keys": "plain"},
                "subjects": {
                    "account": {"store": "app", "table": "accounts", "key": "id", "events": {}}
                },
                "stores": {"app": {"kind": "sql", "url": f"sqlite:///{directory / 'state.db'}"}},
            }
        )
    )
    return path
