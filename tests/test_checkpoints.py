"""Checkpoints: the chain head signed outside the state DB, and what `audit verify` makes of them.

A log is built as in test_audit.py (a manual entry and a live run: 8 entries), with an Ed25519
signing key and a checkpoint directory in its config. Each test writes checkpoints through the
CLI, then tampers with the state DB (or the checkpoints) and checks the verdict: truncation,
deletion of everything and rewriting are tampering (exit 1); a checkpoint or seal from a key
not held is a key problem (exit 6) that names both key ids. S3 destinations run on moto, with
Object Lock.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from retention.auditkeys import hmac_key_id, public_key_id
from retention.checkpoints import parse
from retention.cli import app
from retention.executor import Executor

from .auditlog import HMAC_KEY, NOW, Log, build, rehash_from, ticket
from .scenario import Scenario
from .stores.objectworld import s3_client


def private_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


SIGNING = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def signed_log(
    world: Scenario,
    where: str,
    *,
    key: Ed25519PrivateKey = SIGNING,
    top: dict[str, Any] | None = None,
    **audit: Any,
) -> Log:
    """A built log whose config signs checkpoints with `key` and keeps them in `where`
    (`audit`: more audit settings, `top`: other settings)."""
    settings = {"keys": "plain", "signing_key": private_pem(key), "checkpoints": where, **audit}
    return build(world, audit=settings, **(top or {}))


def checkpoint(log: Log, *args: str) -> dict[str, Any]:
    result = log.cli("audit", "checkpoint", "--json", *args)
    assert result.exit_code == 0, result.output
    written: dict[str, Any] = json.loads(result.stdout)
    return written


def verdict(log: Log, *args: str) -> tuple[int, dict[str, Any]]:
    result = log.cli("audit", "verify", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def later_run(world: Scenario, log: Log) -> str:
    """A second live run (entries 9 to 12)."""
    world.tickets(ticket(11, "closed", 1), ticket(12, "closed", 2), ticket(13, "closed", 1))
    result = Executor(log.config, now=NOW, live=True).run()
    assert result.status == "complete" and log.last_seq() == 12
    return result.run_id


# -- writing ---------------------------------------------------------------------------------------


def test_checkpoint_to_a_directory_is_a_new_signed_file_each_time(
    world: Scenario, tmp_path: Path
) -> None:
    """`audit checkpoint` writes the head (seq, hash, entry count, time) as a new read-only
    JSON file, Ed25519-signed and naming its key id; a second one never overwrites the first."""
    where = tmp_path / "anchors"
    log = signed_log(world, str(where))
    first = checkpoint(log)
    second = checkpoint(log)
    files = sorted(where.iterdir())
    assert [str(f) for f in files] == sorted([first["location"], second["location"]])
    head = log.rows()[-1]
    for path in files:
        found = parse(path.read_bytes())
        assert (found.seq, found.hash, found.entries) == (8, head["hash"], 8)
        assert (found.algorithm, found.key_id) == ("ed25519", public_key_id(SIGNING.public_key()))
        SIGNING.public_key().verify(base64.b64decode(found.signature), found.payload())
        assert path.stat().st_mode & 0o222 == 0
    plain = log.cli("audit", "checkpoint")
    assert plain.exit_code == 0 and "checkpoint at entry 8 (ed25519, key ed25519:" in plain.output
    assert verdict(log) == (
        0,
        {
            "ok": True,
            "entries": 8,
            "bad_seq": None,
            "reason": None,
            "run_id": None,
            "problem": None,
            "checkpoints": 3,
        },
    )


def test_checkpoint_needs_a_destination_and_a_key(world: Scenario) -> None:
    """Without a destination, or without any key to sign with, `audit checkpoint` is a config
    error (exit 2) saying which setting to give."""
    log = build(world, audit={"keys": "plain"})
    nowhere = log.cli("audit", "checkpoint")
    assert nowhere.exit_code == 2 and "audit.checkpoints" in nowhere.output
    unsigned = world.write([], hmac_key=None, audit={"keys": "plain"})
    result = CliRunner().invoke(
        app, ["audit", "checkpoint", "--config", str(unsigned), "--to", "x"]
    )
    assert result.exit_code == 2 and "audit.signing_key" in result.output


# -- what checkpoints catch ------------------------------------------------------------------------


def test_truncated_chain_is_caught_by_a_checkpoint(world: Scenario, tmp_path: Path) -> None:
    """Cutting off the last run, entries and row together, verifies without checkpoints
    (test_runevents.py) but not against the checkpoint written after it."""
    log = signed_log(world, str(tmp_path / "anchors"))
    last = later_run(world, log)
    checkpoint(log)
    log.sql("DELETE FROM retention_audit WHERE run_id = ?", last)
    log.sql("DELETE FROM retention_runs WHERE id = ?", last)
    assert log.verify().ok
    code, found = verdict(log)
    assert code == 1 and found["problem"] == "tampered" and found["bad_seq"] == 12
    assert "entries after 8 were removed" in found["reason"]


def test_deleting_everything_is_caught_by_a_checkpoint(world: Scenario, tmp_path: Path) -> None:
    """An emptied state DB verifies on its own, but every checkpoint says what it held."""
    log = signed_log(world, str(tmp_path / "anchors"))
    checkpoint(log)
    log.sql("DELETE FROM retention_audit")
    log.sql("DELETE FROM retention_runs")
    code, found = verdict(log)
    assert code == 1 and "every entry was removed" in found["reason"]
    text = log.cli("audit", "verify")
    assert text.exit_code == 1 and "audit log tampered" in text.output


def test_rewritten_chain_is_caught_by_a_checkpoint(world: Scenario, tmp_path: Path) -> None:
    """Without an HMAC key a writer can rebuild a consistent chain (edited entry, hashes, run
    head, end entry all recomputed) that verifies alone; the checkpoint's hash at its
    sequence number no longer matches."""
    log = signed_log(world, str(tmp_path / "anchors"), top={"hmac_key": None})
    checkpoint(log)
    log.sql("UPDATE retention_audit SET count = 1, keys = ? WHERE seq = 3", json.dumps(["x"]))
    rehash_from(log, 3, seal=None)
    head = log.rows()[6]["hash"]
    with sqlite3.connect(log.state) as connection:
        (counts,) = connection.execute("SELECT counts FROM retention_runs").fetchone()
        counts = json.loads(counts)
        counts["audit_head"] = [7, head]
        (detail,) = connection.execute(
            "SELECT detail FROM retention_audit WHERE seq = 8"
        ).fetchone()
        detail = {**json.loads(detail), "counts": counts}
        connection.execute("UPDATE retention_runs SET counts = ?", (json.dumps(counts),))
        connection.execute(
            "UPDATE retention_audit SET detail = ? WHERE seq = 8",
            (json.dumps(detail, sort_keys=True, separators=(",", ":")),),
        )
    connection.close()
    rehash_from(log, 8, seal=None)
    assert log.verify().ok, "the forgery should be consistent inside the state DB"
    code, found = verdict(log)
    assert code == 1 and found["bad_seq"] == 8
    assert "is not the one checkpoint" in found["reason"] and "rewritten" in found["reason"]


def test_an_edited_checkpoint_is_tampering(world: Scenario, tmp_path: Path) -> None:
    """A checkpoint changed after it was signed (here: claiming fewer entries) fails its
    signature check: tampering, not a key problem."""
    log = signed_log(world, str(tmp_path / "anchors"))
    path = Path(checkpoint(log)["location"])
    data = json.loads(path.read_text())
    data["seq"] = 2
    path.chmod(0o644)
    path.write_text(json.dumps(data))
    code, found = verdict(log)
    assert code == 1 and "signature does not verify" in found["reason"]
    path.write_text("{not json")
    assert verdict(log)[0] == 1


def test_an_empty_checkpoint_destination_is_tampering(world: Scenario, tmp_path: Path) -> None:
    """Asking to verify against checkpoints where there are none fails: they were deleted, or
    the wrong place was given."""
    log = signed_log(world, str(tmp_path / "anchors"))
    code, found = verdict(log)
    assert code == 1 and "no checkpoint found" in found["reason"]


# -- keys ------------------------------------------------------------------------------------------


def test_a_checkpoint_from_another_key_is_a_key_problem(world: Scenario, tmp_path: Path) -> None:
    """Verifying with another signing key than the one a checkpoint was made with is a key
    problem (exit 6) naming both key ids, not tampering; given the right public key with
    --verify-key, it verifies."""
    log = signed_log(world, str(tmp_path / "anchors"))
    checkpoint(log)
    other = {"RETENTION_AUDIT__SIGNING_KEY": private_pem(OTHER)}
    verify = ["audit", "verify", "--config", str(log.config_path)]
    result = CliRunner().invoke(app, [*verify, "--json"], env=other)
    assert result.exit_code == 6, result.output
    found = json.loads(result.stdout)
    assert found["problem"] == "key"
    assert public_key_id(SIGNING.public_key()) in found["reason"]
    assert public_key_id(OTHER.public_key()) in found["reason"]
    text = CliRunner().invoke(app, verify, env=other)
    assert text.exit_code == 6 and "audit key problem" in text.output
    assert private_pem(OTHER) not in text.output
    with_public = CliRunner().invoke(app, [*verify, "--verify-key", public_pem(SIGNING)], env=other)
    assert with_public.exit_code == 0, with_public.output


def test_hmac_sealed_checkpoints_and_seals_survive_a_key_rotation(
    world: Scenario, tmp_path: Path
) -> None:
    """Without a signing key checkpoints are sealed with hmac_key. After rotating hmac_key the
    old entries and checkpoint are a key problem (exit 6, both key ids named) until the old key
    is listed in audit.previous_hmac_keys; then the old and the newly sealed entries verify."""
    where = str(tmp_path / "anchors")
    log = build(world, audit={"keys": "plain", "checkpoints": where})
    written = checkpoint(log)
    assert written["algorithm"] == "hmac-sha256"
    assert written["key_id"] == hmac_key_id(HMAC_KEY.encode())
    new_key = "rotated-key-not-secret"
    rotated = {"RETENTION_HMAC_KEY": new_key}
    verify = ["audit", "verify", "--config", str(log.config_path)]
    result = CliRunner().invoke(app, [*verify, "--json"], env=rotated)
    assert result.exit_code == 6, result.output
    found = json.loads(result.stdout)
    assert hmac_key_id(HMAC_KEY.encode()) in found["reason"]
    assert hmac_key_id(new_key.encode()) in found["reason"]
    both = {**rotated, "RETENTION_AUDIT__PREVIOUS_HMAC_KEYS": json.dumps([HMAC_KEY])}
    dry = CliRunner().invoke(app, ["run", "--config", str(log.config_path)], env=both)
    assert dry.exit_code == 0, dry.output
    key_ids = {r["key_id"] for r in log.rows()}
    assert key_ids == {hmac_key_id(HMAC_KEY.encode()), hmac_key_id(new_key.encode())}
    ok = CliRunner().invoke(app, verify, env=both)
    assert ok.exit_code == 0, ok.output
    assert "1 checkpoints agree" in ok.output


# -- an auditor with only the state DB URL ---------------------------------------------------------


def test_verify_with_only_the_state_db_url(
    world: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`audit verify --state-db URL` needs no config file, rules or stores: it checks the plain
    chain and the runs, and with `--checkpoints` and `--verify-key` (a file) the checkpoints."""
    log = signed_log(world, str(tmp_path / "anchors"))
    checkpoint(log)
    public = tmp_path / "retention.pub"
    public.write_text(public_pem(SIGNING))
    monkeypatch.delenv("RETENTION_CONFIG", raising=False)
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    monkeypatch.chdir(auditor)
    url = f"sqlite:///{log.state}"
    runner = CliRunner()
    plain = runner.invoke(app, ["audit", "verify", "--state-db", url])
    assert plain.exit_code == 0, plain.output
    assert "ok: 8 entries, chain intact" in plain.output
    anchored = [
        "audit",
        "verify",
        "--state-db",
        url,
        "--checkpoints",
        str(tmp_path / "anchors"),
        "--verify-key",
        str(public),
    ]
    assert runner.invoke(app, anchored).exit_code == 0
    log.sql("DELETE FROM retention_audit WHERE seq > 4")
    assert runner.invoke(app, ["audit", "verify", "--state-db", url]).exit_code == 1
    cut = runner.invoke(app, anchored)
    assert cut.exit_code == 1 and "entries after" in cut.output
    assert list(auditor.iterdir()) == []


