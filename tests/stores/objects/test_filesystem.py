"""The filesystem store on real directories: globs, subjects, symlinks, errors, empty dirs."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from retention.audit import AuditLog
from retention.cli import app
from retention.config import Config
from retention.errors import ConfigErrors
from retention.executor import Executor
from retention.explain import explain
from retention.holdsreport import hold_coverage
from retention.planner import make_plan
from retention.runevents import RUN_ACTION
from retention.statedb import open_state
from retention.stores import Stores
from retention.stores.objects.filesystem import FilesystemStore

from ...conftest import Database
from ...scenario import Scenario, at, utc
from ..objectworld import object_rule

NOW = utc("2026-06-01 00:00:00")
OLD = utc("2020-01-01 00:00:00").timestamp()
RECENT = (NOW - dt.timedelta(days=1)).timestamp()


@pytest.fixture
def world(sqlite_db: Database, tmp_path: Path) -> Scenario:
    return Scenario(sqlite_db, tmp_path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "files"
    path.mkdir()
    return path


def touch(root: Path, relative: str, when: float = OLD) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("personal data")
    os.utime(path, (when, when))
    return path


def configure(
    world: Scenario,
    root: Path,
    rules: list[dict[str, Any]],
    *,
    glob: str = "uploads/{account}/*",
    holds: dict[str, Any] | None = None,
    **settings: Any,
) -> Config:
    return world.config(
        rules,
        holds=holds,
        datasets={"files": {"store": "disk", "glob": glob, "category": "customer_content"}},
        stores={
            "app": {"kind": "sql", "url": world.db.url},
            "disk": {"kind": "filesystem", "root": str(root)},
        },
        audit={"keys": "plain"},
        **settings,
    )


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def entries(config: Config) -> list[Any]:
    """The batch entries in chain order (the runs' start and end events left out)."""
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        found = AuditLog(engine, keys="plain", hmac_key=None).entries()
        return [e for e in found if e.action != RUN_ACTION]
    finally:
        engine.dispose()


def run(config: Config, *, live: bool = True) -> Any:
    return Executor(config, now=NOW, live=live).run()


def plan_of(config: Config) -> Any:
    result = make_plan(config, NOW)
    assert not result.skipped, result.skipped
    return {row.rule: row for row in result.rules}


def test_glob_with_subject_template_plans_and_deletes(world: Scenario, root: Path) -> None:
    """`uploads/{account}/*` covers the files one level under each account directory; the
    account id comes from the path and drives subject clocks; other files are not touched."""
    world.accounts({"id": 1, "closed_at": at("2025-01-01")}, {"id": 2})
    for name in ("uploads/1/a.pdf", "uploads/0001/b.pdf", "uploads/2/c.pdf"):
        touch(root, name)
    touch(root, "uploads/1/deeper/d.pdf")
    touch(root, "uploads/readme.txt")
    touch(root, "elsewhere/1/x")
    config = configure(world, root, [object_rule("closed", after="subject.closed", retain="P30D")])
    plan = plan_of(config)["closed"]
    assert (plan.in_scope, plan.due, plan.actionable) == (3, 2, 2)
    assert plan.samples == ("uploads/0001/b.pdf", "uploads/1/a.pdf")
    result = run(config)
    assert result.outcomes[0].acted == 2 and result.exit_code == 0
    assert files(root) == [
        "elsewhere/1/x",
        "uploads/1/deeper/d.pdf",
        "uploads/2/c.pdf",
        "uploads/readme.txt",
    ]
    assert run(config).outcomes[0].acted == 0


def test_empty_directories_left_by_deletion_are_removed_but_not_the_base_or_root(
    world: Scenario, root: Path
) -> None:
    """Directories emptied by the run go, deepest first; the glob's fixed base directory and
    the root stay, and so does a directory that still holds something."""
    touch(root, "uploads/1/2024/a")
    touch(root, "uploads/2/2024/b")
    touch(root, "uploads/2/keep", RECENT)
    config = configure(world, root, [object_rule("age")], glob="uploads/{account}/**/*")
    run(config)
    assert files(root) == ["uploads/2/keep"]
    assert not (root / "uploads/1").exists() and not (root / "uploads/2/2024").exists()
    touch(root, "uploads/3/c")
    run(configure(world, root, [object_rule("age")], glob="uploads/{account}/*"))
    assert (root / "uploads").is_dir() and root.is_dir()


def test_dry_run_changes_nothing(world: Scenario, root: Path) -> None:
    """A dry run audits what it would delete and leaves every file in place."""
    touch(root, "uploads/1/a")
    config = configure(world, root, [object_rule("age")])
    result = run(config, live=False)
    assert result.outcomes[0].acted == 1 and files(root) == ["uploads/1/a"]
    assert [e.outcome for e in entries(config)] == ["would delete"]


def test_holds_and_keep_rules_protect_files(world: Scenario, root: Path) -> None:
    """A hold on an account keeps its files (and `retention holds` counts them); a keep rule
    not yet due blocks the rest."""
    touch(root, "uploads/1/a")
    touch(root, "uploads/2/b", (NOW - dt.timedelta(days=40)).timestamp())
    holds = {"holds": [{"id": "case-1", "subjects": {"account": [1]}}]}
    rules = [object_rule("age"), object_rule("statutory", action="keep", retain="P1Y")]
    config = configure(world, root, rules, holds=holds)
    plan = plan_of(config)["age"]
    assert (plan.due, plan.held, plan.blocked, plan.actionable) == (2, 1, 1, 0)
    run(config)
    assert files(root) == ["uploads/1/a", "uploads/2/b"]
    (coverage,) = hold_coverage(config, now=NOW).holds
    assert coverage.records == 1


def test_a_symlink_is_refused_and_its_target_survives(
    world: Scenario, root: Path, tmp_path: Path
) -> None:
    """A symlink inside the root (to a file or a directory outside it) is never followed: the
    link to a file is listed, refused and audited; a linked directory is not entered."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("not ours")
    os.utime(secret, (OLD, OLD))
    (outside / "dir").mkdir()
    touch(outside, "dir/inner.txt")
    touch(root, "uploads/1/a")
    link = root / "uploads/1/link.txt"
    link.symlink_to(secret)
    os.utime(link, (OLD, OLD), follow_symlinks=False)
    (root / "uploads/2").symlink_to(outside / "dir")
    config = configure(world, root, [object_rule("age")])
    plan = plan_of(config)["age"]
    assert (plan.in_scope, plan.vetoed, plan.actionable) == (2, 1, 1)
    result = run(config)
    assert result.outcomes[0].acted == 1 and "1 refused" in (result.outcomes[0].message or "")
    assert secret.read_text() == "not ours" and (outside / "dir/inner.txt").exists()
    assert link.is_symlink()
    refused = [e for e in entries(config) if e.outcome == "refused"]
    assert json.loads(refused[0].keys) == ["uploads/1/link.txt"]


def test_a_directory_swapped_for_a_symlink_after_listing_is_refused(
    world: Scenario, root: Path, tmp_path: Path
) -> None:
    """Between listing and deleting, a directory on the path is replaced by a symlink to a
    directory outside the root: the delete is refused and the file outside survives."""
    touch(root, "uploads/1/a")
    config = configure(world, root, [object_rule("age")])
    files = config.datasets["files"]
    with Stores(config.settings) as opened:
        store = opened["disk"]
        assert isinstance(store, FilesystemStore)
        (page,) = list(store.pages(files))
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        victim = touch(outside, "a")
        shutil.rmtree(root / "uploads/1")
        (root / "uploads/1").symlink_to(outside)
        result = store.delete(files, page)
    assert result.deleted == () and "symlink" in result.vetoed["uploads/1/a"]
    assert victim.exists()


def test_globs_that_could_leave_the_root_are_config_errors(world: Scenario, root: Path) -> None:
    """A glob with `..`, an absolute glob, and an unknown placeholder are refused up front."""
    for glob, expected in (
        ("../*", "stay inside the store root"),
        ("/etc/*", "relative to the store root"),
        ("uploads/{acount}/*", "names no subject type"),
    ):
        with pytest.raises(ConfigErrors) as caught:
            configure(world, root, [object_rule("age")], glob=glob)
        assert expected in str(caught.value), glob


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """Make unlinking `path` fail, in a way that holds for root too (chattr +i)."""
    if os.geteuid() != 0:
        os.chmod(path.parent, 0o500)
        try:
            yield
        finally:
            os.chmod(path.parent, 0o700)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make an unlink fail")
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not permitted here: {made.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_permission_errors_are_reported_per_file_not_fatal(world: Scenario, root: Path) -> None:
    """A file that cannot be unlinked is audited as failed with its error; the others are
    deleted and the run finishes (exit code 3: something could not be done)."""
    stuck = touch(root, "uploads/1/stuck")
    touch(root, "uploads/2/b")
    config = configure(world, root, [object_rule("age")])
    with immutable(stuck):
        result = run(config)
    outcome = result.outcomes[0]
    assert outcome.acted == 1 and outcome.status == "failed" and result.exit_code == 3
    assert files(root) == ["uploads/1/stuck"]
    (failed,) = [e for e in entries(config) if e.outcome == "failed"]
    assert json.loads(failed.keys) == ["uploads/1/stuck"] and failed.detail in ("EPERM", "EACCES")


def test_explain_a_file(world: Scenario, root: Path) -> None:
    """`explain` takes a path relative to the root and judges it like the plan does."""
    touch(root, "uploads/1/a")
    config = configure(world, root, [object_rule("age")])
    found = explain(config, "files", "uploads/1/a", NOW)
    assert found.rules[0].status == "overdue" or found.rules[0].status == "due"
    assert found.verdict.startswith("due for deletion by rule age")


def test_validate_reports_a_missing_root(world: Scenario, tmp_path: Path) -> None:
    """`validate` says when the root is not there."""
    from retention.validate import check_stores

    config = configure(world, tmp_path / "nope", [object_rule("age")])
    problems = check_stores(config)
    assert problems and "nope" in problems[0].message


def test_an_expiring_hold_keeps_files_until_its_moment(world: Scenario, root: Path) -> None:
    """`expires_on: 2026-06-01` (UTC here): a second before midnight the held account's file
    stays; at midnight the hold is released and the file goes."""
    touch(root, "uploads/1/a")
    hold = {"id": "extended", "subjects": {"account": ["1"]}, "expires_on": "2026-06-01"}
    config = configure(world, root, [object_rule("age")], holds={"holds": [hold]})
    before = NOW - dt.timedelta(seconds=1)
    assert make_plan(config, before).rules[0].held == 1
    Executor(config, now=before, live=True).run()
    assert files(root) == ["uploads/1/a"]
    assert make_plan(config, NOW).rules[0].held == 0
    Executor(config, now=NOW, live=True).run()
    assert files(root) == []


def test_a_hold_that_blocks_only_anonymize_does_not_keep_files(world: Scenario, root: Path) -> None:
    """Object stores only delete: a hold with `blocks: [anonymize]` holds none of their files,
    one with `blocks: [delete]` holds them."""
    touch(root, "uploads/1/a")
    touch(root, "uploads/2/b")
    only = {"id": "rewrite", "subjects": {"account": ["1"]}, "blocks": ["anonymize"]}
    deletes = {"id": "evidence", "subjects": {"account": ["2"]}, "blocks": ["delete"]}
    config = configure(world, root, [object_rule("age")], holds={"holds": [only, deletes]})
    assert plan_of(config)["age"].held == 1
    run(config)
    assert files(root) == ["uploads/2/b"]


def test_clock_rounded_to_year_end_on_files(world: Scenario, root: Path) -> None:
    """Objects are judged by the same rounded clock as rows: files of 2025 kept one year from
    the end of their year are due on 2027-01-01 00:00, not before; a file of 2026 a year later."""
    touch(root, "uploads/1/early.pdf", utc("2025-01-01 00:00:00").timestamp())
    touch(root, "uploads/1/late.pdf", utc("2025-12-31 23:59:59").timestamp())
    touch(root, "uploads/1/new.pdf", utc("2026-01-01 00:00:00").timestamp())
    rounded = {"event": "record.created", "round_to": "year_end"}
    config = configure(world, root, [object_rule("y", after=rounded, retain="P1Y")])

    def due(now: str) -> tuple[str, ...]:
        (row,) = make_plan(config, utc(now)).rules
        return row.samples

    assert due("2026-12-31 23:59:59.999999") == ()
    assert due("2027-01-01 00:00:00") == ("uploads/1/early.pdf", "uploads/1/late.pdf")
    assert len(due("2028-01-01 00:00:00")) == 3


def test_a_delete_held_back_by_a_keep_rule_is_overdue_within_after_the_minimum(
    world: Scenario, root: Path
) -> None:
    """On files as on rows: the deadline of a delete a keep rule held back runs from the end
    of the minimum, not from the delete's own due date."""
    touch(root, "uploads/1/a.pdf", utc("2020-01-01 00:00:00").timestamp())
    rules = [
        object_rule("gone", retain="P1Y", within="P1M"),
        object_rule("minimum", action="keep", retain="P5Y"),
    ]
    config = configure(world, root, rules)

    def gone(now: str) -> Any:
        return {row.rule: row for row in make_plan(config, utc(now)).rules}["gone"]

    assert (gone("2024-12-31 23:59:59").blocked, gone("2024-12-31 23:59:59").overdue) == (1, 0)
    assert (gone("2025-02-01 00:00:00").actionable, gone("2025-02-01 00:00:00").overdue) == (1, 0)
    assert gone("2025-02-01 00:00:01").overdue == 1  # overdue once past the deadline


def test_each_deleted_file_carries_its_subject_due_time_and_lateness(
    world: Scenario, root: Path, tmp_path: Path
) -> None:
    """A deleted file's audit entry names, per file, its account (taken from its path, HMAC'd
    like the keys), when it became due and how late it went: account 1's files a year past
    their deadline, account 2's on the day of theirs (on time). `retention subject account 1
    --json` and its certificate name the run, the rule and the entry, and the certificate
    verifies."""
    world.accounts(
        {"id": 1, "closed_at": at("2025-01-01")}, {"id": 2, "closed_at": at("2026-04-25")}
    )
    for name in ("uploads/1/a.pdf", "uploads/0001/b.pdf", "uploads/2/c.pdf"):
        touch(root, name)
    rules = [object_rule("closed", after="subject.closed", retain="P30D", within="P7D")]
    config = world.config(
        rules,
        datasets={"files": {"store": "disk", "glob": "uploads/{account}/*", "category": "c"}},
        stores={
            "app": {"kind": "sql", "url": world.db.url},
            "disk": {"kind": "filesystem", "root": str(root)},
        },
        audit={"keys": "hmac"},
    )
    result = run(config)
    assert result.outcomes[0].acted == 3 and files(root) == []
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        log = AuditLog.from_settings(engine, config.settings)
        (entry,) = [e for e in log.entries() if e.outcome == "done"]
        one, two = log.subject_digest("1"), log.subject_digest("2")
    finally:
        engine.dispose()
    keys = [log.key_digest(k) for k in ("uploads/0001/b.pdf", "uploads/1/a.pdf", "uploads/2/c.pdf")]
    assert json.loads(entry.keys) == keys
    late = int((NOW - utc("2025-02-07 00:00:00")).total_seconds())
    assert entry.facts() == [
        (one, "2025-01-31T00:00:00+00:00", late),
        (one, "2025-01-31T00:00:00+00:00", late),
        (two, "2026-05-25T00:00:00+00:00", None),
    ]
    runner = CliRunner()
    cert = tmp_path / "1.json"
    args = ["subject", "account", "1", "--config", str(config.path), "--now", NOW.isoformat()]
    shown = runner.invoke(app, [*args, "--json", "--certificate", str(cert)])
    assert shown.exit_code == 0, shown.output
    (files_view,) = [d for d in json.loads(shown.output)["datasets"] if d["dataset"] == "files"]
    assert files_view["records"] == 0 and files_view["via"] == "subject in its object key"
    (acted,) = files_view["history"]
    assert (acted["seq"], acted["run_id"], acted["rule"], acted["records"]) == (
        entry.seq,
        result.run_id,
        "closed",
        2,
    )
    assert (acted["late"], acted["late_by"]) == (2, late)
    (cleared,) = [d for d in json.loads(cert.read_text())["datasets"] if d["dataset"] == "files"]
    assert cleared["cleared"] == [acted]
    checked = runner.invoke(
        app, ["audit", "verify-certificate", str(cert), "--config", str(config.path)]
    )
    assert checked.exit_code == 0, checked.output
