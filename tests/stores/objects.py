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
