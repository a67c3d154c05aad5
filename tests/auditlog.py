"""A real audit log to tamper with: a state DB written by hand-appended entries and a live run.

Shared by the tests of the audit log, run events and checkpoints (`test_audit.py`,
`test_runevents.py`, `test_checkpoints.py`): :func:`build` makes the log, :class:`Log` reads it
and changes it behind the library's back with plain SQL, as someone with write access to the
state DB could.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from retention.audit import GENESIS, AuditLog, Verification, entry_hash
from retention.cli import app
from retention.config import Config, load_config
from retention.executor import Executor
from retention.statedb import open_state

from .scenario import Scenario, at, rule, utc

HMAC_KEY = "test-key-not-secret"
NOW = utc("2026-01-01 00:00:00")
# Distinctive ticket ids, so a test can tell whether a record key shows up in the state DB.
BASE = 48_151_620


@dataclass
class Log:
    """A state DB holding a real audit log, and the config that reads it."""

    config_path: Path
    config: Config
    state: Path
    run_id: str

    def audit_log(self) -> AuditLog:
        settings = self.config.settings
        key = settings.hmac_key.get_secret_value().encode() if settings.hmac_key else None
        engine = open_state(settings.state_db.get_secret_value())
        return AuditLog(engine, keys=settings.audit.keys, hmac_key=key)

    def verify(self) -> Verification:
        log = self.audit_log()
        try:
            return log.verify()
        finally:
            log.engine.dispose()

    def sql(self, statement: str, *params: Any) -> None:
        """Tamper with the state DB directly, as someone with write access to it could."""
        with sqlite3.connect(self.state) as connection:
            connection.execute(statement, params)
        connection.close()

    def rows(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.state) as connection:
            connection.row_factory = sqlite3.Row
            found = [
                dict(r) for r in connection.execute("SELECT * FROM retention_audit ORDER BY seq")
            ]
        connection.close()
        return found

    def last_seq(self) -> int:
        return int(self.rows()[-1]["seq"])

    def cli(self, *args: str) -> Any:
        return CliRunner().invoke(app, [*args, "--config", str(self.config_path)])


def ticket(n: int, status: str, account: int) -> dict[str, Any]:
    return {
        "id": BASE + n,
        "account_id": account,
        "created_at": at("2020-01-01 00:00:00"),
        "status": status,
        "email": f"user{n}@example.org",
        "name": f"User {n}",
        "ip": "10.1.2.3",
    }


def build(world: Scenario, *, manual: int = 1, **settings: Any) -> Log:
    """A log of `manual` hand-appended entries followed by a live run's batch entries.

    Keys are plain and entries sealed with HMAC_KEY unless `settings` say otherwise.

    Tickets 1–6 are closed (deleted by rule `purge`, three batches of two), tickets 7–10 are
    open (anonymized by rule `mask`, two batches of two): with one manual entry, seq 1 is the
    manual entry, 2 the run's start, 3–5 deletes, 6–7 anonymizations, 8 the run's end; the run
    records seq 7 as its head.
    """
    world.accounts({"id": 1}, {"id": 2})
    world.tickets(*(ticket(n, "closed" if n <= 6 else "open", 1 + n % 2) for n in range(1, 11)))
    options: dict[str, Any] = {
        "hmac_key": HMAC_KEY,
        "batch_size": 2,
        "limits": {"max_fraction": 1.0},
        "audit": {"keys": "plain"},
    }
    options.update(settings)
    path = world.write(
        [
            rule("purge", where={"status": "closed"}),
            rule(
                "mask", where={"status": "open"}, action="anonymize", anonymize={"email": "redact"}
            ),
        ],
        **options,
    )
    config = load_config(path)
    log = Log(path, config, world.directory / "state.db", "")
    audit_log = log.audit_log()
    for n in range(manual):
        audit_log.append(
            run_id="manual-run",
            action="note",
            outcome="recorded",
            dry_run=False,
            count=0,
            detail=f"manual entry {n + 1}",
            at=utc("2025-12-31 12:00:00") + dt.timedelta(minutes=n),
        )
    audit_log.engine.dispose()
    result = Executor(config, now=NOW, live=True).run()
    assert result.status == "complete", result.as_dict()
    assert [(o.rule, o.acted, o.batches) for o in result.outcomes] == [
        ("purge", 6, 3),
        ("mask", 4, 2),
    ]
    log.run_id = result.run_id
    assert log.verify() == Verification(True, manual + 7)
    return log


def assert_tampered(log: Log, seq: int, reason: str) -> None:
    """`verify()` and `retention audit verify` both fail, naming entry `seq` and `reason`."""
    result = log.verify()
    assert not result.ok
    assert result.bad_seq == seq, result
    assert result.reason is not None and reason in result.reason, result
    plain = log.cli("audit", "verify")
    assert plain.exit_code == 1, plain.output
    assert f"entry {seq}:" in plain.output
    assert reason in " ".join(plain.output.split())
    as_json = log.cli("audit", "verify", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["bad_seq"] == seq


def rehash_from(log: Log, seq: int, *, seal: str | None = "keep") -> None:
    """Recompute every hash from entry `seq` on, as a forger without the HMAC key would.

    `seal="keep"` leaves the old seals in place (the forger cannot compute new ones); `None`
    strips them.
    """
    rows = log.rows()
    prev = GENESIS if seq == 1 else rows[seq - 2]["hash"]
    with sqlite3.connect(log.state) as connection:
        for row in rows[seq - 1 :]:
            fields = {**row, "dry_run": bool(row["dry_run"]), "prev_hash": prev}
            digest = entry_hash(fields)
            connection.execute(
                "UPDATE retention_audit SET prev_hash = ?, hash = ?, seal = ? WHERE seq = ?",
                (prev, digest, row["seal"] if seal == "keep" else seal, row["seq"]),
            )
            prev = digest
    connection.close()
