"""Where checkpoints are kept: a directory, or an S3 prefix (with Object Lock where it is on).

A destination is named by one string, from ``--to`` / ``--checkpoints`` or
``audit.checkpoints``: a path, or ``s3://bucket/prefix``. Every checkpoint is a new file or
object, never an overwrite: a file is created exclusively (``O_EXCL``), an object is put with
``If-None-Match: *``. On a bucket whose Object Lock is enabled each object is written locked
(``audit.checkpoint_lock_mode`` until ``audit.checkpoint_lock_days`` from now), so not even the
account that wrote it can delete or replace it before then.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from .errors import ConfigError, StoreError
from .settings import AuditSettings, S3StoreConfig

PATTERN = "checkpoint-*.json"


class Destination(Protocol):
    """A place checkpoints are written to and read back from."""

    def put(self, name: str, data: bytes) -> str:
        """Write a new document called `name`; where it went (never overwrites)."""
        ...

    def documents(self) -> Iterator[tuple[str, bytes]]:
        """Every checkpoint document there, by name, oldest name first."""
        ...


@dataclass(frozen=True)
class Directory:
    """Checkpoints as files in a directory (created if missing)."""

    path: Path

    def put(self, name: str, data: bytes) -> str:
        target = self.path / name
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
        except OSError as exc:
            raise StoreError(f"cannot write checkpoint {target}: {exc.strerror}") from None
        return str(target)

    def documents(self) -> Iterator[tuple[str, bytes]]:
        if not self.path.is_dir():
            return
        for path in sorted(self.path.glob(PATTERN)):
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise StoreError(f"cannot read checkpoint {path}: {exc.strerror}") from None
            yield path.name, data


@dataclass(frozen=True)
class Bucket:
    """Checkpoints as objects under a prefix of an S3 bucket."""

    client: Any
    bucket: str
    prefix: str
    lock_days: int
    lock_mode: str

    def key(self, name: str) -> str:
        """The object key of the document called `name`."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, name: str, data: bytes) -> str:
        key = self.key(name)
        extra: dict[str, Any] = {}
        if self._locked():
            extra = {
                "ObjectLockMode": self.lock_mode,
                "ObjectLockRetainUntilDate": dt.datetime.now(dt.UTC)
                + dt.timedelta(days=self.lock_days),
            }
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType="application/json",
                ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode(),
                IfNoneMatch="*",
                **extra,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"cannot write checkpoint {key}: {_describe(exc)}") from None
        return f"s3://{self.bucket}/{key}"

    def _locked(self) -> bool:
        try:
            found = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in (
                "ObjectLockConfigurationNotFoundError",
                "NoSuchObjectLockConfiguration",
            ):
                return False
            raise StoreError(f"cannot read bucket {self.bucket}: {_describe(exc)}") from None
        except BotoCoreError as exc:
            raise StoreError(f"cannot reach bucket {self.bucket}: {_describe(exc)}") from None
        config = found.get("ObjectLockConfiguration", {})
        return bool(config.get("ObjectLockEnabled") == "Enabled")

    def documents(self) -> Iterator[tuple[str, bytes]]:
        start = self.key("checkpoint-")
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            keys = sorted(
                item["Key"]
                for page in pages
                for item in page.get("Contents", [])
                if item["Key"].endswith(".json") and "/" not in item["Key"][len(start) :]
            )
            for key in keys:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                yield key.rsplit("/", 1)[-1], body
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(
                f"cannot read checkpoints in s3://{self.bucket}/{self.prefix}: {_describe(exc)}"
            ) from None


def open_destination(where: str | None, settings: AuditSettings) -> Destination:
    """The destination `where` names (else ``audit.checkpoints``)."""
    target = where or settings.checkpoints
    if not target:
        raise ConfigError(
            "no checkpoint destination: give --to PATH|s3://bucket/prefix or set audit.checkpoints",
            field="audit.checkpoints",
        )
    if not target.startswith("s3://"):
        return Directory(Path(target))
    bucket, _, prefix = target[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigError(
            "an s3:// checkpoint destination needs a bucket", field="audit.checkpoints"
        )
    from .stores.objects.s3 import make_client

    s3 = settings.checkpoint_s3
    try:
        store = S3StoreConfig(
            kind="s3",
            bucket=bucket,
            region=s3.region,
            endpoint_url=s3.endpoint_url,
            access_key_id=s3.access_key_id,
            secret_access_key=s3.secret_access_key,
        )
    except ValueError:
        raise ConfigError(f"{bucket!r} is not a bucket name", field="audit.checkpoints") from None
    return Bucket(
        make_client(store),
        bucket,
        prefix.strip("/"),
        settings.checkpoint_lock_days,
        settings.checkpoint_lock_mode,
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return type(exc).__name__


__all__ = ["Bucket", "Destination", "Directory", "open_destination"]
