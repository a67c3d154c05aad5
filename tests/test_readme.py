"""README.md's worked example runs as written: its three files and the database that
deploy/examples/worked_example.py creates give, command by command, the output the README prints
(at 80 columns; run ids differ from run to run)."""

from __future__ import annotations

import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retention.cli import app

REPO = Path(__file__).resolve().parent.parent
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _section() -> str:
    text = (REPO / "README.md").read_text()
    return text[text.index("## A worked example") : text.index("## How decisions are made")]


def _session() -> list[tuple[str, str]]:
    """The console block's commands and the output printed under each."""
    block = re.search(r"```console\n(.*?)```", _section(), re.S)
    assert block is not None
    steps: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return [(command, "\n".join(lines)) for command, lines in steps]


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in UUID.sub("<run id>", text).strip().splitlines())


def test_worked_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write the README's retention.yaml, rules/acme.yaml and holds.yaml, create app.db with
    the example script, then run every command of the console block: each prints what the
    README shows."""
    for name, body in re.findall(r"`([^`]+)`:\n\n```yaml\n(.*?)```", _section(), re.S):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    session = _session()
    assert [c.split()[0] for c, _ in session][:3] == ["python", "export", "retention"]
    for command, expected in session:
        if command.startswith("export RETENTION_HMAC_KEY="):
            monkeypatch.setenv("RETENTION_HMAC_KEY", secrets.token_urlsafe(32))
            continue
        if command.startswith("python $REPO/"):
            script = REPO / command.split("$REPO/", 1)[1]
            done = subprocess.run(
                [sys.executable, str(script)], capture_output=True, text=True, check=True
            )
            output = done.stdout
        else:
            args = shlex.split(command)
            assert args[0] == "retention"
            result = CliRunner().invoke(app, args[1:])
            assert result.exit_code == 0, result.output
            output = result.output
        assert _normal(output) == _normal(expected), command
