"""`retention discover`: a live database's schema as a commented draft config."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .common import JsonOption, app, emit_json, handled, out


@app.command()
def discover(
    url: Annotated[str, typer.Argument(help="SQLAlchemy URL of the database to read.")],
    out_dir: Annotated[
        str, typer.Option("--out", help="Directory to write the draft config into.")
    ],
    schema: Annotated[
        str | None,
        typer.Option("--schema", help="Read this schema (default: the connection's own)."),
    ] = None,
    sample: Annotated[
        int, typer.Option("--sample", min=0, max=1000, help="Values sampled per text column.")
    ] = 50,
    as_json: JsonOption = False,
) -> None:
    """Read a database's schema and a small sample of values; write a draft config to review."""
    from ..discover import discover as discover_schema
    from ..draftconfig import personal_fields, write_draft

    with handled(as_json):
        draft = discover_schema(url, schema=schema, sample_size=sample)
        written = write_draft(draft, Path(out_dir), dt.datetime.now(dt.UTC))
    summary = {
        "subject": draft.subject.table if draft.subject else None,
        "datasets": {
            ds.name: {
                "table": ds.table,
                "category": ds.category.value,
                "personal": {name: f.column for name, f in personal_fields(ds).items()},
                "cascade": [c.dataset for c in ds.cascade],
            }
            for ds in draft.datasets
        },
        "skipped": [table for table, _ in draft.skipped],
        "files": [str(p) for p in written],
    }
    if as_json:
        emit_json(summary)
        return
    subject = (
        f"subject {draft.subject.name} ({draft.subject.table})" if draft.subject else "no subject"
    )
    personal = sum(len(ds.personal) for ds in draft.datasets)
    out.print(
        f"wrote {escape(str(written[0]))}: {subject}, {len(draft.datasets)} datasets, "
        f"{personal} personal columns, {len(draft.skipped)} tables skipped — every guess is "
        "marked `# guess:`; review, then `retention validate`",
        highlight=False,
        soft_wrap=True,
    )
