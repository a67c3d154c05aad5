"""What every command shares: the Typer app, the consoles, the options, and turning errors
into one clear line (and a JSON object under ``--json``) with the exit code of their class."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import (
    ConfigError,
    ConfigErrors,
    RetentionError,
)

if TYPE_CHECKING:
    from ..config import Config

app = typer.Typer(
    name="retention",
    help="Enforce data-retention promises: plan, explain and apply retention rules.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # plain help: rich's help formatter (and the Markdown parser it loads) doubles the start-up
    rich_markup_mode=None,
)
out = Console(soft_wrap=False)
err = Console(stderr=True)
PIPED_WIDTH = 160
"""The width of output to a pipe or file when ``COLUMNS`` does not say another."""


def fit_consoles() -> None:
    """Size the consoles for this invocation: a terminal's own width; when piped, ``COLUMNS``
    if set (as ``less``, ``watch`` and CI logs expect), else :data:`PIPED_WIDTH`."""
    columns = os.environ.get("COLUMNS", "")
    for console, stream in ((out, sys.stdout), (err, sys.stderr)):
        if stream.isatty():
            console.width = shutil.get_terminal_size().columns
        elif columns.isdigit() and int(columns) > 0:
            console.width = int(columns)
        else:
            console.width = PIPED_WIDTH


ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config", "-c", help="Config file (default: $RETENTION_CONFIG).", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Evaluate as of this moment (ISO 8601; without an offset, in the configured zone).",
        show_default=False,
    ),
]
RuleOption = Annotated[
    list[str] | None, typer.Option("--rule", help="Only this rule (repeatable).")
]
WideOption = Annotated[
    bool,
    typer.Option("--wide", help="Print every column in full, however wide the terminal."),
]
DatasetOption = Annotated[
    list[str] | None, typer.Option("--dataset", help="Only this dataset (repeatable).")
]


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        out.print(f"retention {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Enforce data-retention promises: plan, explain and apply retention rules."""
    fit_consoles()


def main() -> None:
    """Console-script entry point."""
    app()


def fail(error: RetentionError, as_json: bool = False) -> NoReturn:
    """Print `error` as clear lines on stderr and exit with its code; under ``--json`` also as
    one JSON object on stdout, for scripts."""
    errors = list(error.errors) if isinstance(error, ConfigErrors) else [error]
    for line in (str(e) for e in errors):
        # verbatim and unwrapped: one `file:line: field: message` per line, brackets kept
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if as_json:
        found = [_error_fields(e) for e in errors]
        emit_json({**found[0], "exit_code": error.exit_code, "errors": found})
    raise typer.Exit(error.exit_code)


def _error_fields(error: RetentionError) -> dict[str, Any]:
    """What a script needs of one error: the message, and where the input is wrong."""
    if isinstance(error, ConfigError):
        return {
            "error": error.message,
            "file": error.file,
            "line": error.line,
            "field": error.field,
            "kind": type(error).__name__,
        }
    return {
        "error": str(error),
        "file": None,
        "line": None,
        "field": None,
        "kind": type(error).__name__,
    }


@contextmanager
def handled(as_json: bool = False) -> Iterator[None]:
    """Turn library errors into one clear line and an exit code (and, under ``--json``, a JSON
    object on stdout)."""
    try:
        yield
    except RetentionError as exc:
        fail(exc, as_json)


def load(config_file: str | None) -> Config:
    """The configuration named by --config or $RETENTION_CONFIG, loaded and checked."""
    from ..config import config_path_from_env, load_config

    return load_config(config_path_from_env(config_file))


def parse_now(value: str | None, config: Config) -> dt.datetime:
    """`--now`, or the current time; naive values are in the configured time zone."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{value!r} is not an ISO 8601 timestamp", file="command line", field="--now"
        ) from None
    if not 1970 <= parsed.year <= 9000:
        raise ConfigError(
            f"{value!r} is outside the years 1970 to 9000 that retention evaluates",
            file="command line",
            field="--now",
        )
    if parsed.tzinfo is None:
        from ..timemath import wall_to_utc

        return wall_to_utc(parsed, config.settings.zone())
    return parsed.astimezone(dt.UTC)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def check_filters(config: Config, rules: list[str] | None, datasets: list[str] | None) -> None:
    from ..errors import ConfigError

    known_rules = {r.id for r in config.rules}
    for rule_id in rules or []:
        if rule_id not in known_rules:
            raise ConfigError(f"unknown rule {rule_id!r}", field="--rule")
    for name in datasets or []:
        if name not in config.settings.datasets:
            raise ConfigError(f"unknown dataset {name!r}", field="--dataset")


def write_output(text: str, output: str | None, what: str) -> None:
    """`text` to the file `output`, saying so on stderr, or to stdout without one."""
    from pathlib import Path

    from ..errors import ConfigError

    if not text.endswith("\n"):
        text += "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the {what}: {exc.strerror}", file=output) from None
    err.print(f"wrote the {what} to {output}", highlight=False)


def warn(warnings: Iterable[object]) -> None:
    """One `warning:` line on stderr per warning (hold ids that match no subject)."""
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(str(warning))}", highlight=False, soft_wrap=True)


def warn_unreadable(rows: Iterable[Any]) -> None:
    """One warning line when records are never acted on because their clock is unreadable."""
    found = [row for row in rows if row.unreadable]
    if not found:
        return
    total = sum(row.unreadable for row in found)
    where = ", ".join(f"{row.rule} on {row.dataset}: {row.unreadable}" for row in found)
    err.print(
        f"[yellow]warning:[/] {total} records have an unreadable clock (a value that is no "
        f"timestamp): never acted on until it is fixed ({escape(where)})",
        highlight=False,
        soft_wrap=True,
    )


def warn_absent(rows: Iterable[Any]) -> None:
    """One warning line when assert_absent rules found what must never be stored."""
    found = [row for row in rows if row.violations]
    if not found:
        return
    total = sum(row.violations for row in found)
    where = ", ".join(
        f"{row.rule} on {row.dataset}: {row.violations}"
        + (f" (keys {', '.join(row.samples)})" if row.samples else "")
        for row in found
    )
    err.print(
        f"[yellow]warning:[/] {total} records hold data that must never be stored "
        f"({escape(where)})",
        highlight=False,
        soft_wrap=True,
    )


def dim(value: int) -> str:
    return str(value) if value else "[dim]0[/]"


def parse_when(value: str | None, config: Config, option: str) -> dt.datetime | None:
    """An ISO date or timestamp; without an offset, in the configured zone (like --now)."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{value!r} is not an ISO 8601 date or timestamp", file="command line", field=option
        ) from None
    if parsed.tzinfo is None:
        from ..timemath import wall_to_utc

        return wall_to_utc(parsed, config.settings.zone())
    return parsed
