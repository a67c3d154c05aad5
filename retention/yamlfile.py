"""YAML loading that remembers where every value came from, and reads values as written.

Configuration errors must name the file, the line and the field. PyYAML's composed node tree
carries line marks; this module keeps them in a :class:`LineMap` keyed by the path of each value
(``("datasets", "tickets", "key")``) so a pydantic ``loc`` can be turned into a line number, and
keeps the text of every scalar as written, so ids are read as the text on the page.

Plain scalars are resolved by the YAML 1.2 core schema, not PyYAML's YAML 1.1 one: ``0106`` is
the number 106 (never octal 70), ``1:05`` is text (never sexagesimal 65), ``yes``/``on`` are
text, and only ``true``/``false`` are booleans. Dates (``2027-05-01``) are still dates.

Input that could hurt is refused with a :class:`~retention.errors.ConfigError` naming the file
(and line where known), never a traceback: bytes that are not UTF-8, characters YAML forbids,
merge keys (``<<``), recursive aliases, aliases that expand to more than
:data:`ALIAS_EXPANSION_LIMIT` values (a "billion laughs"), documents nested too deeply, tags
other than the core ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

PathKey = tuple[str | int, ...]

# Values an alias may add beyond the document's own: room for any real reuse of an anchor.
ALIAS_EXPANSION_LIMIT = 10_000

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = {_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP}

_CORE = (
    (_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    (
        _INT,
        re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        list("-+0123456789"),
    ),
    (
        _FLOAT,
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+.0123456789"),
    ),
    (
        _TIMESTAMP,
        re.compile(
            r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?"
            r"(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?"
            r"(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?"
            r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9])$"
        ),
        list("0123456789"),
    ),
)


class _CoreResolver(yaml.resolver.BaseResolver):
    """The YAML 1.2 core schema's implicit types (plus dates), instead of YAML 1.1's."""


for _tag, _pattern, _first in _CORE:
    _CoreResolver.add_implicit_resolver(_tag, _pattern, _first)


class _Composer(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    _CoreResolver,
):
    """Reads YAML text into a node tree; values are built from nodes by :func:`parse_yaml`."""

    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _CoreResolver.__init__(self)


_TIMESTAMP_BUILDER = yaml.constructor.SafeConstructor()


@dataclass(frozen=True)
class LineMap:
    """Maps the path of each value in one YAML file to its 1-based line and written text."""

    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)
    texts: dict[PathKey, str] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, or of its nearest ancestor that the file spells out."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)

    def text_of(self, path: Sequence[str | int]) -> str | None:
        """The scalar at `path` exactly as written (without quotes), or None if not a scalar."""
        return self.texts.get(tuple(path))

    def error(self, message: str, path: Sequence[str | int]) -> ConfigError:
        """A ConfigError pointing at `path` in this file."""
        return ConfigError(
            message, file=self.file, line=self.line_of(path), field=dotted(path) or None
        )


def dotted(path: Sequence[str | int]) -> str:
    """``("rules", 3, "retain")`` → ``rules[3].retain``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_yaml(path: Path) -> tuple[Any, LineMap]:
    """Parse `path` and return its data with the line of every value."""
    return parse_yaml(read_text(path), str(path))


