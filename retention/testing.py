"""Helpers for testing code that uses `retention`, shipped with the package (like structlog's).

A fixed clock (:class:`FixedClock`), faults and pauses at named points of a run
(:class:`CrashAt`, :class:`OnPoint`, :class:`PauseAt`), an object store in memory
(:class:`MemoryTree`), stores opened once for many runs (:func:`open_stores`), an atomic file
replace for holds files (:func:`replace_file`), a moto S3 server in its own process
(:func:`moto_process`), and the number of examples a property test draws (:func:`examples`).
Our own tests use them too, instead of reaching into private names.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .datasets import Dataset
from .settings import Settings
from .stores import Stores
from .stores.base import Intent, Store, StoredIntent
from .stores.objects.records import PAGE_SIZE, DeleteResult, ObjectRecord
from .stores.objects.store import ObjectStore

DEPTH_ENV = "RETENTION_TEST_DEPTH"
DEEP_FACTOR = 5


def examples(quick: int) -> int:
    """How many examples a property test draws: `quick` in the everyday suite (the README's
    test command must stay fast enough to run often), :data:`DEEP_FACTOR` times as many with
    ``RETENTION_TEST_DEPTH=deep`` (a nightly or pre-release run). Each run draws new examples,
    so the everyday runs add up to the deep one over a week of commits."""
    return quick * DEEP_FACTOR if os.environ.get(DEPTH_ENV) == "deep" else quick


class FixedClock:
    """A clock that says `moment` until moved: pass it where `retention` asks for the time.

    ``FixedClock(t)`` is callable (``clock=`` of an Executor: the present a live run may not
    pass) and has ``now()`` (the service's clock); :meth:`advance` moves it.
    """

    def __init__(self, moment: dt.datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("a FixedClock needs a timezone-aware moment")
        self.moment = moment

    def now(self) -> dt.datetime:
        return self.moment

    def __call__(self) -> dt.datetime:
        return self.moment

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move the clock on by `delta`; the new moment."""
        self.moment += delta
        return self.moment


def replace_file(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (a temporary file renamed over it).

    This is how a holds file should be changed while `retention` runs: a reader sees the old
    file or the new one, never the empty file an in-place rewrite shows for a moment (which
    `retention` refuses, stopping destructive work until the file is whole again).
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- stores opened once, for tests that plan and run many times --------------------------------


def open_stores(settings: Settings) -> dict[str, Store]:
    """Every store of `settings`, opened once: pass it as ``stores=`` to plan, run and explain
    again and again (object stores read their subjects through the same SQL stores); close
    them with :func:`close_stores`."""
    opened = Stores(settings)
    return {name: opened[name] for name in settings.stores}


def close_stores(stores: dict[str, Store]) -> None:
    """Close what :func:`open_stores` opened."""
    for store in stores.values():
        store.close()


# -- faults at named points of a run -------------------------------------------------------


class SimulatedCrash(BaseException):
    """The process dying at a chosen point: not an Exception, so nothing catches it but the
    test (like SIGKILL, it leaves intents and open transactions behind)."""


class Probe:
    """Passes every point; subclass or combine to act at some (``Executor(probe=...)``).

    Points (:class:`retention.stores.base.Probe`): ``window``, ``write``, ``intent``, ``audit``,
    ``settle``.
    """

    def reached(self, point: str, intent: Intent | StoredIntent | None = None) -> None:
        pass


class OnPoint(Probe):
    """Calls `action` the `nth` time `point` is reached (every time from then on with
    ``every=True``)."""

    def __init__(
        self, point: str, action: Callable[[], None], nth: int = 1, *, every: bool = False
    ) -> None:
        self.point, self.action, self.nth, self.every = point, action, nth, every
        self.count = 0

    def reached(self, point: str, intent: Intent | StoredIntent | None = None) -> None:
        if point != self.point:
            return
        self.count += 1
        if self.count == self.nth or (self.every and self.count > self.nth):
            self.action()


class CrashAt(OnPoint):
    """Dies (:class:`SimulatedCrash`) the `nth` time `point` is reached: ``CrashAt("intent", 3)``
    is a kill after batch 3's intent is durable and before its change is final."""

    def __init__(self, point: str, nth: int = 1) -> None:
        super().__init__(point, self._crash, nth)

    def _crash(self) -> None:
        raise SimulatedCrash(f"killed at {self.point} #{self.nth}")


class PauseAt(OnPoint):
    """Blocks the thread that reaches `point` the `nth` time until :meth:`resume` (or dies
    there, :class:`SimulatedCrash`, on :meth:`kill`): a process paused by GC, SIGSTOP or the
    network at that point, while the test acts from another thread (a replica taking over)."""

    def __init__(self, point: str, nth: int = 1) -> None:
        super().__init__(point, self._pause, nth)
        self._paused = threading.Event()
        self._go = threading.Event()
        self._killed = False

    def wait_paused(self, timeout: float = 30.0) -> bool:
        """Wait until the point is reached; False if it was not within `timeout` seconds."""
        return self._paused.wait(timeout)

    def resume(self) -> None:
        """Let the paused thread go on."""
        self._go.set()

    def kill(self) -> None:
        """Let the paused thread die where it stands (its open transactions roll back)."""
        self._killed = True
        self._go.set()

    def _pause(self) -> None:
        self._paused.set()
        self._go.wait()
        if self._killed:
            raise SimulatedCrash(f"killed while paused at {self.point} #{self.nth}")


class Probes(Probe):
    """Several probes, each told of every point, in order."""

    def __init__(self, *probes: Probe) -> None:
        self.probes = probes

    def reached(self, point: str, intent: Intent | StoredIntent | None = None) -> None:
        for probe in self.probes:
            probe.reached(point, intent)


@contextmanager
def moto_process(timeout: float = 30.0) -> Iterator[str]:
    """A moto S3 server (``python -m moto.server``, moto installed) in a process of its own on
    a free loopback port: its endpoint URL, the process killed afterwards.

    A process, not a thread of this one: delta-rs holds the GIL while it waits for some S3
    answers (``DeltaTable.history()``, listings), so a server thread in the same interpreter
    cannot answer them and every such call times out."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()


__all__ = [
    "CrashAt",
    "FixedClock",
    "MemoryTree",
    "OnPoint",
    "PauseAt",
    "Probe",
    "Probes",
    "SimulatedCrash",
    "close_stores",
    "moto_process",
    "open_stores",
    "replace_file",
]


# -- an object store in memory ---------------------------------------------------------------


class MemoryTree(ObjectStore):
    """A file tree kept in memory, for tests of rules on object datasets without a disk or a
    bucket: configure the store as ``{kind: filesystem, root: ...}`` (the root is never read)
    and pass ``stores={"name": MemoryTree("name", ...)}`` to plan, run or explain.

    :meth:`put` adds a file with its modification time; :attr:`files` is what is there;
    keys in :attr:`failing` fail to delete (an I/O error), as a real disk sometimes does.
    """

    kind = "filesystem"

    def __init__(self, name: str, settings: Settings | None = None) -> None:
        super().__init__(name, None, settings)
        self.files: dict[str, dt.datetime] = {}
        self.failing: set[str] = set()

    def put(self, key: str, modified: dt.datetime) -> None:
        self.files[key] = modified

    def pages(self, dataset: Dataset, prefix: str | None = None) -> Iterator[list[ObjectRecord]]:
        assert dataset.template is not None
        template = dataset.template
        page: list[ObjectRecord] = []
        for key in sorted(self.files):
            if template.match(key) is None:
                continue
            modified = self.files[key]
            page.append(ObjectRecord(key, modified, modified, template.subject_of(key)))
            if len(page) == PAGE_SIZE:
                yield page
                page = []
        if page:
            yield page

    def mode(self, dataset: Dataset) -> str:
        return "files in memory: removed"

    def delete(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        deleted, failed = [], {}
        for record in records:
            if record.key in self.failing:
                failed[record.key] = "EIO: input/output error"
            elif self.files.get(record.key) == record.modified:
                del self.files[record.key]
                deleted.append(record.key)
        return DeleteResult(deleted=tuple(deleted), failed=failed)

    def absent(self, dataset: Dataset, entries: Sequence[Sequence[Any]]) -> list[str]:
        return [str(entry[0]) for entry in entries if entry[0] not in self.files]

    def head(self, dataset: Dataset, key: str) -> ObjectRecord | None:
        assert dataset.template is not None
        if key not in self.files or dataset.template.match(key) is None:
            return None
        modified = self.files[key]
        return ObjectRecord(key, modified, modified, dataset.template.subject_of(key))

    def reach(self, dataset: Dataset | None = None) -> list[str]:
        return []
