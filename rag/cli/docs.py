"""`rag docs`: list and remove the documents of a knowledge base."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rag.cli.common import cli_state, guard, out, print_json
from rag.store.knowledge_bases import remove_document

docs_app = typer.Typer(
    help="List and remove the documents of a knowledge base.", no_args_is_help=True
)


@docs_app.command("list")
def docs_list(
    ctx: typer.Context,
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base.")],
    status: Annotated[
        str | None, typer.Option("--status", help="Only documents with this status.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the documents of a knowledge base with status, chunk count and error."""
    state = cli_state(ctx)
    docs = guard(lambda: state.platform.kbs.documents(kb))
    if status is not None:
        docs = [d for d in docs if d.status == status]
    if as_json:
        print_json([asdict(d) for d in docs])
        return
    table = Table()
    for column in ("source", "status", "chunks", "size", "error"):
        table.add_column(column, overflow="fold")
    for doc in docs:
        table.add_row(
            doc.source,
            "[green]indexed[/]" if doc.status == "indexed" else f"[red]{doc.status}[/]",
            str(doc.chunks),
            _size(doc.size_bytes),
            doc.error or "",
        )
    out.print(table)


@docs_app.command("remove")
def docs_remove(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="The document's file path (as listed).")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base.")],
) -> None:
    """Remove a document's rows, vectors and BM25 entries."""
    state = cli_state(ctx)
    # The catalog keys documents by absolute path; the file itself may be gone already.
    source = str(Path(file).expanduser().resolve())
    result = guard(lambda: remove_document(state.platform.kbs, kb, source))
    out.print(f"removed {source} ({result.chunks_removed} chunks)", highlight=False)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
