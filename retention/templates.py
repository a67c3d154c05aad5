"""Key templates: where an object dataset's records are, and which subject each belongs to.

An S3 dataset is located by a ``prefix`` and a filesystem dataset by a ``glob``; both may name
the subject a record belongs to with one placeholder, ``{type}``, where ``type`` is a declared
subject type::

    prefix: "customers/{account}/"      # s3: customers/4411/invoice.pdf belongs to account 4411
    glob: "uploads/{account}/*"         # filesystem: uploads/4411/cv.pdf belongs to account 4411
    glob: "logs/**/access-*.log"        # no placeholder: the records belong to no subject

The syntax:

- ``{type}`` matches one or more characters up to the next ``/`` (a whole or part of one path
  segment), at most once per template. ``{{`` and ``}}`` are literal braces.
- A ``prefix`` is literal otherwise (S3 keys may contain ``*``), and matches keys that *start*
  with it; keys under the listing prefix that do not fit the template (``customers/readme.txt``
  for ``customers/{account}/``) are not part of the dataset.
- A ``glob`` is relative to the store root and matches whole paths: ``*`` is any run of
  characters within one segment (hidden files included), ``?`` one character, ``[abc]`` /
  ``[!abc]`` a character class, and a segment ``**`` any number of directories (zero included).
  ``.``, ``..``, empty segments, absolute paths and a trailing ``/`` are refused: a glob never
  names anything outside the root, and it names files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .ids import canonical_id, integer_id
from .kinds import Capabilities, capabilities

TemplateKind = Literal["prefix", "glob"]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOUBLE_STAR = "**"


@dataclass(frozen=True)
class KeyTemplate:
    """A parsed ``prefix`` or ``glob``: a matcher and the subject type it reads, if any."""

    text: str
    kind: TemplateKind
    subject: str | None
    pattern: re.Pattern[str]
    literal_prefix: str
    segments: tuple[re.Pattern[str] | None, ...] = ()  # glob only; None stands for ``**``

    @classmethod
    def parse(cls, text: str, kind: TemplateKind) -> KeyTemplate:
        """Parse `text`; a ValueError says what is wrong with it."""
        if kind == "prefix":
            body, name, plain = _translate(text, glob=False)
            return cls(text, kind, name, re.compile(body), plain)
        if not text:
            raise ValueError("a glob cannot be empty: use `*` for every file in the root")
        if text.startswith("/"):
            raise ValueError("a glob is relative to the store root: remove the leading /")
        if text.endswith("/"):
            raise ValueError("a glob names files: end it with a file pattern such as `*`")
        parts = text.split("/")
        for part in parts:
            if part in ("", ".", ".."):
                raise ValueError(
                    f"a glob may not contain {'an empty' if not part else repr(part)} segment: "
                    "it must stay inside the store root"
                )
        if parts[-1] == _DOUBLE_STAR:
            raise ValueError("a glob names files: end it with a file pattern, e.g. `**/*`")
        subject: str | None = None
        regex: list[str] = []
        segments: list[re.Pattern[str] | None] = []
        literal: list[str] = []
        still_literal = True
        for part in parts:
            if part == _DOUBLE_STAR:
                regex.append("(?:[^/]+/)*")
                segments.append(None)
                still_literal = False
                continue
            body, found, plain = _translate(part, glob=True)
            if found is not None:
                if subject is not None:
                    raise ValueError("a template may name the subject only once")
                subject = found
            regex.append(body + "/")
            segments.append(re.compile(body))
            if still_literal and plain == _unescape(part) and found is None:
                literal.append(plain)
            else:
                still_literal = False
        full = "".join(regex)[:-1]
        base = "/".join(literal[: len(parts) - 1])
        return cls(text, kind, subject, re.compile(full + r"\Z"), base, tuple(segments))

    def match(self, key: str) -> re.Match[str] | None:
        """The match when `key` belongs to the dataset, else None."""
        return self.pattern.match(key)

    def subject_of(self, key: str) -> str | None:
        """The subject id written in `key`, or None (no placeholder, or not a match)."""
        found = self.pattern.match(key)
        if found is None or self.subject is None:
            return None
        return found.group("subject")

    def prefix_for(self, subject_id: str) -> str:
        """The longest literal prefix of the keys of one subject (for listing just those)."""
        literal: list[str] = []
        for token, value in _tokens(self.text):
            if token == "placeholder":
                literal.append(subject_id)
            elif self.kind == "glob" and token == "text" and value in "*?[":
                break
            else:
                literal.append(value)
        text = "".join(literal)
        if self.kind == "glob" and "/" in text:
            return text.rsplit("/", 1)[0] + "/"
        return text if self.kind == "prefix" else ""

    def prefixes_for(self, subject_id: object) -> list[str]:
        """Listing prefixes that together reach the keys of one subject however they spell its
        id (:func:`~retention.ids.canonical_id`: ``5`` is also ``0005``, ``+5``, `` 5``): the
        canonical id itself, and the characters other spellings begin with (a space; for an
        integer ``0``, ``+`` and ``-``). Control characters are left out: S3 cannot list by
        them. Disjoint: no prefix extends another. Listed keys still have to be matched."""
        marker = "\0"
        text = self.prefix_for(marker)
        if marker not in text:
            return [text]
        head = text.split(marker, 1)[0]
        canonical = canonical_id(subject_id)
        starts = {canonical, " "}
        if integer_id(canonical) is not None:
            starts |= {"0", "+", "-"}
        prefixes = sorted(head + start for start in starts)
        return [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]

    def may_contain(self, parts: tuple[str, ...]) -> bool:
        """Whether files of a glob dataset can lie below the directory `parts` (relative)."""
        for index, part in enumerate(parts):
            if index >= len(self.segments) - 1:
                return False
            segment = self.segments[index]
            if segment is None:
                return True
            if not segment.fullmatch(part):
                return False
        return True


def _tokens(text: str) -> list[tuple[str, str]]:
    """(``text`` | ``placeholder``, value) tokens; ``{{``/``}}`` become literal braces."""
    tokens: list[tuple[str, str]] = []
    index = 0
    while index < len(text):
        char = text[index]
        if text.startswith(("{{", "}}"), index):
            tokens.append(("text", char))
            index += 2
        elif char == "{":
            end = text.find("}", index)
            if end < 0:
                raise ValueError(f"unclosed {{ at position {index + 1}: write {{{{ for a brace")
            name = text[index + 1 : end]
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"{{{name}}} is not a placeholder: use {{subject_type}}, e.g. {{account}}"
                )
            tokens.append(("placeholder", name))
            index = end + 1
        elif char == "}":
            raise ValueError(f"unmatched }} at position {index + 1}: write }}}} for a brace")
        else:
            tokens.append(("text", char))
            index += 1
    return tokens


def _unescape(text: str) -> str:
    return text.replace("{{", "{").replace("}}", "}")


def _translate(text: str, *, glob: bool) -> tuple[str, str | None, str]:
    """(regex, placeholder name, the literal text before the placeholder or any wildcard)."""
    out: list[str] = []
    subject: str | None = None
    literal: list[str] = []
    literal_open = True
    tokens = _tokens(text)
    index = 0
    while index < len(tokens):
        token, value = tokens[index]
        index += 1
        if token == "placeholder":
            if subject is not None:
                raise ValueError("a template may name the subject only once")
            subject = value
            out.append("(?P<subject>[^/]+)")
            literal_open = False
            continue
        if glob and value == "*":
            out.append("[^/]*")
            literal_open = False
        elif glob and value == "?":
            out.append("[^/]")
            literal_open = False
        elif glob and value == "[":
            end = index
            while end < len(tokens) and tokens[end][1] != "]":
                end += 1
            if end >= len(tokens) or end == index:
                raise ValueError("unclosed [ in glob: write [[] for a literal bracket")
            members = "".join(v for _, v in tokens[index:end])
            if members.startswith("!"):
                members = "^" + members[1:]
            out.append(f"(?:(?!/)[{members.replace(chr(92), chr(92) * 2)}])")
            index = end + 1
            literal_open = False
        else:
            out.append(re.escape(value))
            if literal_open:
                literal.append(value)
    return "".join(out), subject, "".join(literal)


def check_object_dataset(
    ds: Any, can: Capabilities, subject_types: Mapping[str, Any]
) -> list[tuple[str, tuple[str, ...]]]:
    """Problems of an object dataset (a prefix or glob) as (message, field path in the dataset)."""
    problems: list[tuple[str, tuple[str, ...]]] = []
    field = can.locator
    text = getattr(ds, field)
    if text is not None and field != "table":
        try:
            template = KeyTemplate.parse(text, field)
        except ValueError as exc:
            problems.append((f"{text!r}: {exc}", (field,)))
        else:
            if template.subject is not None and template.subject not in subject_types:
                known = ", ".join(sorted(subject_types)) or "none declared"
                problems.append(
                    (
                        f"{{{template.subject}}} names no subject type (known: {known})",
                        (field,),
                    )
                )
    if ds.subject is not None:
        problems.append(
            (
                f"an object dataset reads its subject from a placeholder in its {field} "
                f"(e.g. {'customers/{account}/' if field == 'prefix' else 'uploads/{account}/*'})"
                "; remove `subject`",
                ("subject",),
            )
        )
    for name, what in (
        ("key", "the object key (or path) is the record key"),
        ("timestamps", "objects have one clock, record.created (LastModified or mtime)"),
        ("cascade", "objects have no children to cascade to"),
    ):
        if getattr(ds, name):
            problems.append((f"not used on an object dataset: {what}; remove `{name}`", (name,)))
    if ds.tag is not None:
        if not can.tag_clock:
            problems.append(
                ("`tag` reads an S3 object tag or metadata key; files have only mtime", ("tag",))
            )
        elif not ds.tag.removeprefix("metadata:"):
            problems.append(("name the tag: `tag: created` or `tag: metadata:created`", ("tag",)))
    return problems


def template_of(ds: Any, kind: str) -> KeyTemplate | None:
    """The parsed template of an object dataset (None for a table)."""
    locator = capabilities(kind).locator
    if locator == "table":
        return None
    text = getattr(ds, locator)
    return KeyTemplate.parse(text, locator) if text is not None else None


def subject_type(ds: Any, kind: str) -> str | None:
    """The primary subject type of a dataset: its (first) `subject` link, or its template's
    placeholder."""
    if ds.subject is not None:
        return str(ds.subject_links[0].type)
    try:
        template = template_of(ds, kind)
    except ValueError:
        return None
    return template.subject if template is not None else None


__all__ = ["KeyTemplate", "check_object_dataset", "subject_type", "template_of"]