# -- S3, with Object Lock --------------------------------------------------------------------------


@pytest.mark.parametrize("locked", [True, False], ids=["object-lock", "plain-bucket"])
def test_checkpoints_on_s3(world: Scenario, moto_endpoint: str, locked: bool) -> None:
    """On S3 each checkpoint is a new object under the prefix, locked in COMPLIANCE mode for
    checkpoint_lock_days where the bucket has Object Lock; verify reads them all back and
    catches a truncation."""
    client = s3_client(moto_endpoint)
    bucket = f"anchors-{'locked' if locked else 'plain'}-{id(world) % 10**6}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=locked)
    s3 = {
        "endpoint_url": moto_endpoint,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
    }
    log = signed_log(world, f"s3://{bucket}/audit/prod", checkpoint_s3=s3, checkpoint_lock_days=30)
    first, second = checkpoint(log), checkpoint(log)
    assert first["location"] != second["location"]
    assert first["location"].startswith(f"s3://{bucket}/audit/prod/checkpoint-000000000008-")
    listed = client.list_objects_v2(Bucket=bucket, Prefix="audit/prod/")["Contents"]
    assert len(listed) == 2
    head = client.head_object(Bucket=bucket, Key=listed[0]["Key"])
    if locked:
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] is not None
    else:
        assert "ObjectLockMode" not in head
    assert verdict(log)[0] == 0
    log.sql("DELETE FROM retention_audit WHERE seq > 6")
    code, found = verdict(log)
    assert code == 1 and "entries after 6 were removed" in found["reason"]
