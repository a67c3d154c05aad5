"""When `retention serve` runs each rule: cron schedules in the configured zone, and what ran.

A rule runs on its own ``schedule`` or on the settings' one. Cron expressions are read by
croniter as wall-clock times in ``timezone``: five fields, or six where the sixth is seconds
(croniter's convention: ``0 3 * * * 30`` is 03:00:30, ``* * * * * */5`` every five seconds).

Wall times become instants with :func:`~retention.timemath.wall_to_utc`, which is monotone, so
daylight saving time neither skips nor doubles a run: a time in the spring gap (02:30 on the
night clocks jump from 02:00 to 03:00) runs once, at the change; a time the autumn fold repeats
runs once, at its later occurrence. Two wall times that land on one instant run once.

What has run is kept in the state DB (``retention_schedule``): per rule, the instant up to which
every fire time has been handled. A fire time after it and not after *now* is due; however many
fire times a stopped service missed, the rule is due once and runs once (catch-up), and then it
is covered up to the moment that run started.

With shard leases (``service.lease_scope: dataset``) the same is kept per rule and shard
(``retention_shard_schedule``): each replica runs a rule on the shards it leads, and a shard
taken over goes on from its own mark. A shard's mark starts from the rule's whole-state-DB mark
when there is one, so turning shards on neither repeats nor skips a fire time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from .config import Config
from .statedb import as_utc, utcnow
from .statetables import schedule, shard_schedule
from .timemath import latest_wall_at_or_before, wall_to_utc


def next_fire(expression: str, after: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The first fire time of `expression` strictly after the instant `after`, in UTC."""
    start = latest_wall_at_or_before(after, zone)
    fire: dt.datetime = croniter(expression, start).get_next(dt.datetime)
    # Every wall time after `start` maps to an instant after `after` (wall_to_utc is monotone).
    return wall_to_utc(fire, zone)


def fires(
    expression: str, start: dt.datetime, end: dt.datetime, zone: ZoneInfo
) -> list[dt.datetime]:
    """Every fire time in ``(start, end]``, in UTC: what a service running throughout would run."""
    found: list[dt.datetime] = []
    moment = next_fire(expression, start, zone)
    while moment <= end:
        found.append(moment)
        moment = next_fire(expression, moment, zone)
    return found


def rule_schedules(config: Config) -> dict[str, str]:
    """Each rule that acts (delete or anonymize) and its cron expression; keep rules never run."""
    default = config.settings.schedule
    return {rule.id: rule.schedule or default for rule in config.rules if rule.destructive}


def due_rules(
    schedules: Mapping[str, str],
    covered: Mapping[str, dt.datetime],
    now: dt.datetime,
    zone: ZoneInfo,
) -> list[str]:
    """The rules with a fire time after what they are covered up to and not after `now`."""
    return [
        rule
        for rule, expression in schedules.items()
        if next_fire(expression, covered[rule], zone) <= now
    ]


def next_due(
    schedules: Mapping[str, str], covered: Mapping[str, dt.datetime], zone: ZoneInfo
) -> dt.datetime | None:
    """The earliest fire time still to run, of any rule; None without rules."""
    times = [next_fire(expr, covered[rule], zone) for rule, expr in schedules.items()]
    return min(times, default=None)


# -- what has run, in the state DB ------------------------------------------------------------


def read_covered(
    engine: Engine, rule_ids: Iterable[str], default: dt.datetime
) -> dict[str, dt.datetime]:
    """Per rule, the instant up to which its fire times were handled (`default` if never)."""
    wanted = list(rule_ids)
    with engine.connect() as connection:
        rows = connection.execute(
            select(schedule.c.rule, schedule.c.covered_until).where(schedule.c.rule.in_(wanted))
        ).all()
    found = {row[0]: as_utc(row[1]) for row in rows}
    return {rule: found.get(rule) or default for rule in wanted}


