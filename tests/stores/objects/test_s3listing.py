"""Splitting an S3 listing across the prefixes below a dataset's: every key once, none missed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retention.stores.objects.s3listing import Part, concurrently, parts, prefix_free

PREFIX = "customers/"
# short names over a small alphabet with '/' and characters on both sides of it ('-' < '/' < '0')
names = st.text(alphabet="ab-/0", min_size=1, max_size=6)


def top_level(keys: set[str]) -> set[str]:
    """What a delimited listing of PREFIX names: each key's folder directly below it, or the
    key itself when it is directly below it."""
    found = set()
    for key in keys:
        rest = key[len(PREFIX) :]
        found.add(PREFIX + rest[: rest.index("/") + 1] if "/" in rest else key)
    return found


def listed(part: Part, keys: set[str]) -> set[str]:
    """What listing `part` returns from a bucket holding `keys`."""
    return {
        k
        for k in keys
        if k.startswith(part.prefix) and (part.start_after is None or k > part.start_after)
    }


@settings(max_examples=300, deadline=None)
@given(st.sets(names, min_size=1, max_size=40), st.data(), st.integers(1, 8))
def test_parts_cover_every_key_after_the_first_page_exactly_once(
    rests: set[str], data: st.DataObject, threads: int
) -> None:
    """Whatever the keys and wherever the first page ended, the parts list every key after it
    exactly once and no key up to it (that page has them)."""
    keys = {PREFIX + r for r in rests}
    after = data.draw(st.sampled_from(sorted(keys)))
    found = parts(top_level(keys), PREFIX, after, threads)
    if not found:
        return  # listed as one listing: nothing to check here
    assert len(found) >= 2
    assert len(found) <= max(threads, 2) * 8
    seen: list[str] = []
    for part in found:
        seen += listed(part, keys)
    assert sorted(seen) == sorted(k for k in keys if k > after)


@given(st.sets(st.text(alphabet="ab/", max_size=5)))
def test_prefix_free_keeps_what_lists_every_string_once(prefixes: set[str]) -> None:
    """No kept prefix starts with another, and every given one starts with a kept one."""
    kept = prefix_free(prefixes)
    assert all(not b.startswith(a) for a in kept for b in kept if a != b)
    assert all(any(p.startswith(k) for k in kept) for p in prefixes)


def test_parts_split_at_the_shortest_depth_that_gives_a_part_a_thread() -> None:
    """A thousand account folders split by their first digit, the first page's folder listed
    from where the page ended."""
    entries = {f"{PREFIX}{i}/" for i in range(1000)}
    found = parts(entries, PREFIX, f"{PREFIX}104/file-9", 4)
    assert found[0] == Part(f"{PREFIX}1", f"{PREFIX}104/file-9")
    assert [p.prefix for p in found[1:]] == [f"{PREFIX}{d}" for d in range(2, 10)]
    assert all(p.start_after is None for p in found[1:])


def test_one_folder_or_a_flat_prefix_does_not_split() -> None:
    """With a single folder (or the prefix's own key) left there is nothing to share."""
    assert parts({f"{PREFIX}a/"}, PREFIX, f"{PREFIX}a/1", 4) == []
    assert parts({PREFIX, f"{PREFIX}a/"}, PREFIX, PREFIX, 4) == []


def test_concurrently_gives_every_item_and_raises_a_streams_error() -> None:
    """Items of every stream come through; a failing stream's error reaches the reader."""

    def stream(n: int) -> Iterator[int]:
        yield from range(n * 10, n * 10 + 10)

    assert sorted(concurrently([lambda n=n: stream(n) for n in range(5)], 3)) == list(range(50))

    def failing() -> Iterator[int]:
        yield 1
        raise RuntimeError("listing failed")

    with pytest.raises(RuntimeError, match="listing failed"):
        list(concurrently([failing, lambda: stream(1)], 2))


def test_a_reader_that_stops_early_stops_the_threads() -> None:
    """Closing the listing early leaves no thread reading behind it."""
    produced: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    items = concurrently([endless, endless], 2)
    assert next(items) == 0
    items.close()
    count = len(produced)
    time.sleep(0.2)
    assert len(produced) == count
    assert not [t for t in threading.enumerate() if t.name.startswith("s3-listing")]
