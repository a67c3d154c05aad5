"""A weak or placeholder `hmac_key` is refused when the configuration loads: a ConfigError naming
the file, line and field (or the environment variable), never repeating the key."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retention.config import load_config
from retention.errors import ConfigError, ConfigErrors
from retention.weakkeys import MIN_LENGTH, key_problem

PLACEHOLDERS = ["change-me-hmac", "REPLACE_ME", "...", "<your hmac key>", "changeme", "password"]


def _config(tmp_path: Path, key: str | None) -> Path:
    path = tmp_path / "config.yaml"
    lines = ["state_db: sqlite:///state.db", "rules: []"]
    if key is not None:
        lines.append(f"hmac_key: {key!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    (error,) = caught.value.errors
    return error


@pytest.mark.parametrize("key", [*PLACEHOLDERS, "short-key", "aaaaaaaaaaaaaaaaaaaa"])
def test_weak_key_in_the_file_is_refused_naming_line_and_field(tmp_path: Path, key: str) -> None:
    """A placeholder, a short key or one character repeated: exit-2 error at `hmac_key`, line 3,
    that says why and how to make a good key, and does not print the key."""
    error = _error(_config(tmp_path, key))
    assert (error.field, error.line, error.exit_code) == ("hmac_key", 3, 2)
    assert "openssl rand" in error.message
    assert key not in str(error)


def test_placeholder_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`RETENTION_HMAC_KEY=change-me-hmac` (compose's env.example as shipped) is refused, naming
    the variable."""
    monkeypatch.setenv("RETENTION_HMAC_KEY", "change-me-hmac")
    error = _error(_config(tmp_path, None))
    assert error.file == "environment RETENTION_HMAC_KEY"
    assert "placeholder" in error.message


def test_a_random_key_loads(tmp_path: Path) -> None:
    """A key from `openssl rand -base64 32` (here: `secrets`) loads."""
    config = load_config(_config(tmp_path, secrets.token_urlsafe(32)))
    assert config.settings.hmac_key is not None


@given(st.binary(min_size=MIN_LENGTH, max_size=64))
def test_random_bytes_as_base64_are_never_called_weak(raw: bytes) -> None:
    """Any base64 of 12 or more random bytes (16+ characters) passes, unless it repeats fewer
    than four characters (which random keys of that length practically never do)."""
    import base64

    text = base64.b64encode(raw).decode()
    if len(set(text)) >= 4:
        assert key_problem(text) is None
