"""The corrections that change what a rule writes hold on every SQL backend, not only on the
demo's SQLite: 24SevenOffice's usage patterns lose the link to their account (a nullable
foreign key set to NULL) on SQLite, DuckDB, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from sqlalchemy import text

from retention import demodata
from retention.catalog import pack_text
from retention.config import load_config
from retention.executor import Executor
from retention.testing import FixedClock

from ..conftest import Database
from .conftest import NOW, policy_says


def test_usage_patterns_lose_their_account_link_on_every_backend(
    db: Database, tmp_path: Path
) -> None:
    """Usage patterns for development, without identifying the user: on each backend a live run
    sets the IP and the account link of every usage row to NULL, except the rows of an account
    under a legal hold, and a second run finds nothing left to do."""
    policy_says(
        "24sevenoffice",
        "This usage is performed without identifying the individual user of the 24SevenOffice "
        "Service.",
    )
    metadata, tables = demodata.define_tables(["usage_logs"])
    metadata.create_all(db.engine)
    demodata.write_rows(db.engine, tables, demodata.build_rows(["usage_logs"], NOW, seed=7))
    pack = yaml.safe_load(pack_text("24sevenoffice"))
    pack["rules"] = [r for r in pack["rules"] if r["id"] == "24sevenoffice.usage-logs.de-identify"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(pack, sort_keys=False))
    hold = {"id": "h", "active": True, "reason": "dispute", "subjects": {"account": [106]}}
    (tmp_path / "holds.yaml").write_text(yaml.safe_dump({"holds": [hold]}))
    config = {
        "state_db": f"sqlite:///{tmp_path / 'state.db'}",
        "rules": [str(tmp_path / "rules.yaml")],
        "holds": str(tmp_path / "holds.yaml"),
        "timezone": "UTC",
        "hmac_key": "retention-demo-key-not-a-secret",
        "limits": {"max_fraction": 1.0},
        "stores": {"app": {"kind": "sql", "url": db.url}},
        "subjects": {"account": demodata.subject_config()},
        "datasets": {"usage_events": demodata.dataset_config("usage_logs", {"account"})},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    settings = load_config(tmp_path / "config.yaml")
    moment = NOW + dt.timedelta(days=1)
    first = Executor(settings, now=moment, live=True, clock=FixedClock(moment)).run()
    with db.engine.connect() as connection:
        linked = connection.execute(
            text("SELECT DISTINCT account_id FROM usage_events WHERE account_id IS NOT NULL")
        ).all()
        with_ip = connection.execute(
            text("SELECT count(*) FROM usage_events WHERE ip IS NOT NULL AND account_id IS NULL")
        ).scalar_one()
    assert first.as_dict()["totals"]["acted"] > 0
    assert linked == [(106,)], "only the held account's patterns stay linked"
    assert with_ip == 0
    second = Executor(settings, now=moment, live=True, clock=FixedClock(moment)).run()
    assert second.as_dict()["totals"]["acted"] == 0
