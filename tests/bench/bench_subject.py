"""`retention subject` on a large SQLite dataset: one subject's lookup and certificate.

Builds N tickets over N/100 accounts (an index on the subject column, as a subject's table
would have), deletes half of them with a live run (the audit log then holds N/2 records'
facts), and times `lookup` of one account, the certificate and its verification.

    .venv/bin/python tests/bench/bench_subject.py --rows 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import tempfile
import time
from pathlib import Path

import yaml

from retention.certificates import Sealer, build, verify, write
from retention.config import load_config
from retention.executor import Executor
from retention.statedb import open_state
from retention.subjects import lookup

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-subject-"))
    app = work / "app.db"
    connection = sqlite3.connect(app)
    connection.executescript(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, closed_at TIMESTAMP);"
        "CREATE TABLE tickets (id INTEGER PRIMARY KEY, account_id INTEGER, created_at TIMESTAMP);"
    )
    accounts = args.rows // 100 + 1  # odd: each account has old and recent tickets
    connection.executemany(
        "INSERT INTO accounts VALUES (?, ?)", ((i, None) for i in range(accounts))
    )
    connection.executemany(
        "INSERT INTO tickets VALUES (?, ?, ?)",
        (
            (i, i % accounts, "2024-01-01 00:00:00" if i % 2 else "2026-05-01 00:00:00")
            for i in range(args.rows)
        ),
    )
    connection.execute("CREATE INDEX tickets_account ON tickets (account_id)")
    connection.commit()
    connection.close()
    (work / "rules.yaml").write_text(
        yaml.safe_dump(
            {
                "policy": {"name": "bench"},
                "rules": [
                    {
                        "id": "old",
                        "applies_to": {"dataset": "tickets"},
                        "after": "record.created",
                        "retain": "P1Y",
                        "within": "P30D",
                        "action": "delete",
                    }
                ],
            }
        )
    )
    config_path = work / "config.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "state_db": f"sqlite:///{work / 'state.db'}",
                "rules": ["rules.yaml"],
                "hmac_key": "bench-key-not-a-secret-0123456789",
                "limits": {"max_fraction": 1.0, "max_actions_per_run": 100_000_000},
                "stores": {"app": {"kind": "sql", "url": f"sqlite:///{app}"}},
                "subjects": {
                    "account": {
                        "store": "app",
                        "table": "accounts",
                        "key": "id",
                        "events": {"closed": "closed_at"},
                    }
                },
                "datasets": {
                    "tickets": {
                        "store": "app",
                        "table": "tickets",
                        "key": "id",
                        "category": "support",
                        "subject": {"type": "account", "column": "account_id"},
                        "timestamps": {"created": "created_at"},
                    }
                },
            }
        )
    )
    config = load_config(config_path)
    started = time.perf_counter()
    Executor(config, now=NOW, live=True).run()
    print(f"live run, {args.rows // 2} deleted: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    report = lookup(config, "account", "7", NOW)
    looked = time.perf_counter() - started
    history = sum(len(d.history) for d in report.datasets)
    print(
        f"lookup of one account: {looked:.2f} s ({report.datasets[0].records} records now, "
        f"{history} audit entries acted on it)"
    )
    started = time.perf_counter()
    path, _ = write(Sealer(config.settings).seal(build(report, NOW)), work / "cert.json")
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        verify(path, config.settings, engine)
    finally:
        engine.dispose()
    print(f"certificate written and verified: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
