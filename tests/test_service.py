"""`retention serve`: schedules across DST and month ends, catch-up, the lease and fencing,
reloads, signals, holds picked up live, and /healthz, /readyz and /metrics.

Schedule and lease behaviour is tested in-process with a pinned clock. Everything a deployment
relies on is tested against the real process (``python -m retention serve``) with a cron that
has a seconds field (``* * * * * */2``: every two seconds), so nothing waits for a minute and no
test-only switch exists in the daemon. Ports are chosen by the daemon (``service.port: 0``) and
read from its ``http listening`` log line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert, select
from structlog.testing import capture_logs

from retention.approvals import approve
from retention.audit import AuditLog
from retention.checkpoints import parse
from retention.config import Config, load_config
from retention.executor import Executor
from retention.lease import Lease, LeaseLost
from retention.schedule import fires, mark_covered, next_fire
from retention.service import Service
from retention.statedb import open_state
from retention.statetables import audit as audit_table
from retention.statetables import runs, schedule
from retention.stores.sql import make_engine
from retention.testing import FixedClock

from .conftest import Database
from .scenario import TICKETS, Scenario, at, rule, utc

BERLIN = ZoneInfo("Europe/Berlin")
EVERY_2S = "* * * * * */2"


def berlin(text: str) -> str:
    """An instant as Berlin wall time with its offset, for readable assertions."""
    return dt.datetime.fromisoformat(text).astimezone(BERLIN).strftime("%m-%d %H:%M:%S%z")


def local(moments: list[dt.datetime]) -> list[str]:
    return [m.astimezone(BERLIN).strftime("%m-%d %H:%M:%S%z") for m in moments]


# -- schedules: pinned clocks ---------------------------------------------------------------------


def test_spring_gap_runs_once_at_the_change() -> None:
    """02:30 does not exist on 2026-03-29 in Berlin: the daily 02:30 run happens once, at 03:00
    CEST (the change), and the next day at 02:30 again."""
    got = fires("30 2 * * *", utc("2026-03-27 12:00"), utc("2026-03-30 12:00"), BERLIN)
    assert local(got) == ["03-28 02:30:00+0100", "03-29 03:00:00+0200", "03-30 02:30:00+0200"]


def test_autumn_fold_runs_once() -> None:
    """02:30 happens twice on 2026-10-25 in Berlin: the daily 02:30 run happens once (at the
    later 02:30, CET), never twice, even when asked again from between the two occurrences."""
    got = fires("30 2 * * *", utc("2026-10-24 12:00"), utc("2026-10-26 12:00"), BERLIN)
    assert local(got) == ["10-25 02:30:00+0100", "10-26 02:30:00+0100"]
    first_0230 = dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)  # 02:30 CEST
    assert next_fire("30 2 * * *", first_0230, BERLIN) == dt.datetime(
        2026, 10, 25, 1, 30, tzinfo=dt.UTC
    )
    assert next_fire("30 2 * * *", utc("2026-10-25 01:30"), BERLIN) == utc("2026-10-26 01:30")


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # spring: 23 wall hours, 02:00 is merged into 03:00 → 23 runs
        ("2026-03-28 23:00", "2026-03-29 22:00", 23),
        # autumn: 25 real hours but 24 wall hours, each wall hour once → 24 runs
        ("2026-10-24 22:00", "2026-10-25 23:00", 24),
    ],
)
def test_hourly_schedule_across_dst(start: str, end: str, expected: int) -> None:
    """An hourly schedule runs once per wall-clock hour of the DST day: none skipped, none twice,
    and always strictly later than the previous run."""
    got = fires("0 * * * *", utc(start), utc(end), BERLIN)
    assert len(got) == expected
    assert all(a < b for a, b in itertools.pairwise(got))
    walls = [m.astimezone(BERLIN).strftime("%H") for m in got]
    assert len(set(walls)) == len(walls)


def test_month_end_schedules() -> None:
    """`0 3 31 * *` fires only in months with a 31st; `0 3 L * *` on every last day, including
    29 February in a leap year; times are Berlin wall time whatever the offset."""
    got = fires("0 3 31 * *", utc("2027-12-01 00:00"), utc("2028-06-01 00:00"), BERLIN)
    assert local(got) == [
        "12-31 03:00:00+0100",
        "01-31 03:00:00+0100",
        "03-31 03:00:00+0200",
        "05-31 03:00:00+0200",
    ]
    last = fires("0 3 L * *", utc("2028-01-15 00:00"), utc("2028-04-15 00:00"), BERLIN)
    assert local(last) == ["01-31 03:00:00+0100", "02-29 03:00:00+0100", "03-31 03:00:00+0200"]


def test_sixth_field_is_seconds() -> None:
    """A sixth cron field is seconds (croniter's convention): `* * * * * */2` every 2 s."""
    got = fires(EVERY_2S, utc("2026-01-01 00:00:00"), utc("2026-01-01 00:00:06"), ZoneInfo("UTC"))
    assert [m.second for m in got] == [2, 4, 6]


# -- the service in-process: catch-up, grouping, replicas -----------------------------------------


@pytest.fixture
def world(sqlite_db: Database, tmp_path: Path) -> Scenario:
    return Scenario(sqlite_db, tmp_path)


def old_tickets(ids: range, account: int | None = None) -> list[dict[str, Any]]:
    return [
        {"id": i, "account_id": account, "created_at": at("2020-01-01"), "email": f"p{i}@x.test"}
        for i in ids
    ]


def run_rows(config: Config) -> list[dict[str, Any]]:
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        with engine.connect() as connection:
            query = select(runs).order_by(runs.c.started_at)
            return [dict(r._mapping) for r in connection.execute(query)]
    finally:
        engine.dispose()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    made: list[Service] = []
    yield made
    for service in made:
        service.close()


def service_for(
    config: Config, clock: FixedClock, made: list[Service], holder: str = "a"
) -> Service:
    service = Service(config, clock=clock, holder=holder)
    made.append(service)
    service.prepare()
    return service


def test_missed_runs_are_caught_up_once(world: Scenario, services: list[Service]) -> None:
    """A daily rule last run ten days ago runs once at start, not ten times; afterwards it waits
    for its next fire time."""
    world.tickets(*old_tickets(range(1, 6)))
    config = world.config([rule(schedule="0 3 * * *")], dry_run=False)
    state = open_state(config.settings.state_db.get_secret_value())
    mark_covered(state, ["r"], utc("2026-05-20 03:00"), "earlier-run")
    state.dispose()
    clock = FixedClock(utc("2026-05-30 12:00"))
    service = service_for(config, clock, services)
    assert service.step() == 0.0
    assert service.step() == 60.0  # nothing due: sleep (capped) towards 2026-05-31 03:00
    assert [r["status"] for r in run_rows(config)] == ["complete"]
    assert world.ticket_ids() == []
    clock.moment = utc("2026-05-31 03:00")
    service.step()
    assert len(run_rows(config)) == 2


def test_rules_due_together_share_one_run(world: Scenario, services: list[Service]) -> None:
    """Two rules firing at the same moment run in one executor run; a rule on another schedule
    runs on its own; keep rules are never scheduled."""
    world.tickets(*old_tickets(range(1, 4)))
    rules = [
        rule("a", schedule="0 3 * * *"),
        rule("b", schedule="0 3 * * *", action="anonymize", anonymize={"email": "redact"}),
        rule("c", schedule="0 4 * * *"),
        rule("k", action="keep", retain="P1D"),
    ]
    config = world.config(rules, dry_run=False)
    clock = FixedClock(utc("2026-05-30 02:00"))
    service = service_for(config, clock, services)
    assert service.step() == 60.0
    clock.moment = utc("2026-05-30 03:00")
    service.step()
    clock.moment = utc("2026-05-30 04:00")
    service.step()
    rows = run_rows(config)
    assert [json.loads(r["counts"])["rules"].keys() for r in rows] == [
        {"a@tickets", "b@tickets"},
        {"c@tickets"},
    ]


def test_dry_run_setting_makes_scheduled_runs_dry(world: Scenario, services: list[Service]) -> None:
    """With `dry_run: true` the service runs dry runs: nothing is deleted."""
    world.tickets(*old_tickets(range(1, 4)))
    config = world.config([rule(schedule="0 3 * * *")], dry_run=True)
    clock = FixedClock(utc("2026-05-30 02:59"))
    service = service_for(config, clock, services)
    clock.moment = utc("2026-05-30 03:00")
    service.step()
    assert [r["mode"] for r in run_rows(config)] == ["dry-run"]
    assert world.ticket_ids() == [1, 2, 3]


@pytest.mark.parametrize("dry_run", [False, True], ids=["live", "dry"])
def test_a_live_run_writes_a_checkpoint(
    world: Scenario, services: list[Service], tmp_path: Path, dry_run: bool
) -> None:
    """With `audit.checkpoints` set, the service writes a checkpoint of the chain after each
    live run (at the run's end entry), and none after a dry run."""
    world.tickets(*old_tickets(range(1, 4)))
    where = tmp_path / "anchors"
    audit = {"keys": "plain", "checkpoints": str(where)}
    config = world.config([rule(schedule="0 3 * * *")], dry_run=dry_run, audit=audit)
    clock = FixedClock(utc("2026-05-30 02:59"))
    service = service_for(config, clock, services)
    clock.moment = utc("2026-05-30 03:00")
    service.step()
    written = sorted(where.glob("checkpoint-*.json")) if where.exists() else []
    if dry_run:
        assert written == []
        return
    (path,) = written
    found = parse(path.read_bytes())
    with service.state.connect() as connection:
        head = connection.execute(
            select(audit_table.c.seq).order_by(audit_table.c.seq.desc())
        ).first()
    assert head is not None and found.seq == head[0] and found.algorithm == "hmac-sha256"


def test_a_second_replica_does_not_repeat_a_run(world: Scenario, services: list[Service]) -> None:
    """Two replicas wake for the same fire time; the one that gets the lease second reads the
    books again under the lease and finds the run already done."""
    world.tickets(*old_tickets(range(1, 4)))
    config = world.config([rule(schedule="0 3 * * *")], dry_run=False)
    clock = FixedClock(utc("2026-05-30 02:59"))
    first = service_for(config, clock, services, "a")
    second = service_for(config, clock, services, "b")
    clock.moment = utc("2026-05-30 03:00:01")
    first.step()
    second.step()
    assert len(run_rows(config)) == 1


def test_a_replica_waits_while_another_holds_the_lease(
    world: Scenario, services: list[Service]
) -> None:
    """While another holder has the lease, a due replica does not run: it logs that it waits
    and asks to be woken again soon."""
    config = world.config([rule(schedule="0 3 * * *")], dry_run=False)
    clock = FixedClock(utc("2026-05-30 02:59"))
    service = service_for(config, clock, services)
    clock.moment = utc("2026-05-30 03:00")
    other = Lease(service.state, holder="other", clock=clock.now)
    assert other.try_acquire()
    with capture_logs() as logs:
        delay = service.step()
    assert 0 < delay <= 15
    assert run_rows(config) == []
    assert {"event": "lease busy, waiting", "current_holder": "other"}.items() <= logs[0].items()
    other.release()
    service.step()
    assert len(run_rows(config)) == 1


def test_fencing_a_taken_over_lease_cannot_commit(world: Scenario) -> None:
    """A replica paused between batches long enough for its lease to expire is taken over; its
    next batch is refused at the commit point and changes nothing. The new holder finishes the
    work, and every record is audited exactly once (the first batch by whichever path the
    executor takes: directly, or reconciled from its intent)."""
    world.tickets(*old_tickets(range(1, 7)))
    config = world.config([rule()], dry_run=False, batch_size=2, audit={"keys": "plain"})
    state = open_state(config.settings.state_db.get_secret_value())
    clock = FixedClock(utc("2026-06-01 00:00"))
    ttl = dt.timedelta(seconds=30)
    paused = Lease(state, holder="paused", ttl=ttl, clock=clock.now)
    usurper = Lease(state, holder="usurper", ttl=ttl, clock=clock.now)
    assert paused.try_acquire() and not usurper.try_acquire()

    def pause(*_: Any) -> None:  # after the first batch: the process stalls past its lease
        clock.moment += dt.timedelta(seconds=31)
        assert usurper.try_acquire()

    executor = Executor(
        config, now=clock.now(), live=True, state=state, lease=paused, progress=pause
    )
    with pytest.raises(LeaseLost):
        executor.run()
    assert (paused.epoch, usurper.epoch) == (None, 2)
    assert world.ticket_ids() == [3, 4, 5, 6]
    assert not {"3", "4", "5", "6"} & set(audited_keys(state))

    Executor(config, now=clock.now(), live=True, state=state, lease=usurper).run()
    assert world.ticket_ids() == []
    assert sorted(audited_keys(state)) == ["1", "2", "3", "4", "5", "6"]
    state.dispose()


def test_reload_rejects_an_invalid_config_and_keeps_the_old(
    world: Scenario, services: list[Service]
) -> None:
    """A config that fails validation, or that changes what only a restart can change, is
    rejected with a log line; the config in force stays, and /readyz says so."""
    path = world.write([rule(schedule="0 3 * * *")], dry_run=False)
    config = load_config(path)
    service = service_for(config, FixedClock(utc("2026-05-30 02:00")), services)
    good = path.read_text()
    path.write_text(good.replace("batch_size", "batch_sise") + "batch_size: -1\n")
    with capture_logs() as logs:
        assert not service.reload()
    assert logs[-1]["event"] == "config rejected"
    assert any("batch_size" in error for error in logs[-1]["errors"])
    assert service.config is config
    ready, body = service.readiness()
    assert ready and "rejected" in body["checks"]["config"]["last_reload"]
    path.write_text(good.replace("state.db", "other.db"))
    with capture_logs() as logs:
        assert not service.reload()
    assert logs[-1]["errors"] == ["state_db only change on restart"]
    path.write_text(good.replace("dry_run: false", "dry_run: true"))
    pack = path.parent / "rules" / "pack.yaml"
    pack.write_text(pack.read_text().replace("0 3 * * *", "0 4 * * *"))
    assert service.reload()
    assert service.config.settings.dry_run
    assert service.config.rule("r").schedule == "0 4 * * *"


def test_pending_approvals_are_in_readyz_and_metrics(
    world: Scenario, services: list[Service]
) -> None:
    """A rule waiting for an approval does not make the replica unready: /readyz names it in
    its detail, with why, and /metrics counts the records it would act on; once approved both
    clear at the next plan refresh."""
    world.tickets(*old_tickets(range(1, 4)), {"id": 9, "created_at": dt.datetime.now()})
    config = world.config([rule(approval="required")], dry_run=False)
    service = service_for(config, FixedClock(utc("2026-05-30 02:00")), services)
    service.refresh_plan()
    ready, body = service.readiness()
    assert ready
    (pending,) = body["checks"]["approvals"]["pending"]
    assert (pending["rule"], pending["dataset"]) == ("r", "tickets")
    assert "needs an approval" in pending["message"]
    exposed = generate_latest(service.metrics.registry)
    assert metric(exposed, "retention_approval_pending_records", rule="r", dataset="tickets") == 3
    counts = {"tickets": 3}
    approve(config, "r", counts, "dpo", dt.datetime.now(dt.UTC))
    service.refresh_plan()
    assert service.readiness()[1]["checks"]["approvals"]["pending"] == []
    exposed = generate_latest(service.metrics.registry)
    assert "retention_approval_pending_records{" not in exposed.decode()


def test_readyz_names_what_is_not_reachable(world: Scenario, services: list[Service]) -> None:
    """/readyz's check fails, naming the store, when a store cannot be reached, and the holds
    check fails when the holds file is broken."""
    stores = {
        "app": {"kind": "sql", "url": world.db.url},
        "gone": {
            "kind": "sql",
            "url": "postgresql+psycopg://x@127.0.0.1:9/x",
            "connect_timeout": 1,
        },
    }
    config = world.config([rule()], stores=stores)
    service = service_for(config, FixedClock(utc("2026-05-30 02:00")), services)
    ready, body = service.readiness()
    assert not ready
    assert body["checks"]["stores"]["app"] == {"ok": True}
    assert body["checks"]["stores"]["gone"]["ok"] is False
    assert body["checks"]["state_db"] == {"ok": True}
    assert config.holds_path is not None
    config.holds_path.write_text("holds: [{id: broken, active: maybe}]\n")
    _, body = service.readiness()
    assert body["checks"]["holds"]["ok"] is False


# -- the real process ----------------------------------------------------------------------------


class Daemon:
    """One `retention serve` process, its JSON log lines, and its HTTP port."""

    def __init__(self, config: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "retention", "serve", "--config", str(config)],
            cwd=config.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._new: queue.Queue[None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = int(self.wait_for("http listening")["port"])

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.raw.append(line)
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.events.append({"event": "(not json)", "line": line})
            self._new.put(None)
        self._new.put(None)

    def wait_for(
        self, event: str, *, after: int = 0, timeout: float = 20, **fields: Any
    ) -> dict[str, Any]:
        """The first log event named `event` (with `fields`) at index `after` or later."""
        deadline = time.monotonic() + timeout
        while True:
            for found in self.events[after:]:
                if found.get("event") == event and all(
                    found.get(k) == v for k, v in fields.items()
                ):
                    return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.process.poll() is not None and self._new.empty()):
                raise AssertionError(f"no {event!r} {fields} in the log:\n{''.join(self.raw)}")
            with contextlib.suppress(queue.Empty):
                self._new.get(timeout=min(remaining, 0.5))

    def index(self, event: str, **fields: Any) -> int:
        found = self.wait_for(event, **fields)
        return self.events.index(found)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def close(self) -> None:
        """Kill the process if it still runs (a failed test), and close its pipe."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture
def spawn() -> Iterator[Any]:
    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        daemon = Daemon(config)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()


def serve_config(world: Scenario, *, state_db: str | None = None, **settings: Any) -> Path:
    """A config that deletes tickets older than 30 days every two seconds, live."""
    base: dict[str, Any] = {
        "dry_run": False,
        "audit": {"keys": "plain"},
        "service": {"host": "127.0.0.1", "port": 0, "lease_ttl": 4},
    }
    if state_db is not None:
        base["state_db"] = state_db
    base.update(settings)
    return world.write([rule(schedule=EVERY_2S)], **base)


def audited_keys(state: Engine) -> list[str]:
    log = AuditLog(state, keys="plain", hmac_key=None)
    return [k for e in log.entries() if e.outcome == "done" for k in json.loads(e.keys)]


def metric(body: bytes, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The state DB of the daemon: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    database: Database = request.getfixturevalue("postgres_db")
    return database.url


@pytest.mark.slow
def test_serve_runs_on_schedule_and_reports_what_the_audit_log_shows(
    world: Scenario, state_url: str, spawn: Any
) -> None:
    """The daemon fires on schedule, deletes what is due, logs JSON lines without personal data,
    and /healthz, /readyz and /metrics answer with the numbers the audit log shows."""
    world.tickets(*old_tickets(range(1, 13)), {"id": 99, "created_at": dt.datetime.now()})
    daemon = spawn(serve_config(world, state_db=state_url, batch_size=5))
    finished = daemon.wait_for("run finished", acted=12)
    assert finished["status"] == "complete" and finished["run_id"]
    assert world.ticket_ids() == [99]
    batches = [e for e in daemon.events if e["event"] == "batch audited"]
    assert [b["count"] for b in batches[:3]] == [5, 5, 2]
    assert all(b["rule"] == "r" and b["dataset"] == "tickets" for b in batches)

    daemon.wait_for("plan refreshed", after=daemon.events.index(finished), due=0)
    assert daemon.get("/healthz")[0] == 200
    status, body = daemon.get("/readyz")
    assert status == 200 and json.loads(body)["checks"]["stores"]["app"] == {"ok": True}
    state = make_engine(state_url)
    try:
        done = len(audited_keys(state))
        _, text = daemon.get("/metrics")
        assert done == 12
        assert metric(text, "retention_records_deleted_total", rule="r", dataset="tickets") == done
        assert metric(text, "retention_runs_total", mode="live", status="complete") >= 1
        assert metric(text, "retention_last_success_timestamp_seconds", mode="live") > 0
        assert metric(text, "retention_due_records", rule="r", dataset="tickets") == 0
        assert metric(text, "retention_run_duration_seconds_count", mode="live") >= 1
        holder = finished["holder"]
        assert metric(text, "retention_lease_held", holder=holder) in (0, 1)
    finally:
        state.dispose()
    assert daemon.stop() == 0
    log = "".join(daemon.raw)
    assert "@x.test" not in log and "p1@" not in log  # no personal data in the log


@pytest.mark.slow
def test_sighup_with_a_bad_config_keeps_the_old_one(world: Scenario, spawn: Any) -> None:
    """SIGHUP with a broken config: a `config rejected` line, the daemon keeps serving and
    running on the old config; a good config is then taken."""
    path = serve_config(world)
    daemon = spawn(path)
    daemon.wait_for("run finished")
    good = path.read_text()
    path.write_text(good + "batch_size: 0\n")
    daemon.signal(signal.SIGHUP)
    rejected = daemon.wait_for("config rejected")
    assert any("batch_size" in line for line in rejected["errors"])
    after = daemon.events.index(rejected)
    daemon.wait_for("run finished", after=after)  # still running on schedule, old config
    assert daemon.get("/healthz")[0] == 200
    assert metric(daemon.get("/metrics")[1], "retention_config_reload_success") == 0
    path.write_text(good.replace("dry_run: false", "dry_run: true"))
    daemon.signal(signal.SIGHUP)
    reloaded = daemon.wait_for("config reloaded")
    assert reloaded["mode"] == "dry-run"
    daemon.wait_for("run started", after=daemon.events.index(reloaded), mode="dry-run")
    assert daemon.stop() == 0


@pytest.mark.slow
def test_a_hold_added_while_serving_protects_its_records(world: Scenario, spawn: Any) -> None:
    """Legal adds a hold to the file while the daemon runs: it is picked up without a restart,
    and the next batch leaves the held account's records alone."""
    path = serve_config(world)
    world.accounts({"id": 7}, {"id": 8})
    daemon = spawn(path)
    daemon.wait_for("run finished")
    holds = {"holds": [{"id": "case-7", "subjects": {"account": [7]}, "reason": "dispute"}]}
    (path.parent / "holds.yaml").write_text(yaml.safe_dump(holds))
    loaded = daemon.wait_for("holds loaded", active=["case-7"])
    world.tickets(*old_tickets(range(1, 4), account=7), *old_tickets(range(4, 7), account=8))
    daemon.wait_for("run finished", after=daemon.events.index(loaded), acted=3)
    assert world.ticket_ids() == [1, 2, 3]
    assert metric(daemon.get("/metrics")[1], "retention_holds_active") == 1
    assert daemon.stop() == 0


@pytest.mark.slow
def test_sigterm_mid_run_is_recorded_and_the_next_start_completes_it(
    world: Scenario, spawn: Any
) -> None:
    """SIGTERM during a run: the current batch finishes, the run is recorded as interrupted,
    the process exits 0; the next start catches the run up and every record is audited once."""
    world.tickets(*old_tickets(range(1, 121)))
    path = serve_config(world, batch_size=2)
    config = load_config(path)
    daemon = spawn(path)
    daemon.wait_for("batch audited")
    daemon.signal(signal.SIGTERM)
    began = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - began < 10
    daemon.wait_for("run finished", status="interrupted")
    assert [r["status"] for r in run_rows(config)] == ["interrupted"]
    left = world.ticket_ids()
    assert 0 < len(left) < 120

    again = spawn(path)
    again.wait_for("run finished", status="complete", timeout=40)
    assert world.ticket_ids() == []
    state = open_state(config.settings.state_db.get_secret_value())
    try:
        keys = audited_keys(state)
        assert sorted(keys, key=int) == [str(i) for i in range(1, 121)]
        assert AuditLog(state, keys="plain", hmac_key=None).verify().ok
    finally:
        state.dispose()
    assert again.stop() == 0


@pytest.mark.slow
@pytest.mark.postgres
def test_two_replicas_on_one_postgres_state_db_never_act_twice(
    postgres_db: Database, tmp_path: Path, spawn: Any
) -> None:
    """Two daemons on one PostgreSQL state DB: one acts at a time, the other waits for the lease;
    every record is deleted and audited exactly once, and their runs never overlap."""
    world = Scenario(postgres_db, tmp_path)
    world.tickets(*old_tickets(range(1, 81)))
    path = serve_config(world, state_db=postgres_db.url, batch_size=2)
    first, second = spawn(path), spawn(path)
    first.wait_for("service started")
    second.wait_for("service started")
    deadline = time.monotonic() + 30
    while world.ticket_ids() and time.monotonic() < deadline:
        time.sleep(0.2)
    with postgres_db.engine.begin() as connection:
        connection.execute(insert(TICKETS), old_tickets(range(81, 121)))
    while world.ticket_ids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert world.ticket_ids() == []
    waited = [
        d for d in (first, second) if any(e["event"] == "lease busy, waiting" for e in d.events)
    ]
    assert waited, "neither replica ever found the lease taken"
    assert first.stop() == 0 and second.stop() == 0
    keys = audited_keys(postgres_db.engine)
    assert sorted(keys, key=int) == [str(i) for i in range(1, 121)]
    with postgres_db.engine.connect() as connection:
        spans = connection.execute(
            select(runs.c.started_at, runs.c.finished_at, runs.c.holder).order_by(runs.c.started_at)
        ).all()
        assert connection.execute(select(schedule.c.rule)).scalars().all() == ["r"]
    assert all(a.finished_at <= b.started_at for a, b in itertools.pairwise(spans))
    assert AuditLog(postgres_db.engine, keys="plain", hmac_key=None).verify().ok


def test_an_unusable_holds_file_postpones_runs_until_it_is_fixed(
    world: Scenario, services: list[Service]
) -> None:
    """Fail closed under `serve`: with the holds file emptied, a due rule does not run (nothing
    deleted, /readyz false) and stays due; once the file is whole again it runs."""
    world.tickets(*old_tickets(range(1, 6)))
    config = world.config([rule(schedule="0 3 * * *")], dry_run=False)
    assert config.holds_path is not None
    whole = config.holds_path.read_text()
    state = open_state(config.settings.state_db.get_secret_value())
    mark_covered(state, ["r"], utc("2026-05-20 03:00"), "earlier-run")
    state.dispose()
    config.holds_path.write_text("# emptied by an editor\n")
    service = service_for(config, FixedClock(utc("2026-05-30 12:00")), services)
    assert service.step() > 0
    assert world.ticket_ids() == [1, 2, 3, 4, 5]
    ready, body = service.readiness()
    assert not ready and body["checks"]["holds"]["ok"] is False
    assert run_rows(config) == []
    config.holds_path.write_text(whole)
    assert service.step() == 0.0
    assert world.ticket_ids() == []
    assert service.readiness()[0]
