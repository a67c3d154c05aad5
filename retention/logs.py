"""Structured logs: one JSON line per event in the service, readable colours on a terminal.

Events carry bound context (``run_id``, ``rule``, ``dataset``) and only what an operator needs:
counts, names from the configuration, and messages written for users. Record keys, column
values and URLs never go in a log line; :func:`describe_error` turns an unexpected exception into
its type and first line, without SQL parameters.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from typing import Any, TextIO

import structlog
from sqlalchemy.exc import SQLAlchemyError

from .errors import RetentionError


def configure(
    *, json: bool | None = None, stream: TextIO | None = None, level: int = logging.INFO
) -> None:
    """Send structlog events to `stream` (default: whatever ``sys.stderr`` is at each event):
    JSON lines, or pretty when it is a terminal."""
    target = stream or sys.stderr
    if json is None:
        json = not target.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=target.isatty())
    )
    factory: Any = structlog.PrintLoggerFactory(stream) if stream is not None else _CurrentStderr
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )


_STDERR_LOCK = threading.Lock()


class _CurrentStderr(structlog.PrintLogger):
    """Writes each event to the current ``sys.stderr`` (never stdout, where --json goes).

    One event is one write of the line and its newline, under one lock: the service logs from
    its run thread and its watcher at once, and a log shipper must never see two JSON objects
    on one line.
    """

    def __init__(self, *_: Any) -> None:
        super().__init__(sys.stderr)

    def msg(self, message: str) -> None:
        with _STDERR_LOCK:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    log = debug = info = warn = warning = err = error = critical = exception = failure = msg
    fatal = msg


def get_logger(**context: Any) -> Any:
    """A logger for `retention`, with `context` bound to every event it emits.

    Until :func:`configure` is called, events go to stderr (JSON unless it is a terminal).
    """
    if not structlog.is_configured():
        configure()
    return structlog.get_logger("retention").bind(**context)


def describe_error(exc: BaseException) -> str:
    """An exception as one safe line: type, first line of its message, and where it was raised.

    Errors of the `retention` tree are written for users and are kept whole. Database errors are
    cut to the driver's first line, which never holds the statement's parameters.
    """
    if isinstance(exc, RetentionError):
        return str(exc)
    cause: BaseException = exc
    orig = getattr(exc, "orig", None) if isinstance(exc, SQLAlchemyError) else None
    if isinstance(orig, BaseException):
        cause = orig
    lines = str(cause).strip().splitlines()
    message = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        message += f" (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name})"
    return message


__all__ = ["configure", "describe_error", "get_logger"]
