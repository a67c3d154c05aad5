"""Helpers for the object-store tests: a moto S3 client, seeding, configs with object datasets."""

from __future__ import annotations

import datetime as dt
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def put_many(client: Any, bucket: str, keys: list[str], **extra: Any) -> None:
    """Upload small objects in parallel (moto answers one request at a time per thread)."""
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"x", **extra), keys
            )
        )


def seed(bucket: str, keys: list[str], modified: dt.datetime | None = None) -> None:
    """Put objects straight into the moto server's backend (same process), with a LastModified.

    S3 sets LastModified itself; tests need old objects, and 100,000 of them quickly. Only the
    setup takes this shortcut: the code under test talks to the server over HTTP.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in keys:
        stored = backend.put_object(bucket, key, b"x")
        if modified is not None:
            stored.last_modified = modified.astimezone(dt.UTC).replace(tzinfo=None)


def s3_store(bucket: str, endpoint: str, **extra: Any) -> dict[str, Any]:
    """An `s3` store entry for config."""
    return {
        "kind": "s3",
        "bucket": bucket,
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
        **extra,
    }


def object_rule(rule_id: str, dataset: str = "files", **fields: Any) -> dict[str, Any]:
    """A delete rule on an object dataset: record.created + 30 days unless told otherwise."""
    base: dict[str, Any] = {
        "id": rule_id,
        "applies_to": {"dataset": dataset},
        "after": "record.created",
        "retain": "P30D",
        "action": "delete",
    }
    base.update(fields)
    return base


class DyingEndpoint:
    """An S3 endpoint in front of a moto server that goes away after `after` DeleteObjects
    requests have been answered: new connections are refused from then on, like a crashed
    endpoint. With `before=True` it goes away on receiving DeleteObjects request number
    `after` + 1, which never reaches the server (a crash between a copy and its delete).
    :meth:`revive` brings it back on the same port."""

    def __init__(self, upstream: str, *, after: int | None, before: bool = False) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.before = before
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self.revive(after=after)

    def revive(self, *, after: int | None = None) -> None:
        """Serve again (after `after` more DeleteObjects it dies again; None: never)."""
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        endpoint = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                if endpoint.dead:  # a connection kept alive from before: cut it
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                deleting = self.command == "POST" and "delete" in self.path
                if deleting and endpoint.before and endpoint.deletes == endpoint.after:
                    endpoint.dead = True
                    self.close_connection = True
                    threading.Thread(target=endpoint.die, daemon=True).start()
                    return
                upstream = http.client.HTTPConnection(endpoint.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()
                if self.command == "POST" and "delete" in self.path:
                    endpoint.deletes += 1
                    if endpoint.after is not None and endpoint.deletes >= endpoint.after:
                        threading.Thread(target=endpoint.die, daemon=True).start()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self.dead = False
        self.deletes = 0
        self.after = after
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Forward)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def die(self) -> None:
        self.dead = True
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
