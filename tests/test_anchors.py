"""Checkpoint destinations: a directory or an S3 prefix, where nothing is ever overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from retention.anchors import Bucket, Directory, open_destination
from retention.errors import ConfigError, StoreError
from retention.settings import AuditSettings

from .stores.objectworld import s3_client


def test_a_directory_never_overwrites_and_lists_only_checkpoints(tmp_path: Path) -> None:
    """A directory destination is created on first write, refuses a second document of the same
    name (StoreError, the first one intact), and reads back only checkpoint documents, in
    name order."""
    where = Directory(tmp_path / "anchors")
    assert list(where.documents()) == []
    where.put("checkpoint-2.json", b"two")
    where.put("checkpoint-1.json", b"one")
    (tmp_path / "anchors" / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(StoreError, match="cannot write checkpoint"):
        where.put("checkpoint-1.json", b"forged")
    assert list(where.documents()) == [("checkpoint-1.json", b"one"), ("checkpoint-2.json", b"two")]


def test_an_s3_prefix_never_overwrites(moto_endpoint: str) -> None:
    """An S3 destination puts with If-None-Match, so a second object of the same key is refused
    (StoreError) and the first one stays; only objects directly under the prefix are read."""
    client = s3_client(moto_endpoint)
    client.create_bucket(Bucket="anchors-overwrite")
    where = Bucket(client, "anchors-overwrite", "audit", 30, "GOVERNANCE")
    assert (
        where.put("checkpoint-1.json", b"one") == "s3://anchors-overwrite/audit/checkpoint-1.json"
    )
    with pytest.raises(StoreError, match=r"cannot write checkpoint audit/checkpoint-1\.json"):
        where.put("checkpoint-1.json", b"forged")
    client.put_object(Bucket="anchors-overwrite", Key="audit/deeper/checkpoint-9.json", Body=b"x")
    assert list(where.documents()) == [("checkpoint-1.json", b"one")]


def test_a_destination_is_named_by_one_string(tmp_path: Path) -> None:
    """A path is a directory, `s3://bucket/prefix` a bucket prefix; none at all (neither the
    option nor audit.checkpoints) is a config error."""
    settings = AuditSettings()
    assert open_destination(str(tmp_path), settings) == Directory(tmp_path)
    bucket = open_destination("s3://some-bucket/a/b/", settings)
    assert isinstance(bucket, Bucket) and (bucket.bucket, bucket.prefix) == ("some-bucket", "a/b")
    with pytest.raises(ConfigError, match="no checkpoint destination"):
        open_destination(None, settings)
    configured = AuditSettings(checkpoints=str(tmp_path))
    assert open_destination(None, configured) == Directory(tmp_path)
