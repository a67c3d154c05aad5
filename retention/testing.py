"""Helpers for testing code that uses `retention`, shipped with the package (like structlog's).

Our own tests use them too, instead of reaching into private names.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path


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


__all__ = ["FixedClock", "replace_file"]
