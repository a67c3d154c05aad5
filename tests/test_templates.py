"""Key templates: which keys and paths belong to an object dataset, and whose they are."""

from __future__ import annotations

import pytest

from retention.templates import KeyTemplate


def test_prefix_reads_the_subject_and_matches_keys_that_start_with_it() -> None:
    """`customers/{account}/` takes the segment after customers/ as the account id."""
    template = KeyTemplate.parse("customers/{account}/", "prefix")
    assert template.subject == "account" and template.literal_prefix == "customers/"
    assert template.subject_of("customers/4411/invoices/2024.pdf") == "4411"
    assert template.match("customers/readme.txt") is None
    assert template.prefix_for("4411") == "customers/4411/"


def test_prefix_is_literal_apart_from_the_placeholder() -> None:
    """S3 keys may contain `*`: in a prefix it is just a character; `{{` is a literal brace."""
    template = KeyTemplate.parse("a*b/{{x}}/", "prefix")
    assert template.subject is None and template.match("a*b/{x}/file") is not None
    assert template.match("aXb/{x}/file") is None


def test_glob_matches_whole_paths_segment_by_segment() -> None:
    """`*` stays within a segment, `**` spans directories (zero included), classes work."""
    template = KeyTemplate.parse("logs/**/access-[0-9]*.log", "glob")
    assert template.match("logs/access-1.log") is not None
    assert template.match("logs/2024/05/access-2.log") is not None
    assert template.match("logs/2024/error-2.log") is None
    assert template.literal_prefix == "logs"
    upload = KeyTemplate.parse("uploads/acct-{account}/*", "glob")
    assert upload.subject_of("uploads/acct-7/cv.pdf") == "7"
    assert upload.match("uploads/acct-7/sub/cv.pdf") is None
    assert upload.may_contain(("uploads", "acct-7")) and not upload.may_contain(("other",))
    assert not upload.may_contain(("uploads", "acct-7", "sub"))


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("../x/*", "glob", "stay inside the store root"),
        ("/var/*", "glob", "relative to the store root"),
        ("uploads/", "glob", "names files"),
        ("a//b", "glob", "empty"),
        ("{a}/{b}/", "prefix", "only once"),
        ("x/{not valid}/", "prefix", "not a placeholder"),
        ("x/{account/", "prefix", "unclosed"),
        ("x/}/", "prefix", "unmatched"),
    ],
)
def test_bad_templates_say_what_is_wrong(text: str, kind: str, message: str) -> None:
    """Templates that could escape the root or cannot be read are refused with a reason."""
    with pytest.raises(ValueError, match=message):
        KeyTemplate.parse(text, kind)  # type: ignore[arg-type]


def test_prefixes_for_reach_every_spelling_of_an_id() -> None:
    """The listing prefixes of one subject reach the keys that spell its id otherwise
    (`customers/0005/`, `customers/+5/`, `customers/ 5/`), none of them twice."""
    template = KeyTemplate.parse("customers/{account}/", "prefix")
    assert template.prefixes_for("0005") == [
        "customers/ ",
        "customers/+",
        "customers/-",
        "customers/0",
        "customers/5",
    ]
    assert template.prefixes_for("abc") == ["customers/ ", "customers/abc"]
    assert KeyTemplate.parse("all/", "prefix").prefixes_for("5") == ["all/"]
