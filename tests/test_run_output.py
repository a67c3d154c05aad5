"""`retention run` as an operator sees it: a summary, no per-batch log lines unless asked for
(`-v`, `--log-format json`, `--log-level`), nothing at all with `--quiet`, and Ctrl-C that
stops after the current batch, says what was done and leaves the rest to the next run."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retention.cli import app
from retention.config import load_config
from retention.demo import build_company
from retention.planner import make_plan

MOMENT = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
NOW = MOMENT.isoformat()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return build_company(tmp_path / "24seven", "24seven", MOMENT).config


def _run(config_file: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["run", "-c", str(config_file), "--now", NOW, *args])
    return result.exit_code, result.stdout, result.stderr


def _events(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_dry_run_prints_the_summary_and_no_batch_events(config_file: Path) -> None:
    """By default a run prints its summary table and no per-batch `audit` log events."""
    code, stdout, stderr = _run(config_file)
    assert code == 0, stderr
    assert "dry run (nothing changed)" in stdout
    assert not _events(stderr)


def test_verbose_and_json_logs_carry_one_event_per_batch(config_file: Path) -> None:
    """`-v` and `--log-format json` log each batch's audit event on stderr, as JSON lines."""
    for flags in (("-v", "--log-format", "json"), ("--log-format", "json")):
        code, _, stderr = _run(config_file, *flags)
        assert code == 0, stderr
        batches = [e for e in _events(stderr) if e["event"] == "audit" and e["count"]]
        assert len(batches) >= 5
        assert {"run_id", "rule", "dataset", "level", "timestamp"} <= set(batches[0])


def test_log_level_overrides_and_quiet_prints_nothing(config_file: Path) -> None:
    """`--log-level error` silences even JSON logs; `--quiet` prints neither a summary nor logs;
    an unknown level is a usage error."""
    code, _, stderr = _run(config_file, "--log-format", "json", "--log-level", "error")
    assert code == 0 and not _events(stderr)
    code, stdout, stderr = _run(config_file, "--quiet")
    assert code == 0 and stdout == "" and stderr == ""
    code, _, _ = _run(config_file, "--log-level", "loud")
    assert code == 2


def test_ctrl_c_during_a_live_run_stops_after_the_batch_and_the_next_run_finishes(
    config_file: Path,
) -> None:
    """SIGINT to a live `retention run` (a real process) stops it after the current batch: exit
    130, a line saying how many records were changed and that the next run finishes the rest;
    the next run does, and the audit chain verifies."""
    command = [sys.executable, "-m", "retention", "run", "-c", str(config_file), "--now", NOW]
    env = {**os.environ, "RETENTION_BATCH_SIZE": "1", "COLUMNS": "80"}
    process = subprocess.Popen(
        [*command, "--execute", "--log-format", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    acted = 0
    for line in process.stderr:  # wait for a few committed batches
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("action") == "delete" and event.get("count"):
            acted += 1
            if acted == 3:
                break
    process.send_signal(signal.SIGINT)
    stdout, rest = process.communicate(timeout=120)
    assert process.returncode == 130, rest
    assert "interrupted:" in rest and "The next `retention run` finishes the rest." in rest
    assert "— interrupted" in " ".join(stdout.split())
    remaining = sum(r.actionable for r in make_plan(load_config(config_file), MOMENT).rules)
    assert remaining > 0, "stopped before the end"

    finished = subprocess.run(
        [*command, "--execute", "-q"], env=env, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr
    assert sum(r.actionable for r in make_plan(load_config(config_file), MOMENT).rules) == 0
    verify = CliRunner().invoke(app, ["audit", "verify", "-c", str(config_file)])
    assert verify.exit_code == 0, verify.output
