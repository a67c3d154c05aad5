"""How many records a batch takes. One fixed size fits no store: at 5,000 rows a run of a
million rows pays its per-batch cost (intent, two durable commits, an audit entry) two hundred
times, and a sparse table's windows hold a handful of due rows each. A window grows while
batches finish well inside `batch_seconds` and shrinks when one runs long, between a floor and
the `batch_size` cap, so a run still re-reads the holds file and can stop every second or so."""

from __future__ import annotations

import time
from collections.abc import Callable

FIRST_WINDOW = 5_000
"""The first batch of every rule: the fixed size of earlier releases."""
FLOOR = 1_000
"""The smallest a window shrinks to (unless the cap is smaller)."""
MAX_STEP = 2.0
"""A window at most doubles, or halves, from one batch to the next."""


class WindowSizer:
    """The size of each next window, from how long the batch before it took."""

    def __init__(
        self, cap: int, target: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cap = cap
        self.target = target
        self.floor = min(cap, FLOOR)
        self.size = min(cap, FIRST_WINDOW)
        self._clock = clock
        self._last: float | None = None

    def next(self) -> int:
        """The size of the window about to start; the time since the last call is what the
        batch before it took (its write, its commit point and its audit entry)."""
        now = self._clock()
        if self._last is not None:
            elapsed = now - self._last
            step = MAX_STEP if elapsed <= 0 else self.target / elapsed
            step = min(MAX_STEP, max(1 / MAX_STEP, step))
            self.size = max(self.floor, min(self.cap, int(self.size * step)))
        self._last = now
        return self.size
