"""`retention demo`: an embedded demo of every shipped rule pack, built from the package alone.

For each company whose privacy policy ships as a pack, :func:`build_demo` writes a directory::

    <DIR>/<pack>/config.yaml     the configuration, ready for plan, explain, holds and run
    <DIR>/<pack>/holds.yaml      one active legal hold and one released hold
    <DIR>/<pack>/rules/<pack>.yaml   a copy of the shipped pack
    <DIR>/<pack>/app.db          SQLite: accounts and one table per data category of the pack
    <DIR>/<pack>/files/          a filesystem store: backup archives (packs with a backup rule)

The data (see :mod:`retention.demodata`) is relative to `now` and seeded, so the same `now`
gives the same demo, and its plan always has records due, held, blocked, overdue and not yet
due. Re-running rebuilds the company directories; a directory that is not a demo (no marker
file) is never touched.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, event

from . import demodata
from .catalog import pack_text, shipped_packs
from .errors import ConfigError
from .rules import RulePack

MARKER = ".retention-demo"
DEFAULT_DIRECTORY = Path("retention-demo")
DEMO_HMAC_KEY = "retention-demo-key-not-a-secret"

# The open matter each company's legal team put on hold (our words, after the policies).
_HOLD_REASONS = {
    "24seven": "Dispute with the client over its cancelled subscription",
    "24sessions": "Legal claim: the customer contests its last invoices",
    "247": "Court order to preserve the Client's Platform data",
    "24sevenoffice": "Open legal issue about the customer's data after termination (§12)",
    "com7": "Subpoena received: preserve the Subscriber's records",
}


@dataclass(frozen=True)
class DemoCompany:
    """One company's demo: where it is, and a record worth explaining."""

    pack: str
    policy: str
    directory: Path
    config: Path
    spotlight: tuple[str, str]
    spotlight_why: str


def build_demo(
    directory: Path, now: dt.datetime, packs: Sequence[str] | None = None
) -> list[DemoCompany]:
    """Build (or rebuild) the demo of every shipped pack, or of `packs`, under `directory`."""
    names = list(packs) if packs is not None else sorted(shipped_packs(), key=_document)
    _claim(directory)
    return [build_company(directory / name, name, now) for name in names]


def _claim(directory: Path) -> None:
    """Make `directory` the demo's, refusing any directory that holds something else."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError("exists and is not a directory; choose another", file=str(directory))
    marker = directory / MARKER
    if directory.is_dir() and any(directory.iterdir()) and not marker.is_file():
        raise ConfigError(
            f"not empty and not a retention demo (no {MARKER} file): refusing to write into "
            "it; choose another directory",
            file=str(directory),
        )
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text("built by `retention demo`; safe to delete with the whole directory\n")


def build_company(directory: Path, pack: str, now: dt.datetime) -> DemoCompany:
    """One company's directory: database, config, holds and a copy of its pack."""
    text = pack_text(pack)
    policy = RulePack.model_validate(yaml.safe_load(text))
    categories = sorted({r.applies_to.category for r in policy.rules if r.applies_to.category})
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "rules").mkdir(parents=True)
    (directory / "rules" / f"{pack}.yaml").write_text(text, encoding="utf-8")
    _write_database(directory / "app.db", categories, now, seed=_seed(pack))
    _write_yaml(directory / "holds.yaml", _holds(pack, now), _HOLDS_HEADER)
    config = _config(pack, categories, policy)
    files = _file_stores(directory, categories, now)
    config["stores"].update(files["stores"])
    config["datasets"].update(files["datasets"])
    _write_yaml(directory / "config.yaml", config, _CONFIG_HEADER.format(policy=policy.policy.name))
    spotlight = (demodata.CATEGORIES["account_profile"].table, str(demodata.HELD_ACCOUNT))
    return DemoCompany(
        pack=pack,
        policy=policy.policy.name,
        directory=directory,
        config=directory / "config.yaml",
        spotlight=spotlight,
        spotlight_why="kept: held by an open legal matter",
    )


def _document(pack: str) -> str:
    """The seed document a pack was written from (``003_….txt``): the demo's order."""
    policy = RulePack.model_validate(yaml.safe_load(pack_text(pack))).policy
    return policy.document or pack


def _seed(pack: str) -> int:
    return sum(ord(c) * (i + 1) for i, c in enumerate(pack))


