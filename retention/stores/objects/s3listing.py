"""Listing a big prefix of an unversioned bucket on several threads, split by what lies below it.

A ListObjectsV2 listing is one request after another, 1,000 keys a round trip. A dataset larger
than one page is listed from its first page; then one delimited listing of its prefix (what lies
directly below it: folders and keys) names the prefixes the rest is split into, the shortest
that make at least as many parts as there are threads, and each part is listed on a thread of
its own. The parts are prefix-free and cover every folder and key the delimited listing named,
so no key is listed twice and none that existed then is missed (a key written since under a
folder that did not exist then is, as a sequential listing misses a key written behind its
position). Pages come in the order the threads finish them, at most a few waiting at a time:
memory does not grow with the bucket. A top level the delimited listing cannot name in a few
pages, or that holds keys rather than folders, is listed as one listing, as is a versioned
bucket (a key's versions must stay together: :meth:`.S3Store._version_pages`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
DISCOVERY_PAGES = 10
"""At most this many pages of the delimited listing (10,000 folders) before one listing is
used instead."""
MAX_PARTS_PER_THREAD = 8
"""A split into more parts than this many per thread costs more requests than it saves."""
_POLL = 0.05  # seconds a blocked thread waits before it looks whether the listing was dropped


@dataclass(frozen=True)
class Part:
    """Keys under `prefix` (after `start_after`, when given) to list on one thread."""

    prefix: str
    start_after: str | None = None


def top_level(
    list_page: Callable[..., dict[str, Any]], prefix: str, page_size: int
) -> list[str] | None:
    """The folders (``.../``) and keys directly below `prefix`, or None when they do not fit
    in :data:`DISCOVERY_PAGES` pages or more than one page of them are keys (a flat prefix:
    naming them is listing them)."""
    found: list[str] = []
    keys = 0
    token: str | None = None
    for _ in range(DISCOVERY_PAGES):
        params: dict[str, Any] = {"Prefix": prefix, "Delimiter": "/", "MaxKeys": page_size}
        if token is not None:
            params["ContinuationToken"] = token
        response = list_page(**params)
        found += [p["Prefix"] for p in response.get("CommonPrefixes", [])]
        contents = [item["Key"] for item in response.get("Contents", [])]
        keys += len(contents)
        found += contents
        if keys > page_size:
            return None
        if not response.get("IsTruncated"):
            return found
        token = response.get("NextContinuationToken")
        if token is None:
            return None
    return None


def parts(entries: Iterable[str], prefix: str, after: str, threads: int) -> list[Part]:
    """Prefix-free parts covering every entry (folder or key below `prefix`) that may hold a
    key after `after` (the last key listed so far), split at the shortest depth that gives
    `threads` parts; fewer than two parts when the entries do not split."""
    rest = sorted(e for e in entries if not _before(e, after))
    if not rest:
        return []
    chosen: list[str] = []
    longest = max(len(e) for e in rest) - len(prefix)
    for depth in range(1, longest + 1):
        found = prefix_free({e[: len(prefix) + depth] for e in rest})
        if len(found) > threads * MAX_PARTS_PER_THREAD:
            break
        chosen = found
        if len(found) >= threads:
            break
    if len(chosen) < 2:
        return []
    return [Part(p, after if after.startswith(p) else None) for p in chosen]


def _before(entry: str, after: str) -> bool:
    """Whether every key `entry` stands for (itself, or the keys under a folder) is at or
    before `after`."""
    if entry.endswith("/"):
        return entry < after and not after.startswith(entry)
    return entry <= after


def prefix_free(prefixes: Iterable[str]) -> list[str]:
    """`prefixes` less those that start with another one of them (listed by it), sorted."""
    kept: list[str] = []
    for candidate in sorted(prefixes):
        # sorted, a prefix comes right before everything that starts with it
        if kept and candidate.startswith(kept[-1]):
            continue
        kept.append(candidate)
    return kept


def concurrently(streams: Sequence[Callable[[], Iterator[T]]], threads: int) -> Iterator[T]:
    """The items of every stream, each stream read on one of `threads` threads, in the order
    they come; at most `threads` items wait to be taken. An error of a stream is raised here;
    when the caller stops early the threads stop after the request they are in."""
    waiting: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=threads)
    dropped = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not dropped.is_set():
            try:
                waiting.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def read(stream: Callable[[], Iterator[T]]) -> None:
        try:
            for item in stream():
                if not put(("item", item)):
                    return
        except BaseException as exc:  # handed to the caller, whatever it is
            put(("error", exc))
            return
        put(("done", None))

    pool = ThreadPoolExecutor(threads, thread_name_prefix="s3-listing")
    try:
        for stream in streams:
            pool.submit(read, stream)
        left = len(streams)
        while left:
            kind, value = waiting.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                left -= 1
    finally:
        dropped.set()
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["Part", "concurrently", "parts", "prefix_free", "top_level"]
