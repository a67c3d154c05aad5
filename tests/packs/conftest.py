"""Fixtures for the per-pack tests: a company's embedded demo, built as of a pinned moment.

Each test gets its own copy of the demo (built once per session per pack, then copied), and a
:class:`DemoWorld` that asks the engine about it at any moment: `explain` for one record,
`make_plan` for one rule, a live :class:`~retention.executor.Executor` run. Record keys are
found by what the demo says about them (``world.keys("documents", account_id=104)``), never by
hard-coded ids. :func:`policy_says` pins a test to the sentence of the policy it follows: the
five policies are copied verbatim in ``tests/packs/policies/``.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import Engine, column, create_engine, select, table

from retention.catalog import pack_text
from retention.config import Config, load_config
from retention.demo import build_company
from retention.durations import Duration
from retention.executor import Executor, RunResult
from retention.explain import Explanation, RuleVerdict, explain
from retention.planner import RulePlan, make_plan
from retention.testing import FixedClock
from retention.timemath import add_duration

UTC = dt.UTC
NOW = dt.datetime(2027, 3, 15, 9, 30, tzinfo=UTC)
"""The moment every demo in these tests is built at (its data is relative to it)."""
SECOND = dt.timedelta(seconds=1)


POLICIES = Path(__file__).parent / "policies"


def policy_says(pack: str, sentence: str) -> str:
    """Assert the policy `pack` was written from contains `sentence` word for word (runs of
    whitespace count as one space), and return it: a test that quotes its sentence fails
    when the quote drifts from the text."""
    document = yaml.safe_load(pack_text(pack))["policy"]["document"]
    text = " ".join((POLICIES / document).read_text(encoding="utf-8").split())
    quoted = " ".join(sentence.split())
    assert quoted in text, f"{document} does not say: {quoted!r}"
    return quoted


def plus(instant: dt.datetime, duration: str) -> dt.datetime:
    """`instant` + an ISO 8601 duration, calendar-aware, in UTC (the demo's zone)."""
    return add_duration(instant, Duration.parse(duration), ZoneInfo("UTC"))


def after_year_end(instant: dt.datetime, duration: str) -> dt.datetime:
    """A duration counted from the end of the year `instant` falls in (the demo's financial
    year is the calendar year, in UTC): 2021-03-05 + P5Y is 2027-01-01 00:00."""
    return plus(dt.datetime(instant.year + 1, 1, 1, tzinfo=UTC), duration)


class DemoWorld:
    """One company's demo in a temporary directory, and questions about it."""

    def __init__(self, pack: str, directory: Path) -> None:
        self.pack = pack
        self.directory = directory
        self.config_path = directory / "config.yaml"
        self.config: Config = load_config(self.config_path)
        self.engine: Engine = create_engine(f"sqlite:///{directory / 'app.db'}")

    def close(self) -> None:
        self.engine.dispose()

    # -- the data ------------------------------------------------------------------------------

    def keys(self, dataset: str, **where: Any) -> list[str]:
        """Keys of the records of `dataset` whose columns equal `where`, in key order."""
        columns = {name: column(name) for name in ("id", *where)}
        query = select(columns["id"]).select_from(table(self._table(dataset), *columns.values()))
        for name, value in where.items():
            query = query.where(
                columns[name].is_(None) if value is None else columns[name] == value
            )
        with self.engine.connect() as connection:
            return [str(row[0]) for row in connection.execute(query.order_by(columns["id"]))]

    def key(self, dataset: str, **where: Any) -> str:
        """The first key matching `where` (there must be one)."""
        found = self.keys(dataset, **where)
        assert found, f"the demo has no {dataset} record with {where}"
        return found[0]

    def row(self, dataset: str, key: str) -> dict[str, Any] | None:
        """The record as stored, or None once deleted."""
        with self.engine.connect() as connection:
            result = connection.exec_driver_sql(
                f'SELECT * FROM "{self._table(dataset)}" WHERE id = ?', (int(key),)
            )
            found = result.mappings().first()
        return dict(found) if found is not None else None

    def count(self, dataset: str) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.exec_driver_sql(
                    f'SELECT count(*) FROM "{self._table(dataset)}"'
                ).scalar_one()
            )

    def event(self, account: int, name: str) -> dt.datetime:
        """When `account`'s lifecycle event happened (aware UTC)."""
        column_name = self.config.settings.subjects["account"].events[name]
        with self.engine.connect() as connection:
            value = connection.exec_driver_sql(
                f'SELECT "{column_name}" FROM accounts WHERE id = ?', (account,)
            ).scalar_one()
        assert value is not None, f"account {account} has no {name} event"
        return _aware(value)

    def stamp(self, dataset: str, key: str, timestamp: str) -> dt.datetime:
        """A record timestamp (`created`, `updated`, `last_used`) as aware UTC."""
        name = self.config.settings.datasets[dataset].timestamps[timestamp]
        record = self.row(dataset, key)
        assert record is not None
        return _aware(record[name])

    def _table(self, dataset: str) -> str:
        name = self.config.settings.datasets[dataset].table
        assert name is not None
        return name

    # -- the engine ----------------------------------------------------------------------------

    def explain(self, dataset: str, key: str, at: dt.datetime = NOW) -> Explanation:
        return explain(self.config, dataset, key, at)

    def verdict(self, dataset: str, key: str, rule: str, at: dt.datetime = NOW) -> RuleVerdict:
        for verdict in self.explain(dataset, key, at).rules:
            if verdict.rule == rule:
                return verdict
        raise AssertionError(f"rule {rule} does not apply to {dataset} {key}")

    def status(self, dataset: str, key: str, rule: str, at: dt.datetime = NOW) -> str:
        return self.verdict(dataset, key, rule, at).status

    def plan(self, rule: str, at: dt.datetime = NOW) -> RulePlan:
        (row,) = make_plan(self.config, at, rule_ids=[rule]).rules
        return row

    def run(self, at: dt.datetime = NOW, rules: tuple[str, ...] = ()) -> RunResult:
        """A live enforcement pass as of `at`."""
        return Executor(self.config, now=at, live=True, clock=FixedClock(at)).run(rules)

    def timeline(
        self,
        dataset: str,
        key: str,
        rule: str,
        *,
        start: dt.datetime,
        due: dt.datetime,
        overdue: dt.datetime | None = None,
        before: str = "not yet due",
    ) -> None:
        """Assert `rule`'s clock for the record starts at `start`, it is due exactly at `due`
        (`before` one second earlier) and, if given, that its deadline is `overdue`: still due
        at that moment (acting then keeps the promise), overdue once it has passed."""
        verdict = self.verdict(dataset, key, rule, start)
        assert (verdict.clock_start, verdict.due_at) == (start, due)
        assert verdict.overdue_at == overdue
        assert self.status(dataset, key, rule, due - SECOND) == before
        self.acted(dataset, key, rule, due, "due")
        if overdue is not None:
            self.acted(dataset, key, rule, overdue, "due")
            self.acted(dataset, key, rule, overdue + SECOND, "overdue")

    def acted(self, dataset: str, key: str, rule: str, at: dt.datetime, status: str) -> None:
        """Assert `rule` has `status` for the record at `at`, or that an earlier-due delete rule
        acts on it then instead (DESIGN.md's precedence: the earliest due action applies)."""
        verdicts = self.explain(dataset, key, at).rules
        (mine,) = [v for v in verdicts if v.rule == rule]
        if mine.status != "superseded by a delete rule":
            assert mine.status == status, (rule, at)
            return
        acting = [
            v
            for v in verdicts
            if v.action == "delete" and v.status in ("due", "overdue") and v.rule != rule
        ]
        assert acting, f"{rule} is superseded at {at} but no other delete rule acts"
        assert all(v.due_at is not None and mine.due_at is not None for v in acting)
        assert min(v.due_at for v in acting if v.due_at) <= (mine.due_at or at), (rule, acting)

    # -- configuration -------------------------------------------------------------------------

    def set_hold(self, hold_id: str, *, active: bool) -> None:
        """Legal toggles a hold in holds.yaml (as it would, without touching rules or code)."""
        path = self.directory / "holds.yaml"
        data = yaml.safe_load(path.read_text())
        for hold in data["holds"]:
            if hold["id"] == hold_id:
                hold["active"] = active
                break
        else:
            raise AssertionError(f"no hold {hold_id}")
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def add_hold(self, **hold: Any) -> None:
        path = self.directory / "holds.yaml"
        data = yaml.safe_load(path.read_text())
        data["holds"].append(hold)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def hold_ids(self) -> dict[str, bool]:
        data = yaml.safe_load((self.directory / "holds.yaml").read_text())
        return {hold["id"]: hold["active"] for hold in data["holds"]}

    def override(self, rule: str, **fields: Any) -> None:
        """A deployer's `rule_overrides` entry in config.yaml; the config is reloaded."""
        data = yaml.safe_load(self.config_path.read_text())
        data.setdefault("rule_overrides", {})[rule] = fields
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.config = load_config(self.config_path)


def _aware(value: Any) -> dt.datetime:
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@pytest.fixture(scope="session")
def _demo_templates(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    built: dict[str, Path] = {}

    def template(pack: str) -> Path:
        if pack not in built:
            built[pack] = tmp_path_factory.mktemp("demo-template") / pack
            build_company(built[pack], pack, NOW)
        return built[pack]

    return template


@pytest.fixture
def demo_world(
    _demo_templates: Callable[[str], Path], tmp_path: Path
) -> Iterator[Callable[[str], DemoWorld]]:
    """A factory: ``demo_world("com7")`` is a fresh copy of Com7's demo, built as of NOW."""
    worlds: list[DemoWorld] = []

    def make(pack: str) -> DemoWorld:
        directory = tmp_path / pack
        shutil.copytree(_demo_templates(pack), directory)
        world = DemoWorld(pack, directory)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()
