"""Log lines a shipper can parse: one JSON object per line, whichever threads log at once."""

from __future__ import annotations

import io
import json
import sys
import threading

import pytest

from retention.logs import configure, get_logger


class RecordingStream(io.StringIO):
    """A stderr that remembers each write call, as a pipe to a log shipper would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def isatty(self) -> bool:
        return False


def test_events_from_many_threads_are_whole_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service logs from its run thread and its watcher at once: every event must arrive as
    one line of its own, never two objects glued together (CI once saw ``}{``)."""
    stream = RecordingStream()
    monkeypatch.setattr(sys, "stderr", stream)
    configure(json=True)

    def chatter(thread: int) -> None:
        log = get_logger(thread=thread)
        for n in range(200):
            log.info("tick", n=n)

    threads = [threading.Thread(target=chatter, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(w.endswith("\n") and w.count("\n") == 1 for w in stream.writes if w)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(events) == 1200
    assert {(e["thread"], e["n"]) for e in events} == {(t, n) for t in range(6) for n in range(200)}
