"""Subject ids: one canonical form per id, whatever the spelling."""

from __future__ import annotations

from retention.ids import canonical_id, canonical_ids, integer_id


def test_whitespace_sign_and_leading_zeros_are_not_part_of_an_id() -> None:
    """5, "5", "0005", " 5", "+5", a trailing newline and bytes are one id; "-0" is 0."""
    assert canonical_ids([5, "5", "0005", " 5", "+5", "05\n", b"5"]) == {"5"}
    assert canonical_id("-007") == "-7" and canonical_id("-0") == "0"


def test_other_text_is_compared_as_written() -> None:
    """Text ids are trimmed but otherwise exact: case matters, a no-break space is part of it,
    and an id that is not an integer has no integer."""
    assert canonical_id(" abc ") == "abc" and canonical_id("ABC") != canonical_id("abc")
    assert canonical_id("\u00a05") == "\u00a05" and canonical_id("5.0") == "5.0"
    assert integer_id("0042") == 42 and integer_id("abc") is None and integer_id("4 2") is None
