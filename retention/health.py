"""The HTTP endpoints of `retention serve`: /healthz, /readyz and /metrics.

A small :class:`http.server.ThreadingHTTPServer` on its own thread; it only reads. ``/healthz``
answers 200 while the process runs. ``/readyz`` answers 200 when the service could do its work
now (its checks: the configuration in force, the state DB, the stores, the holds file) and 503
otherwise, with a JSON body saying which check failed. ``/metrics`` is the Prometheus text format.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Readiness = Callable[[], tuple[bool, dict[str, Any]]]


class Endpoints:
    """What the endpoints answer with: a readiness check and a metrics renderer."""

    def __init__(
        self, readiness: Readiness, metrics: Callable[[], bytes], content_type: str
    ) -> None:
        self.readiness = readiness
        self.metrics = metrics
        self.content_type = content_type


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoints: Endpoints


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "retention"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        endpoints = self.server.endpoints
        if path == "/healthz":
            self._send(200, _json({"status": "ok"}))
        elif path == "/readyz":
            try:
                ready, body = endpoints.readiness()
            except Exception as exc:  # a check that crashed: not ready, and say so
                ready, body = False, {"ready": False, "error": type(exc).__name__}
            self._send(200 if ready else 503, _json(body))
        elif path == "/metrics":
            self._send(200, endpoints.metrics(), endpoints.content_type)
        else:
            self._send(404, _json({"error": "not found", "paths": _PATHS}))

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: probes every few seconds would drown the events that matter."""


_PATHS = ["/healthz", "/readyz", "/metrics"]


def _json(data: Any) -> bytes:
    return (json.dumps(data, default=str) + "\n").encode()


class HealthServer:
    """The endpoints on `host`:`port` (port 0: any free port), served from a daemon thread."""

    def __init__(self, host: str, port: int, endpoints: Endpoints) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.endpoints = endpoints
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), name="retention-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


__all__ = ["Endpoints", "HealthServer"]