def read_text(path: Path) -> str:
    """The UTF-8 text of `path`; a ConfigError naming the file when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a file", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ConfigError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at column {column} "
            "(save the file as UTF-8)",
            file=str(path),
            line=before.count(b"\n") + 1,
        ) from None


def parse_yaml(text: str, name: str) -> tuple[Any, LineMap]:
    """Parse YAML `text` (reported as file `name`) into data and a LineMap."""
    lines: dict[PathKey, int] = {}
    texts: dict[PathKey, str] = {}
    try:
        node = _Composer(text).get_single_node()
        if node is None:
            return None, LineMap(name, lines, texts)
        data = _Builder(name, lines, texts).build(node, ())
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, name) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(
            f"invalid YAML: the character #x{code:04x} is not allowed in YAML text",
            file=name,
            line=line,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=name) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", file=name) from None
    return data, LineMap(name, lines, texts)


class _Builder:
    """Builds Python values from one document's nodes, recording lines and texts by path."""

    def __init__(self, name: str, lines: dict[PathKey, int], texts: dict[PathKey, str]) -> None:
        self.name = name
        self.lines = lines
        self.texts = texts
        self.sizes: dict[int, int] = {}  # id(node) -> values under it, once built
        self.open: set[int] = set()  # nodes being built (an alias to one of them: recursion)
        self.expanded = 0

    def error(self, message: str, node: yaml.Node, path: PathKey) -> ConfigError:
        return ConfigError(
            message, file=self.name, line=node.start_mark.line + 1, field=dotted(path) or None
        )

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        ident = id(node)
        if ident in self.open:
            raise self.error(
                f"recursive alias: the value anchored on line {node.start_mark.line + 1} "
                "contains itself",
                node,
                path,
            )
        if ident in self.sizes:  # an alias: the value is built again at this path
            self.expanded += self.sizes[ident]
            if self.expanded > ALIAS_EXPANSION_LIMIT:
                raise self.error(
                    f"aliases expand to more than {ALIAS_EXPANSION_LIMIT} values: write the "
                    "values out instead of repeating an anchor",
                    node,
                    path,
                )
        self.open.add(ident)
        before = len(self.lines)
        value = self._build(node, path)
        self.open.discard(ident)
        self.sizes.setdefault(ident, max(1, len(self.lines) - before))
        return value

    def _build(self, node: yaml.Node, path: PathKey) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise self.error(_unsupported(node.tag), node, path)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        self.texts[path] = node.value
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[Any, Any]:
        if node.tag != _MAP:
            raise self.error(_unsupported(node.tag), node, path)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error("mapping keys must be plain scalars", key_node, path)
            if key_node.value == "<<" and key_node.style is None:
                raise self.error(
                    "merge keys (<<) are not supported: write each value out, so every "
                    "setting can be seen where it applies",
                    key_node,
                    path,
                )
            key = self._scalar(key_node, path)
            child = (*path, str(key))
            if key in out:
                raise self.error(
                    f"duplicate key {key!r} (first given on line {self.lines[child]})",
                    key_node,
                    child,
                )
            out[key] = self.build(value_node, child)
            self.lines[child] = key_node.start_mark.line + 1
        return out

    def _scalar(self, node: yaml.ScalarNode, path: PathKey) -> Any:
        text, tag = node.value, node.tag
        if tag not in _SCALAR_TAGS:
            raise self.error(_unsupported(tag), node, path)
        try:
            if tag == _STR:
                return text
            if tag == _NULL:
                if text not in ("", "~", "null", "Null", "NULL"):
                    raise ValueError("not a null")
                return None
            if tag == _BOOL:
                if text.lower() not in ("true", "false"):
                    raise ValueError("use true or false")
                return text.lower() == "true"
            if tag == _INT:
                return _integer(text)
            if tag == _FLOAT:
                return _float(text)
            return _TIMESTAMP_BUILDER.construct_yaml_timestamp(node)
        except (ValueError, OverflowError, TypeError) as exc:
            raise self.error(f"cannot read {text!r}: {exc}", node, path) from None


def _integer(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


def _unsupported(tag: str) -> str:
    return f"unsupported tag {tag!r}: use plain values, mappings and lists"


def _syntax_error(exc: yaml.MarkedYAMLError, name: str) -> ConfigError:
    """The line PyYAML stopped at, and where the construct it was reading began."""
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context}"
    context = exc.context_mark
    elsewhere = context is not None and (mark is None or context.line != mark.line)
    if exc.problem and exc.context and context is not None and elsewhere:
        message += f" ({exc.context} that began on line {context.line + 1})"
    return ConfigError(message, file=name, line=mark.line + 1 if mark else None)
