"""HMAC-SHA256 of record keys in bulk, in this process or in a helper process beside it.

Under ``audit.keys: hmac`` every deleted or anonymized record's key is hashed for the audit log:
a few microseconds each in Python, as long as the database takes to delete the record. So a
large batch's keys go to a helper process, which hashes them while this process goes on with
the next batch; the batch's audit entry collects the result when it is written. Threads would
not do: hashing holds the GIL, and every database call of the run would wait for it.

The helper is this file run as a script (``python -I hmackeys.py``): it imports only the
standard library, so it starts in milliseconds. It receives the HMAC key on its stdin, never
on its command line or in its environment, and exits when its stdin closes, also when this
process dies. If it cannot start or fails, the keys are hashed here: slower, the same result.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

_FRAME = struct.Struct(">Q")
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _small_message_sha256() -> Callable[..., Any]:
    """CPython's own SHA-256 (``_sha2``, ``_sha256`` before 3.12), else hashlib's.

    A record key is a few dozen bytes: for those the built-in object's copy costs a fraction
    of OpenSSL 3's (1.8 µs against 4.2 µs per key, measured on the benchmark machine). The
    digests are the same; only the implementation differs.
    """
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256


_sha256 = _small_message_sha256()


class KeyHmac:
    """HMAC-SHA256(key, ·) as hex, with the keyed pads hashed once (RFC 2104, as :mod:`hmac`
    does) and only copied per message."""

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = _sha256(key.translate(_IPAD))
        self._outer = _sha256(key.translate(_OPAD))

    def hexdigest(self, message: str) -> str:
        """HMAC-SHA256(key, message) in hex, the message as UTF-8 (lone surrogates kept)."""
        mac = self._inner.copy()
        mac.update(message.encode("utf-8", "surrogatepass"))
        final = self._outer.copy()
        final.update(mac.digest())
        return final.hexdigest()  # type: ignore[no-any-return]

    def digests(self, messages: Sequence[str]) -> list[str]:
        """:meth:`hexdigest` of each message (the loop inlined: it runs once per record)."""
        inner_copy, outer_copy = self._inner.copy, self._outer.copy
        digests: list[str] = []
        append = digests.append
        for message in messages:
            mac = inner_copy()
            mac.update(message.encode("utf-8", "surrogatepass"))
            final = outer_copy()
            final.update(mac.digest())
            append(final.hexdigest())
        return digests

    def json_list(self, messages: Sequence[str]) -> str:
        """The digests as the JSON list ``json.dumps`` would write (hex needs no escaping)."""
        return '["' + '", "'.join(self.digests(messages)) + '"]' if messages else "[]"


class HmacHelper:
    """A helper process turning batches of keys into :meth:`KeyHmac.json_list` texts.

    :meth:`submit` returns at once with a ticket; :meth:`result` waits for that batch's text.
    One batch is with the helper at a time (a second submit first collects the answer to the
    first), so neither process can block the other on a full pipe.
    """

    def __init__(self, key: bytes) -> None:
        self._local = KeyHmac(key)
        self._tickets = 0
        self._keys: dict[int, list[str]] = {}
        self._answers: dict[int, str] = {}
        self._in_flight: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._broken = False
        if not sys.executable:  # an embedded interpreter: nothing to start a helper with
            self._broken = True
            return
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            self._write(key)
        except OSError:
            self._broken = True

    @property
    def pid(self) -> int | None:
        """The helper process's id while it runs (what an operator sees beside a large run);
        None when keys are hashed in this process."""
        return self._process.pid if self._process is not None else None

    def submit(self, keys: list[str]) -> int:
        """Hand one batch's keys to the helper; its ticket for :meth:`result`."""
        self._collect()
        ticket = self._tickets
        self._tickets += 1
        self._keys[ticket] = keys
        payload = "\n".join(keys)
        if not self._broken and payload.count("\n") == len(keys) - 1:
            try:
                self._write(payload.encode("utf-8", "surrogatepass"))
                self._in_flight = ticket
            except OSError:
                self._broken = True
        return ticket  # a key with a line break, or no helper: hashed here when asked

    def result(self, ticket: int) -> str:
        """The JSON list of the batch's HMACs."""
        if ticket == self._in_flight:
            self._collect()
        keys = self._keys.pop(ticket)
        answer = self._answers.pop(ticket, None)
        return answer if answer is not None else self._local.json_list(keys)

    def _collect(self) -> None:
        """Read the answer to the batch with the helper, if any (none if the helper failed)."""
        ticket, self._in_flight = self._in_flight, None
        if ticket is None or self._broken:
            return
        try:
            self._answers[ticket] = self._read()
        except (OSError, EOFError, UnicodeDecodeError):
            self._broken = True

    def close(self) -> None:
        """Stop the helper (it exits when its stdin closes)."""
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a dead helper's pipe: nothing to flush
                    stream.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _write(self, payload: bytes) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(_FRAME.pack(len(payload)) + payload)
        self._process.stdin.flush()

    def _read(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        return _read_frame(self._process.stdout).decode("ascii")


def _read_frame(stream: IO[bytes]) -> bytes:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        raise EOFError
    (size,) = _FRAME.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError
    return payload


def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The helper's loop: the key frame, then one answer per batch until stdin closes."""
    try:
        hasher = KeyHmac(_read_frame(requests))
        while True:
            payload = _read_frame(requests)
            keys = payload.decode("utf-8", "surrogatepass").split("\n")
            text = hasher.json_list(keys).encode("ascii")
            answers.write(_FRAME.pack(len(text)) + text)
            answers.flush()
    except (EOFError, BrokenPipeError):
        return


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which closes us
    _serve(sys.stdin.buffer, sys.stdout.buffer)