def _write_database(path: Path, categories: list[str], now: dt.datetime, seed: int) -> None:
    metadata, tables = demodata.define_tables(categories)
    engine = create_engine(f"sqlite:///{path}")
    # a file built in one go and rebuilt from scratch if interrupted: no need to sync each step
    event.listen(engine, "connect", _fast_build)
    try:
        metadata.create_all(engine)
        demodata.write_rows(engine, tables, demodata.build_rows(categories, now, seed))
    finally:
        engine.dispose()


def _fast_build(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA synchronous = OFF")
    dbapi_connection.execute("PRAGMA journal_mode = MEMORY")


def _file_stores(directory: Path, categories: list[str], now: dt.datetime) -> dict[str, Any]:
    """The demo's directory of files: backup archives under ``files/backups/``, one a week.

    Returns the ``stores`` and ``datasets`` entries to add to the config (none when the pack
    has no backup rule). A file's clock is its modification time, set relative to `now`.
    """
    if "backups" not in categories:
        return {"stores": {}, "datasets": {}}
    folder = directory / "files" / "backups"
    folder.mkdir(parents=True)
    for age in range(3, 150, 7):
        moment = now - dt.timedelta(days=age)
        path = folder / f"nightly-{moment:%Y-%m-%d}.tar.gz"
        path.write_bytes(b"demo backup archive\n")
        os.utime(path, (moment.timestamp(), moment.timestamp()))
    return {
        "stores": {"files": {"kind": "filesystem", "root": "files"}},
        "datasets": {
            "backup_files": {"store": "files", "glob": "backups/*.tar.gz", "category": "backups"}
        },
    }


def _config(pack: str, categories: list[str], policy: RulePack) -> dict[str, Any]:
    anonymized: dict[str, set[str]] = {c: set() for c in categories}
    for rule in policy.rules:
        if rule.applies_to.category in anonymized:
            anonymized[rule.applies_to.category].update(rule.anonymize)
    return {
        "state_db": "sqlite:///state.db",
        "rules": [f"rules/{pack}.yaml"],
        "holds": "holds.yaml",
        "dry_run": True,
        "timezone": "UTC",
        "hmac_key": DEMO_HMAC_KEY,
        "audit": {"keys": "hmac"},
        "limits": {"max_fraction": 1.0},
        "stores": {"app": {"kind": "sql", "url": "sqlite:///app.db"}},
        "subjects": {"account": demodata.subject_config()},
        "datasets": {
            demodata.CATEGORIES[c].table: demodata.dataset_config(c, anonymized[c])
            for c in categories
        },
    }


def _holds(pack: str, now: dt.datetime) -> dict[str, Any]:
    today = now.astimezone(dt.UTC).date()
    return {
        "freeze": False,
        "holds": [
            {
                "id": f"legal-{today.year}-017",
                "active": True,
                "reason": _HOLD_REASONS.get(pack, "Open legal matter"),
                "subjects": {"account": [demodata.HELD_ACCOUNT]},
                "placed_by": "legal@example.com",
                "placed_on": today - dt.timedelta(days=90),
                "review_by": today + dt.timedelta(days=180),
            },
            {
                "id": f"legal-{today.year}-009",
                "active": False,
                "reason": "Dispute settled; the hold was released and the rules apply again",
                "subjects": {"account": [demodata.RELEASED_ACCOUNT]},
                "placed_by": "legal@example.com",
                "placed_on": today - dt.timedelta(days=150),
            },
        ],
    }


_CONFIG_HEADER = """\
# retention demo: {policy}
# Built by `retention demo`; rebuilt (and any changes lost) when it runs again.
# Paths are relative to this file. The data is made up and relative to the moment it was built.
#
# hmac_key: a demo value in plain sight. In production set RETENTION_HMAC_KEY instead.
# limits.max_fraction: 1.0 because the demo tables are tiny; keep the default (0.5) in production.
"""

_HOLDS_HEADER = """\
# Legal holds of the demo: owned by legal, toggled here without touching rules or code.
# Set `active: true` on the released hold, or `freeze: true`, then run `retention plan` again.
"""


def _write_yaml(path: Path, data: dict[str, Any], header: str) -> None:
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    path.write_text(header + body, encoding="utf-8")


__all__ = ["DEFAULT_DIRECTORY", "MARKER", "DemoCompany", "build_company", "build_demo"]
