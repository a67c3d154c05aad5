"""The kinds of store `retention` knows, and what each can do — as data, not as ``if kind ==``.

Every backend module declares nothing about itself elsewhere: this table names its class and
its :class:`Capabilities`, which the configuration checks (a dataset on a bucket has no
``where``), the planner, the executor and `explain` read instead of asking which kind a store
is. A new store is one backend module, its settings model, and one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Locator = Literal["table", "prefix", "glob"]


@dataclass(frozen=True)
class Capabilities:
    """What one kind of store can do and how its datasets are described.

    - ``locator``: the dataset field that says where its records are.
    - ``actions``: the destructive actions it can carry out.
    - ``where``: records have fields a rule's ``where`` can filter on.
    - ``cascade``: a delete can take child rows along, in one transaction.
    - ``declared_keys``: datasets name their primary key (else the object key is the record key).
    - ``record_clocks``: ``declared`` timestamps, or only ``created`` (LastModified, mtime).
    - ``subject_link``: a record names its subject in a ``column`` or in its key's ``template``.
    - ``subject_tables``: subject types' lifecycle tables can live here (joined in place).
    - ``tag_clock``: ``record.created`` can come from an object tag or metadata key.
    - ``vetoes``: the store's own protections, which no rule overrides (Object Lock, symlinks).
    - ``veto_label``: how a record kept by such a veto is reported.
    - ``max_batch``: the most records (entries) one batch can act on, if the store limits it.
    - ``recount_after_run``: what is left after a live run is counted afresh (a cheap count);
      else it is what the store reported it could not do (a second listing is not cheap).
    - ``probed_when_ready``: `/readyz` reaches it (a connection; a listing would not be cheap).
    - ``replay``: recorded deletes and anonymizations can be applied again (``replay``).
    - ``quarantine``: deleted records can be kept restorable for a while (``quarantine:``).
    - ``purges``: a delete (or anonymization) leaves the rows (their original values) in old
      files until a physical step removes them (lake tables: ``purge_after`` applies).
    """

    locator: Locator
    actions: frozenset[str]
    where: bool
    cascade: bool
    declared_keys: bool
    record_clocks: Literal["declared", "created"]
    subject_link: Literal["column", "template"]
    subject_tables: bool
    tag_clock: bool = False
    vetoes: tuple[str, ...] = ()
    veto_label: str = "refused"
    max_batch: int | None = None
    recount_after_run: bool = True
    probed_when_ready: bool = True
    quarantine: bool = False
    replay: bool = False
    purges: bool = False


@dataclass(frozen=True)
class Kind:
    """One kind of store: its backend class (``module:Class``, imported when used) and what
    it can do."""

    backend: str
    capabilities: Capabilities


SQL = Capabilities(
    locator="table",
    actions=frozenset({"delete", "anonymize"}),
    where=True,
    cascade=True,
    declared_keys=True,
    record_clocks="declared",
    subject_link="column",
    subject_tables=True,
    quarantine=True,
    replay=True,
)


def _objects(
    locator: Locator, vetoes: tuple[str, ...], veto_label: str, tag_clock: bool
) -> Capabilities:
    """Listed objects: keys are records, deleted in batches of at most 1,000 entries."""
    return Capabilities(
        locator=locator,
        actions=frozenset({"delete"}),
        where=False,
        cascade=False,
        declared_keys=False,
        record_clocks="created",
        subject_link="template",
        subject_tables=False,
        tag_clock=tag_clock,
        vetoes=vetoes,
        veto_label=veto_label,
        max_batch=1000,
        recount_after_run=False,
        probed_when_ready=False,
        quarantine=True,  # a quarantine area in the bucket or tree (``.retention-quarantine``)
        replay=True,
    )


# Lake tables: rows with declared columns, read as Arrow and deleted or anonymized by predicate,
# one table commit per batch, Delta and Iceberg alike; their subjects' lifecycle tables live in
# a SQL store.
DELTA = Capabilities(
    locator="table",
    actions=frozenset({"delete", "anonymize"}),
    where=False,
    cascade=False,
    declared_keys=True,
    record_clocks="declared",
    subject_link="column",
    subject_tables=False,
    probed_when_ready=False,
    purges=True,
)

KINDS: dict[str, Kind] = {
    "sql": Kind("retention.stores.sql:SqlStore", SQL),
    "s3": Kind(
        "retention.stores.objects.s3:S3Store",
        _objects("prefix", ("S3 Object Lock",), "blocked by object lock", tag_clock=True),
    ),
    "filesystem": Kind(
        "retention.stores.objects.filesystem:FilesystemStore",
        _objects("glob", ("symlinks", "paths outside the root"), "refused", tag_clock=False),
    ),
    "delta": Kind("retention.stores.lake.delta:DeltaStore", DELTA),
    "iceberg": Kind("retention.stores.lake.iceberg:IcebergStore", DELTA),
}


def capabilities(kind: str) -> Capabilities:
    """What a store of `kind` can do (a kind the settings model accepted is always here)."""
    return KINDS[kind].capabilities


__all__ = ["DELTA", "KINDS", "SQL", "Capabilities", "Kind", "Locator", "capabilities"]
