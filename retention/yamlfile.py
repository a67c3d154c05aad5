"""YAML loading that remembers where every value came from.

Configuration errors must name the file, the line and the field. PyYAML's composed node tree
carries line marks; this module keeps them in a :class:`LineMap` keyed by the path of each value
(``("datasets", "tickets", "key")``) so a pydantic ``loc`` can be turned into a line number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class LineMap:
    """Maps the path of each value in one YAML file to its 1-based line number."""

    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, or of its nearest ancestor that the file spells out."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)

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


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent override hides a typo)."""


def load_yaml(path: Path) -> tuple[Any, LineMap]:
    """Parse `path` and return its data with the line of every value."""
    return parse_yaml(read_text(path), str(path))


def read_text(path: Path) -> str:
    """The text of `path`; a ConfigError naming the file when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=str(path)) from None


def parse_yaml(text: str, name: str) -> tuple[Any, LineMap]:
    """Parse YAML `text` (reported as file `name`) into data and a LineMap."""
    lines: dict[PathKey, int] = {}
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, name) from None
    if node is None:
        return None, LineMap(name, lines)
    data = _construct(node, (), lines, name)
    return data, LineMap(name, lines)


_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def _construct(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], name: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
        raise ConfigError(
            f"unsupported tag {node.tag!r}: use plain mappings and lists",
            file=name,
            line=node.start_mark.line + 1,
            field=dotted(path) or None,
        )
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(  # scalar keys only; constructed with the safe rules
                ""
            ).construct_object(key_node)
            if isinstance(key, (dict, list)):
                raise ConfigError(
                    "mapping keys must be plain scalars",
                    file=name,
                    line=key_node.start_mark.line + 1,
                    field=dotted(path) or None,
                )
            if key in out:
                raise ConfigError(
                    f"duplicate key {key!r} (first given on line {lines[(*path, str(key))]})",
                    file=name,
                    line=key_node.start_mark.line + 1,
                    field=dotted((*path, str(key))),
                )
            child = (*path, str(key))
            out[key] = _construct(value_node, child, lines, name)
            lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*path, index), lines, name) for index, item in enumerate(node.value)
        ]
    try:
        return yaml.SafeLoader("").construct_object(node)
    except (yaml.MarkedYAMLError, ValueError) as exc:
        # an unknown tag (!!python/...) or a value its tag cannot hold (2027-13-01)
        reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else str(exc)
        raise ConfigError(
            f"cannot read {node.value!r}: {reason}",
            file=name,
            line=node.start_mark.line + 1,
            field=dotted(path) or None,
        ) from None


def _syntax_error(exc: yaml.MarkedYAMLError, name: str) -> ConfigError:
    """The line PyYAML stopped at, and where the construct it was reading began."""
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context}"
    context = exc.context_mark
    elsewhere = context is not None and (mark is None or context.line != mark.line)
    if exc.problem and exc.context and context is not None and elsewhere:
        message += f" ({exc.context} that began on line {context.line + 1})"
    return ConfigError(message, file=name, line=mark.line + 1 if mark else None)