def register(engine: Engine, rule_ids: Iterable[str], at: dt.datetime) -> None:
    """Start the books of rules never scheduled before: fire times after `at` are theirs to run.

    A service that stops before a new rule's first run then catches that run up when it starts
    again. Rules already on the books keep what they have (another replica may have written it).
    """
    for rule in rule_ids:
        try:
            with engine.begin() as connection:
                if connection.execute(
                    select(schedule.c.rule).where(schedule.c.rule == rule)
                ).first():
                    continue
                connection.execute(
                    insert(schedule).values(
                        rule=rule, covered_until=at, run_id=None, updated_at=utcnow()
                    )
                )
        except IntegrityError:
            continue  # another replica registered it first


def mark_covered(engine: Engine, rule_ids: Iterable[str], at: dt.datetime, run_id: str) -> None:
    """Record that every fire time up to `at` of these rules has been run (by `run_id`).

    The mark only moves forward, so a replica whose clock lags cannot reopen a covered fire.
    """
    with engine.begin() as connection:
        for rule in rule_ids:
            values = {"covered_until": at, "run_id": run_id, "updated_at": utcnow()}
            row = connection.execute(
                select(schedule.c.covered_until).where(schedule.c.rule == rule).with_for_update()
            ).first()
            if row is None:
                connection.execute(insert(schedule).values(rule=rule, **values))
            elif (as_utc(row[0]) or at) < at:
                connection.execute(update(schedule).where(schedule.c.rule == rule).values(**values))


# -- per rule and shard ------------------------------------------------------------------------

Pair = tuple[str, str]  # (rule, shard)


def read_shard_covered(
    engine: Engine, pairs: Iterable[Pair], default: dt.datetime
) -> dict[Pair, dt.datetime]:
    """Per (rule, shard), the instant up to which its fire times were handled."""
    wanted = list(pairs)
    rules = sorted({rule for rule, _ in wanted})
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                shard_schedule.c.rule, shard_schedule.c.shard, shard_schedule.c.covered_until
            ).where(shard_schedule.c.rule.in_(rules))
        ).all()
    found = {(row[0], row[1]): as_utc(row[2]) for row in rows}
    return {pair: found.get(pair) or default for pair in wanted}


def register_shards(engine: Engine, pairs: Iterable[Pair], at: dt.datetime) -> None:
    """Start the books of (rule, shard) pairs never scheduled: from the rule's whole-state-DB
    mark if it has one, else from `at`. Pairs already on the books keep theirs."""
    wanted = list(pairs)
    whole = read_covered(engine, sorted({rule for rule, _ in wanted}), at)
    for rule, shard in wanted:
        try:
            with engine.begin() as connection:
                key = (shard_schedule.c.rule == rule) & (shard_schedule.c.shard == shard)
                if connection.execute(select(shard_schedule.c.rule).where(key)).first():
                    continue
                connection.execute(
                    insert(shard_schedule).values(
                        rule=rule,
                        shard=shard,
                        covered_until=whole[rule],
                        run_id=None,
                        updated_at=utcnow(),
                    )
                )
        except IntegrityError:
            continue  # another replica registered it first


def mark_shard_covered(engine: Engine, pairs: Iterable[Pair], at: dt.datetime, run_id: str) -> None:
    """Record that every fire time up to `at` of these (rule, shard) pairs has been run; the
    mark only moves forward."""
    with engine.begin() as connection:
        for rule, shard in pairs:
            key = (shard_schedule.c.rule == rule) & (shard_schedule.c.shard == shard)
            values = {"covered_until": at, "run_id": run_id, "updated_at": utcnow()}
            row = connection.execute(
                select(shard_schedule.c.covered_until).where(key).with_for_update()
            ).first()
            if row is None:
                connection.execute(insert(shard_schedule).values(rule=rule, shard=shard, **values))
            elif (as_utc(row[0]) or at) < at:
                connection.execute(update(shard_schedule).where(key).values(**values))


__all__ = [
    "Pair",
    "due_rules",
    "fires",
    "mark_covered",
    "mark_shard_covered",
    "next_due",
    "next_fire",
    "read_covered",
    "read_shard_covered",
    "register",
    "register_shards",
    "rule_schedules",
]
