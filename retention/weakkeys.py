"""Refusing an HMAC key nobody should seal an audit log with: too short, one character repeated,
or a placeholder left from an example file (``change-me``, ``REPLACE_ME``, ``...``, ``<key>``).

A key that keys pseudonyms and seals the audit log must be secret and hard to guess; a
placeholder copied from ``env.example`` is neither, and a pseudonym made with it can be reversed
by anyone who reads the example. The messages never repeat the key.
"""

from __future__ import annotations

import re

MIN_LENGTH = 12
"""Fewer characters than this is refused (``openssl rand -base64 32`` gives 44)."""

PLACEHOLDERS = re.compile(
    r"change.?me|replace.?me|placeholder|your.?(hmac.?)?key|^(secret|password|hmac.?key|key|"
    r"example|todo|xxx+|\.\.\.+|<.*>|\$\{.*\})$",
    re.IGNORECASE,
)


def key_problem(key: str) -> str | None:
    """Why `key` may not be used as ``hmac_key``, or None when it may."""
    advice = "set a random one, e.g. `openssl rand -base64 32`"
    text = key.strip()
    if PLACEHOLDERS.search(text):
        return f"the key is a placeholder from an example, not a secret: {advice}"
    if len(text) < MIN_LENGTH:
        return f"the key is too short ({len(text)} characters, at least {MIN_LENGTH}): {advice}"
    if len(set(text)) < 4:
        return f"the key repeats too few characters to be secret: {advice}"
    return None


__all__ = ["MIN_LENGTH", "key_problem"]
