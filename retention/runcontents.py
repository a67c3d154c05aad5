"""What a run applied, kept content-addressed in the state DB: `retention audit rules RUN`.

At its start a run stores the text of every rule pack it loaded (exactly as read), of the holds
file in force, and its settings as JSON (secrets are never dumped: they read ``**********``);
each text once, by its SHA-256 (``retention_contents``), and the run's list of them in order
(``retention_run_contents``), in the transaction that writes the run's row and start entry.
Reading them back checks every text against its digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select

from .config import Config
from .errors import AuditError
from .statetables import contents, run_contents
from .yamlfile import read_text


@dataclass(frozen=True)
class Applied:
    """One text a run applied: a rule pack, the holds file or the settings."""

    kind: str  # rules | holds | settings
    name: str
    digest: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "digest": self.digest, "text": self.text}


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def applied_by(config: Config) -> list[tuple[str, str, str]]:
    """(kind, name, text) of what a run of `config` applies: its rule packs as loaded, the
    holds file as it reads now, the settings without secrets."""
    found = [("rules", name, text) for name, text in config.sources]
    if config.holds_path is not None:
        found.append(("holds", str(config.holds_path), read_text(config.holds_path)))
    settings = json.dumps(config.settings.model_dump(mode="json"), sort_keys=True, indent=2)
    found.append(("settings", str(config.path or "environment"), settings + "\n"))
    return found


def record(connection: Connection, run_id: str, config: Config) -> None:
    """Store what run `run_id` applies, inside the caller's state-DB transaction."""
    for position, (kind, name, text) in enumerate(applied_by(config)):
        digest = digest_of(text)
        known = connection.execute(
            select(contents.c.digest).where(contents.c.digest == digest)
        ).first()
        if known is None:
            connection.execute(insert(contents).values(digest=digest, body=text))
        connection.execute(
            insert(run_contents).values(
                run_id=run_id, position=position, kind=kind, name=name, digest=digest
            )
        )


def applied(engine: Engine, run_id: str) -> list[Applied]:
    """What run `run_id` applied, in order; AuditError when a text no longer matches its digest
    (it was edited in the state DB)."""
    query = (
        select(run_contents.c.kind, run_contents.c.name, run_contents.c.digest, contents.c.body)
        .select_from(run_contents.outerjoin(contents, contents.c.digest == run_contents.c.digest))
        .where(run_contents.c.run_id == run_id)
        .order_by(run_contents.c.position)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    found = []
    for kind, name, digest, body in rows:
        if body is None or digest_of(body) != digest:
            raise AuditError(f"run {run_id}: the stored text of {name} does not match its digest")
        found.append(Applied(kind, name, digest, body))
    return found


__all__ = ["Applied", "applied", "applied_by", "digest_of", "record"]
