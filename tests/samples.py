"""Where the tests find the real sample databases nobody here wrote (Chinook, Pagila).

They are not vendored: ``RETENTION_SAMPLE_DATA`` names the directory that holds ``chinook/`` and
``pagila/``; unset, it is ``../shared/data`` beside the checkout (where this project's machines
keep them). A test that needs a sample which is not there skips, saying where to get it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

SAMPLE_DATA_ENV = "RETENTION_SAMPLE_DATA"
DEFAULT_SAMPLE_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = {
    "chinook": "https://github.com/lerocha/chinook-database, its releases",
    "pagila": "https://github.com/devrimgunduz/pagila",
}


def sample_data_dir() -> Path:
    """The directory holding the samples: ``$RETENTION_SAMPLE_DATA`` or ``../shared/data``."""
    configured = os.environ.get(SAMPLE_DATA_ENV)
    return Path(configured) if configured else DEFAULT_SAMPLE_DATA


def sample_file(sample: str, name: str) -> Path:
    """The path of one file of a sample (``sample_file("chinook", "Chinook_Sqlite.sqlite")``)."""
    return sample_data_dir() / sample / name


def missing_reason(sample: str, name: str) -> str:
    """The skip reason when a sample file is absent: where it was looked for and where to get it."""
    return (
        f"{sample_file(sample, name)} is not present: set {SAMPLE_DATA_ENV} to a directory with "
        f"{sample}/{name} (from {SOURCES[sample]})"
    )


def require_sample(sample: str, name: str) -> pytest.MarkDecorator:
    """A ``skipif`` mark for tests that need one sample file."""
    path = sample_file(sample, name)
    return pytest.mark.skipif(not path.exists(), reason=missing_reason(sample, name))


def load_pagila(url: str) -> str:
    """Pagila's schema and data in the schema of a test database's `url` (its
    ``-csearch_path``), which it returns; psql reads its COPY blocks (skips without psql)."""
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed: Pagila's COPY data needs it")
    parsed = make_url(url)
    schema = parsed.query["options"].removeprefix("-csearch_path=")
    assert isinstance(schema, str)
    plain = parsed.set(drivername="postgresql").difference_update_query(["options"])
    pagila = sample_file("pagila", "pagila-schema.sql").parent
    script = "".join(
        line.replace("public.", f'"{schema}".')
        for name in ("pagila-schema.sql", "pagila-data.sql")
        for line in (pagila / name).read_text(encoding="utf-8").splitlines(keepends=True)
        if "OWNER TO" not in line and "SCHEMA public" not in line
    )
    loaded = subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", plain.render_as_string(hide_password=False)],
        input=script,
        text=True,
        capture_output=True,
    )
    assert loaded.returncode == 0, loaded.stderr
    return schema
