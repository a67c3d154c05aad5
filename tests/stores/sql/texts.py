"""Text values that break naive SQL or JSON handling, for the write-back tests."""

from __future__ import annotations

AWKWARD = [
    "it's",
    'say "hi"',
    "back\\slash",
    "line\nbreak\r\n\ttab",
    "nul\x00byte",
    "é ü ß 中文 😀 \U0010fffd",
    "  padded  ",
    "",
    "null",
    "[1, 2]",
    '{"a": "b"}',
    "'; DROP TABLE people; --",
    "$[0]",
    "\\u00e9",
]
# PostgreSQL text cannot hold NUL at all, whatever the write path
AWKWARD_FOR_POSTGRES = [text for text in AWKWARD if "\x00" not in text]
