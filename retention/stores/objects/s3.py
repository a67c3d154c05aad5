"""The S3 store: a bucket on AWS or any S3-compatible endpoint, through boto3.

Listing streams the paginator (1,000 keys a page); past its first page an unversioned bucket's
listing is split across the prefixes below the dataset's and read on ``max_concurrency`` threads
(:mod:`.s3listing`). On an unversioned bucket a record is a key and a delete is one
DeleteObjects entry. On a versioned bucket (versioning enabled or
suspended, and every Object Lock bucket) a record is still a key, but deleting it means
deleting every version and delete marker of that key, by version id, so no copy of the data is
left behind a new delete marker; ``record.created`` is the LastModified of the key's newest
version that holds data. Deletes go out in DeleteObjects batches of at most 1,000 entries,
several in flight at once (``max_concurrency``); botocore retries whole requests on SlowDown
and 5xx with backoff (adaptive mode), and per-key transient errors are retried here. Every
per-key error is reported and audited, never ignored.

Object Lock: a version under retention (a mode and a retain-until date still to come) or with a
legal hold ON cannot be deleted; its key counts as *blocked by object lock* in the plan and the
audit, and none of its versions is deleted. A lock that appears between the check and the
delete comes back as a per-key AccessDenied and is reported the same way.

With ``mirror_holds: true`` the objects covered by an active retention hold get an S3 legal
hold, and lose it when the hold is released (see :mod:`retention.stores.s3holds`).
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import boto3  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from botocore.utils import parse_timestamp  # type: ignore[import-untyped]

from ...datasets import Dataset, SubjectType
from ...errors import StoreError
from ...settings import S3StoreConfig, Settings
from ...templates import KeyTemplate
from ...timemath import parse_stored
from ..base import Enforcement, SubjectSource
from .quarantine import Entry, Kept, PutBack, area, hidden
from .records import PAGE_SIZE, DeleteResult, ObjectRecord, Version
from .s3listing import Part, concurrently, parts, top_level
from .store import ObjectStore

T = TypeVar("T")
_TRANSIENT = {"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout"}
_GONE = {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}
_KEY_RETRIES = 4


class S3Store(ObjectStore):
    """One bucket."""

    kind = "s3"

    def __init__(
        self,
        name: str,
        config: S3StoreConfig,
        settings: Settings | None = None,
        subject_sources: Callable[[SubjectType], SubjectSource] | None = None,
    ) -> None:
        super().__init__(name, config, settings, subject_sources)
        store = config
        self.bucket = store.bucket
        self.concurrency = store.max_concurrency
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._versioned: bool | None = None
        self._locked: bool | None = None
        self.synced: set[str] = set()  # datasets whose holds are mirrored (a store lives one run)

    # -- connection --------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.config)
        return self._client

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"s3-{self.name}")
        return self._pool

    def call(self, operation: str, **params: Any) -> Any:
        """One S3 request; a failure of the whole request is a StoreError."""

        try:
            return getattr(self.client, operation)(**params)
        except ClientError as exc:
            raise StoreError(f"{operation}: {_client_error(exc)}", store=self.name) from None
        except BotoCoreError as exc:
            raise StoreError(f"{operation}: {exc}", store=self.name) from None

    def map(self, function: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        """`function` over `items` on the store's threads (at most max_concurrency at once)."""
        items = list(items)
        if len(items) <= 1:
            return [function(item) for item in items]
        return list(self.pool.map(function, items))

    def dispose(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the bucket --------------------------------------------------------------------------

    @property
    def versioned(self) -> bool:
        if self._versioned is None:
            status = self.call("get_bucket_versioning", Bucket=self.bucket).get("Status")
            self._versioned = status in ("Enabled", "Suspended") or self.locked
        return self._versioned

    @property
    def locked(self) -> bool:
        """Whether Object Lock is enabled on the bucket."""
        if self._locked is None:
            try:
                found = self.client.get_object_lock_configuration(Bucket=self.bucket)
                lock = found.get("ObjectLockConfiguration", {})
                self._locked = lock.get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _code(exc) not in ("ObjectLockConfigurationNotFoundError", "NotImplemented"):
                    raise StoreError(
                        f"get_object_lock_configuration: {_client_error(exc)}", store=self.name
                    ) from None
                self._locked = False
        return self._locked

    def mode(self, dataset: Dataset) -> str:
        if self.locked:
            return (
                "versioned bucket with Object Lock: every version and delete marker is deleted; "
                "a locked version blocks its key"
            )
        if self.versioned:
            return "versioned bucket: every version and delete marker of a key is deleted"
        return "unversioned bucket: one DeleteObjects entry per key"

    def template(self, dataset: Dataset) -> KeyTemplate:
        assert dataset.template is not None
        return dataset.template

    # -- listing -----------------------------------------------------------------------------

    def pages(self, dataset: Dataset, prefix: str | None = None) -> Iterator[list[ObjectRecord]]:
        template = self.template(dataset)
        listing_prefix = template.literal_prefix if prefix is None else prefix
        raw = self._version_pages if self.versioned else self._split_pages
        for page in raw(template, listing_prefix):
            if page:
                yield self._with_tags(dataset, page)

    def _paginate(
        self, operation: str, prefix: str, start_after: str | None = None
    ) -> Generator[dict[str, Any]]:

        paginator = self.client.get_paginator(operation)
        extra = {} if start_after is None else {"StartAfter": start_after}
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": PAGE_SIZE}, **extra
        )
        try:
            yield from pages
        except ClientError as exc:
            raise StoreError(f"{operation}: {_client_error(exc)}", store=self.name) from None
        except BotoCoreError as exc:
            raise StoreError(f"{operation}: {exc}", store=self.name) from None

    def _split_pages(self, template: KeyTemplate, prefix: str) -> Iterator[list[ObjectRecord]]:
        """The first page, then the rest on `max_concurrency` threads when it splits
        (:mod:`.s3listing`); pages in the order they come."""
        responses = self._paginate("list_objects_v2", prefix)
        first = next(responses, None)
        if first is None:
            return
        yield self._records(template, first)
        contents = first.get("Contents", [])
        if not first.get("IsTruncated"):
            return
        found = None
        if self.concurrency > 1 and contents:  # (a truncated page of no keys: go on as one)
            listed = functools.partial(self.call, "list_objects_v2", Bucket=self.bucket)
            entries = top_level(listed, prefix, PAGE_SIZE)
            if entries is not None:
                found = parts(entries, prefix, contents[-1]["Key"], self.concurrency)
        if not found:
            for response in responses:
                yield self._records(template, response)
            return
        responses.close()

        def part_pages(part: Part) -> Iterator[list[ObjectRecord]]:
            for response in self._paginate("list_objects_v2", part.prefix, part.start_after):
                yield self._records(template, response)

        streams = [functools.partial(part_pages, part) for part in found]
        yield from concurrently(streams, self.concurrency)

    def _object_pages(
        self, template: KeyTemplate | None, prefix: str
    ) -> Iterator[list[ObjectRecord]]:
        for response in self._paginate("list_objects_v2", prefix):
            yield self._records(template, response)

    def _records(
        self, template: KeyTemplate | None, response: dict[str, Any]
    ) -> list[ObjectRecord]:
        """The dataset's records among one ListObjectsV2 page."""
        page = []
        for item in response.get("Contents", []):
            key = item["Key"]
            if not _wanted(template, key):
                continue
            modified = _utc(item["LastModified"])
            page.append(ObjectRecord(key, modified, modified, _subject(template, key)))
        return page

    def _version_pages(
        self, template: KeyTemplate | None, prefix: str
    ) -> Iterator[list[ObjectRecord]]:
        """Keys with all their versions; a key whose versions span two pages is held back."""
        carry: list[dict[str, Any]] = []
        for response in self._paginate("list_object_versions", prefix):
            items = [{**v, "marker": False} for v in response.get("Versions", [])]
            items += [{**m, "marker": True} for m in response.get("DeleteMarkers", [])]
            items.sort(key=lambda item: item["Key"])
            items = carry + items
            carry = []
            if response.get("IsTruncated") and items:
                last = items[-1]["Key"]
                carry = [i for i in items if i["Key"] == last]
                items = [i for i in items if i["Key"] != last]
            yield self._group(template, items)
        if carry:
            yield self._group(template, carry)

    def _group(
        self, template: KeyTemplate | None, items: list[dict[str, Any]]
    ) -> list[ObjectRecord]:
        page: list[ObjectRecord] = []
        start = 0
        while start < len(items):
            key = items[start]["Key"]
            end = start
            while end < len(items) and items[end]["Key"] == key:
                end += 1
            group = sorted(
                items[start:end],
                key=lambda i: (_utc(i["LastModified"]), i.get("IsLatest", False)),
                reverse=True,
            )
            start = end
            if not _wanted(template, key):
                continue
            data = [i for i in group if not i["marker"]]
            newest = data[0] if data else group[0]
            modified = _utc(newest["LastModified"])
            versions = tuple(Version(i["VersionId"], i["marker"]) for i in group)
            subject = _subject(template, key)
            page.append(ObjectRecord(key, modified, modified, subject, versions=versions))
        return page

    def _with_tags(self, dataset: Dataset, page: list[ObjectRecord]) -> list[ObjectRecord]:
        """`record.created` from the dataset's tag or metadata key, where it names one."""
        ds = dataset.config
        if ds.tag is None:
            return page
        zone = dataset.zone
        tag = ds.tag

        def created(record: ObjectRecord) -> ObjectRecord:
            version = next((v.id for v in record.versions if not v.marker), None)
            if self.versioned and version is None:
                return record  # only delete markers: nothing to read a tag from
            value = self._tag_value(record.key, version, tag)
            if value is None:
                return record
            start = parse_stored(value, zone)
            return ObjectRecord(
                record.key,
                record.modified,
                start,
                record.subject,
                versions=record.versions,
                clock_unreadable=start is None,
            )

        return self.map(created, page)

    def _tag_value(self, key: str, version: str | None, tag: str) -> str | None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version is not None:
            params["VersionId"] = version
        if tag.startswith("metadata:"):
            head = self.quiet("head_object", **params)
            meta = head.get("Metadata", {}) if head else {}
            value = meta.get(tag.removeprefix("metadata:").lower())
            return None if value is None else str(value)
        found = self.quiet("get_object_tagging", **params)
        for item in (found or {}).get("TagSet", []):
            if item["Key"] == tag:
                return str(item["Value"])
        return None

    def quiet(self, operation: str, **params: Any) -> dict[str, Any] | None:
        """A per-object read; None when the object is gone (deleted since it was listed)."""

        try:
            result: dict[str, Any] = getattr(self.client, operation)(**params)
            return result
        except ClientError as exc:
            if _code(exc) in _GONE:
                return None
            raise StoreError(f"{operation}: {_client_error(exc)}", store=self.name) from None

    # -- object lock -------------------------------------------------------------------------

    def protected(self, records: Sequence[ObjectRecord], now: dt.datetime) -> dict[str, str]:
        """Keys with a version under Object Lock retention or legal hold, and why."""
        if not records or not self.locked:
            return {}
        checks = [(r.key, v.id) for r in records for v in r.versions if not v.marker]
        reasons = self.map(lambda check: self.lock_of(check[0], check[1], now), checks)
        found: dict[str, str] = {}
        for (key, _), reason in zip(checks, reasons, strict=True):
            if reason is not None and key not in found:
                found[key] = reason
        return found

    def lock_of(self, key: str, version: str | None, now: dt.datetime) -> str | None:
        """Why one version cannot be deleted now (legal hold / retention), or None."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version is not None:
            params["VersionId"] = version
        head = self.quiet("head_object", **params)
        if head is None:
            return None
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            return "legal hold"
        until = head.get("ObjectLockRetainUntilDate")
        if head.get("ObjectLockMode") and until is not None and _utc(until) > now:
            mode = str(head["ObjectLockMode"]).lower()
            return f"{mode} retention until {_utc(until):%Y-%m-%d}"
        return None

    # -- deleting ----------------------------------------------------------------------------

    def submit(
        self, dataset: Dataset, records: Sequence[ObjectRecord], kept: Kept | None = None
    ) -> Future[DeleteResult]:
        return self.pool.submit(self.remove, dataset, records, kept)

    def delete(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        return self.delete_versions(records)

    def _delete_chunk(self, chunk: list[tuple[str, str | None]]) -> dict[str, str]:
        """One DeleteObjects request (retrying transient per-key errors); key -> error."""

        problems: dict[str, str] = {}
        pending = chunk
        for attempt in range(_KEY_RETRIES):
            objects = [{"Key": k, **({"VersionId": v} if v else {})} for k, v in pending]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
            except ClientError as exc:
                return {key: _client_error(exc) for key, _ in pending}
            except BotoCoreError as exc:
                raise StoreError(f"delete_objects: {exc}", store=self.name) from None
            retry = []
            for error in response.get("Errors", []):
                code = error.get("Code", "Error")
                entry = (error["Key"], error.get("VersionId") or None)
                if code in _TRANSIENT and attempt < _KEY_RETRIES - 1:
                    retry.append(entry)
                else:
                    problems[error["Key"]] = f"{code}: {error.get('Message', '')}".strip()
            if not retry:
                break
            pending = retry
            time.sleep(0.2 * 2**attempt)
        return problems

    def _is_lock(self, problem: str) -> bool:
        return problem.startswith("AccessDenied") and "object lock" in problem.lower()

    # -- the quarantine area ------------------------------------------------------------------

    def keep(self, dataset: Dataset, records: Sequence[ObjectRecord], kept: Kept) -> DeleteResult:
        """Each object's data copied into the area first, then the batch deleted as any
        delete is: only the keys whose copy succeeded. A crash between the two leaves both
        copies; settling the batch removes the area's (:meth:`unkeep`)."""
        failed: dict[str, str] = {}

        def copy(record: ObjectRecord) -> str | None:
            version = _data_version(record)
            if self.versioned and version is None:
                return None  # only delete markers: no data to keep
            source: dict[str, Any] = {"Bucket": self.bucket, "Key": record.key}
            if version is not None:
                source["VersionId"] = version
            try:
                self.client.copy_object(
                    Bucket=self.bucket, Key=kept.path(record.key), CopySource=source
                )
            except ClientError as exc:
                return _client_error(exc)
            except BotoCoreError as exc:
                raise StoreError(f"copy_object: {exc}", store=self.name) from None
            return None

        for record, problem in zip(records, self.map(copy, records), strict=True):
            if problem is not None:
                failed[record.key] = problem
        result = self.delete(dataset, [r for r in records if r.key not in failed])
        kept_back = [*result.vetoed, *result.failed]
        if kept_back:  # still in the dataset: their copies go (a locked key stays whole)
            self.unkeep(kept, kept_back, {r.key: _data_version(r) for r in records})
        return DeleteResult(result.deleted, result.vetoed, {**result.failed, **failed})

    def unkeep(self, kept: Kept, keys: Sequence[str], copied: dict[str, str | None]) -> None:
        """The area's copy of each key still there goes, when it is the same data as the key's
        copied version (same ETag): what the dataset still has is never lost, and a copy of
        data the dataset no longer has is left for the window."""

        def undo(key: str) -> None:
            params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
            if copied.get(key):
                params["VersionId"] = copied[key]
            original = self.quiet("head_object", **params)
            copy = self.quiet("head_object", Bucket=self.bucket, Key=kept.path(key))
            if original is None or copy is None or original["ETag"] != copy["ETag"]:
                return
            path = kept.path(key)
            raw = self._version_pages if self.versioned else self._object_pages
            found = [r for page in raw(None, path) for r in page if r.key == path]
            if found:
                self.delete_versions(found)

        self.map(undo, keys)

    def quarantine_pages(
        self, dataset: Dataset, run_id: str | None = None
    ) -> Iterator[list[ObjectRecord]]:
        raw = self._version_pages if self.versioned else self._object_pages
        for page in raw(None, area(dataset.name, run_id)):
            if page:
                yield page

    def purge_kept(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        return self.delete_versions(records)

    def put_back(self, dataset: Dataset, entries: Sequence[Entry]) -> PutBack:
        """Each object copied back under its own key unless one exists there again (then
        reported: left in the area), then removed from the area. A key that holds the same
        data as its quarantined copy (same ETag: a restore interrupted after its copy) only
        has the area's copy removed."""

        def back(entry: Entry) -> str:
            version = _data_version(entry.record)
            source: dict[str, Any] = {"Bucket": self.bucket, "Key": entry.path}
            if version is not None:
                source["VersionId"] = version
            there = self.quiet("head_object", Bucket=self.bucket, Key=entry.key)
            if there is not None:
                mine = self.quiet("head_object", **source)
                same = mine is not None and mine["ETag"] == there["ETag"]
                return "restored" if same else "conflict"
            try:
                self.client.copy_object(Bucket=self.bucket, Key=entry.key, CopySource=source)
            except ClientError as exc:
                return _client_error(exc)
            except BotoCoreError as exc:
                raise StoreError(f"copy_object: {exc}", store=self.name) from None
            return "restored"

        outcomes = list(zip(entries, self.map(back, entries), strict=True))
        restored = [e for e, o in outcomes if o == "restored"]
        conflicts = tuple(e.key for e, o in outcomes if o == "conflict")
        failed = {e.key: str(o) for e, o in outcomes if o not in ("restored", "conflict")}
        if restored:
            self.delete_versions([e.record for e in restored])  # what stays is found again
        return PutBack(tuple(e.key for e in restored), conflicts, failed)

    def kept_present(self, dataset: Dataset, paths: Sequence[str]) -> set[str]:
        found = self.map(lambda p: self.quiet("head_object", Bucket=self.bucket, Key=p), paths)
        return {p for p, head in zip(paths, found, strict=True) if head is not None}

    def delete_versions(self, records: Sequence[ObjectRecord]) -> DeleteResult:
        """Delete listed objects with every version of them (no dataset's rules asked)."""
        entries = [(r.key, v.id) for r in records for v in r.versions]
        problems: dict[str, str] = {}
        for start in range(0, len(entries), PAGE_SIZE):
            problems.update(self._delete_chunk(entries[start : start + PAGE_SIZE]))
        locked = {k: p for k, p in problems.items() if self._is_lock(p)}
        failed = {k: p for k, p in problems.items() if k not in locked}
        deleted = tuple(r.key for r in records if r.key not in problems)
        return DeleteResult(deleted=deleted, vetoed=locked, failed=failed)

    # -- recovery, explain, validate -------------------------------------------------------

    def absent(self, dataset: Dataset, entries: Sequence[Sequence[Any]]) -> list[str]:

        def gone(entry: Sequence[Any]) -> bool:
            params: dict[str, Any] = {"Bucket": self.bucket, "Key": entry[0]}
            if entry[1]:
                params["VersionId"] = entry[1]
            try:
                self.client.head_object(**params)
            except ClientError as exc:
                return _code(exc) in _GONE
            return False

        keys = [str(e[0]) for e in entries]
        results = self.map(gone, entries)
        present = {k for k, g in zip(keys, results, strict=True) if not g}
        return [k for k in dict.fromkeys(keys) if k not in present]

    def head(self, dataset: Dataset, key: str) -> ObjectRecord | None:
        template = self.template(dataset)
        if template.match(key) is None:
            return None
        if self.versioned:
            pages = self._version_pages(template, key)
            found = [r for page in pages for r in page if r.key == key]
            return self._with_tags(dataset, found)[0] if found else None
        head = self.quiet("head_object", Bucket=self.bucket, Key=key)
        if head is None:
            return None
        modified = _utc(head["LastModified"])
        record = ObjectRecord(key, modified, modified, template.subject_of(key))
        return self._with_tags(dataset, [record])[0]

    def reach(self, dataset: Dataset | None = None) -> list[str]:
        try:
            if dataset is None:
                try:
                    self.client.head_bucket(Bucket=self.bucket)
                except ClientError as exc:
                    code = _code(exc)
                    if code in ("404", "NoSuchBucket", "NotFound"):
                        return [f"bucket {self.bucket!r} does not exist"]
                    if code in ("403", "AccessDenied", "Forbidden"):
                        return [f"bucket {self.bucket!r}: access denied to these credentials"]
                    return [f"bucket {self.bucket!r}: {_client_error(exc)}"]
                except BotoCoreError as exc:
                    return [f"bucket {self.bucket!r} cannot be reached: {exc}"]
                if self.config.mirror_holds and not self.locked:
                    return [
                        f"mirror_holds needs Object Lock on bucket {self.bucket!r} "
                        "(S3 legal holds exist only there)"
                    ]
                return []
            prefix = self.template(dataset).literal_prefix
            self.call("list_objects_v2", Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        except StoreError as exc:
            return [str(exc)]
        return []

    def sync_holds(self, dataset: Dataset, run: Enforcement) -> list[str]:
        """With ``mirror_holds``, once per dataset and run (:mod:`.s3holds`); remarks."""
        if not self.config.mirror_holds or dataset.name in self.synced:
            return []
        self.synced.add(dataset.name)
        from .s3holds import mirror_holds

        return mirror_holds(self, dataset, run)


def make_client(settings: S3StoreConfig) -> Any:
    """A boto3 S3 client: explicit credentials if configured, else the standard AWS chain."""

    credentials: dict[str, str] = {}
    if settings.access_key_id is not None and settings.secret_access_key is not None:
        credentials = {
            "aws_access_key_id": settings.access_key_id.get_secret_value(),
            "aws_secret_access_key": settings.secret_access_key.get_secret_value(),
        }
    core = botocore.session.Session()
    # a listing page carries 1,000 LastModified values: botocore's dateutil parse of each was
    # a third of the client's time on a listing
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
    session = boto3.session.Session(
        region_name=settings.region, botocore_session=core, **credentials
    )
    config = BotoConfig(
        retries={"mode": "adaptive", "max_attempts": settings.max_attempts},
        # deletes and a split listing each have max_concurrency threads
        max_pool_connections=2 * settings.max_concurrency + 4,
        connect_timeout=10,
        read_timeout=60,
        # S3-compatible endpoints (MinIO, Ceph, moto) serve buckets by path
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return session.client("s3", endpoint_url=settings.endpoint_url, config=config)


def _timestamp(value: Any) -> dt.datetime:
    """A timestamp of a response: S3's ISO 8601 (``2026-06-01T00:00:00.000Z``) read directly,
    anything else (HTTP dates, epoch numbers) the way botocore reads it."""
    if isinstance(value, str) and value.endswith("Z"):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    parsed: dt.datetime = parse_timestamp(value)
    return parsed


def _wanted(template: KeyTemplate | None, key: str) -> bool:
    """A listed key is a record of the dataset `template` describes (None: the quarantine
    area's listing, where every key is wanted); the area is never a dataset's."""
    if template is None:
        return True
    return not hidden(key) and template.match(key) is not None


def _subject(template: KeyTemplate | None, key: str) -> str | None:
    return None if template is None else template.subject_of(key)


def _data_version(record: ObjectRecord) -> str | None:
    """The newest version of `record` that holds data (None: unversioned, or only markers)."""
    return next((v.id for v in record.versions if not v.marker), None)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _client_error(exc: Any) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()


__all__ = ["S3Store", "make_client"]
