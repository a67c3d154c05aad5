"""Peak memory of planning an S3 dataset, by object count: it must not grow with the bucket.

    .venv/bin/python tests/bench/s3_plan_memory.py 10000 100000

For each count, a moto server is started in its own process with that many objects already in
its bucket (seeded in that process: uploading 100,000 objects over HTTP takes far too long),
and the plan is made in a fresh child process that talks to the server over HTTP, with two
rules (one on record.created, one on a subject clock read from SQLite, one query per page). The
child reports the tracemalloc peak of the Python heap during `make_plan` and its maximum RSS.
Only the client's memory is measured: the server lives in another process.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as b

BUCKET = "bench-bucket"
ACCOUNTS = 1000


def serve(count: int, port: int) -> None:
    """Child: a moto server on `port` whose bucket holds `count` objects, until killed."""
    import logging

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(BUCKET, "us-east-1")
    old = dt.datetime(2020, 1, 1)
    for i in range(count):
        backend.put_object(BUCKET, f"customers/{i % ACCOUNTS}/file-{i:07d}.pdf", b"x")
        backend.get_object(BUCKET, f"customers/{i % ACCOUNTS}/file-{i:07d}.pdf").last_modified = (
            old if i % 3 else dt.datetime(2026, 5, 30)
        )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def measure(endpoint: str, directory: str) -> None:
    """Child: plan the dataset once, print the heap peak and max RSS as JSON."""
    import resource
    import tracemalloc

    from retention.config import load_config
    from retention.planner import make_plan

    config = load_config(Path(directory) / "config.yaml")
    tracemalloc.start()
    started = time.perf_counter()
    plan = make_plan(config, dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert not plan.skipped, plan.skipped
    print(
        json.dumps(
            {
                "peak_heap_mib": round(peak / 2**20, 2),
                "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "seconds": round(seconds, 1),
                "rules": {r.rule: [r.in_scope, r.due, r.actionable] for r in plan.rules},
            }
        )
    )


def write_config(directory: Path, endpoint: str) -> None:
    with sqlite3.connect(directory / "app.db") as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, closed_at TIMESTAMP)")
        db.executemany(
            "INSERT INTO accounts VALUES (?, ?)",
            [(i, "2025-01-01 00:00:00" if i % 2 else None) for i in range(ACCOUNTS)],
        )
    (directory / "rules").mkdir()
    (directory / "rules/pack.yaml").write_text(
        json.dumps(
            {
                "policy": {"name": "bench"},
                "rules": [
                    {
                        "id": "age",
                        "applies_to": {"dataset": "files"},
                        "after": "record.created",
                        "retain": "P30D",
                        "action": "delete",
                    },
                    {
                        "id": "closed",
                        "applies_to": {"dataset": "files"},
                        "after": "subject.closed",
                        "retain": "P90D",
                        "action": "delete",
                    },
                ],
            }
        )
    )
    config: dict[str, Any] = {
        "state_db": f"sqlite:///{directory / 'state.db'}",
        "rules": ["rules/"],
        "stores": {
            "app": {"kind": "sql", "url": f"sqlite:///{directory / 'app.db'}"},
            "bucket": {
                "kind": "s3",
                "bucket": BUCKET,
                "endpoint_url": endpoint,
                "region": "us-east-1",
                "access_key_id": "bench",
                "secret_access_key": "bench",
            },
        },
        "subjects": {
            "account": {
                "store": "app",
                "table": "accounts",
                "key": "id",
                "events": {"closed": "closed_at"},
            }
        },
        "datasets": {
            "files": {"store": "bucket", "prefix": "customers/{account}/", "category": "files"}
        },
    }
    (directory / "config.yaml").write_text(json.dumps(config))


def bench(count: int) -> dict[str, Any]:
    with b.moto_server(__file__, count) as endpoint, tempfile.TemporaryDirectory() as directory:
        write_config(Path(directory), endpoint)
        child = subprocess.run(
            [sys.executable, __file__, "--measure", endpoint, directory],
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return {"objects": count, **result}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--serve"]:
        serve(int(argv[1]), int(argv[2]))
    elif argv[:1] == ["--measure"]:
        measure(argv[1], argv[2])
    else:
        for count in [int(a) for a in argv] or [10_000, 100_000]:
            print(json.dumps(bench(count)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
