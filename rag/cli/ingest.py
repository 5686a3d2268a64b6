"""`rag ingest`: parse, chunk, embed and index files into a knowledge base."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from rag.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    cli_state,
    err,
    guard,
    out,
    print_json,
    progress_bar,
)
from rag.config import IndexKind, IngestEngine

if TYPE_CHECKING:
    from ingest.pipeline import IngestSummary


class _RichProgress:
    """Shows a progress bar over files while an ingest runs."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: Any = None

    def started(self, total_files: int) -> None:
        self._task = self._progress.add_task("ingesting", total=total_files)

    def file_done(self, source: str, outcome: str) -> None:
        if self._task is not None:
            self._progress.update(
                self._task, advance=1, description=f"{outcome:>8} {Path(source).name[:40]}"
            )


def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[str], typer.Argument(help="Files, folders (recursive) or glob patterns.")
    ],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base to fill (created if new).")],
    prune: Annotated[
        bool,
        typer.Option(
            "--prune", help="Remove documents under the given folders whose files are gone."
        ),
    ] = False,
    embedding: Annotated[
        str | None,
        typer.Option(
            "--embedding",
            help="Embedding model for a new base: all-MiniLM-L6-v2, multilingual, or a local "
            "folder (default: chosen by the documents' language).",
        ),
    ] = None,
    index: Annotated[
        IndexKind | None, typer.Option("--index", help="FAISS index kind for a new base.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=0, help="Parse worker processes (0: in-process).")
    ] = None,
    engine: Annotated[
        IngestEngine | None,
        typer.Option(
            "--engine",
            help="local: parse pool + embedding here; ray: parse and embed on Ray Data "
            "(commits stay here). Default: RAG_INGEST_ENGINE or local.",
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Ray cluster for --engine ray (ray://head:10001, auto); default: a "
            "private local Ray on 127.0.0.1.",
        ),
    ] = None,
    embed_actors: Annotated[
        int | None,
        typer.Option(
            "--embed-actors", min=1, help="Embedding actors for --engine ray (one GPU each)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Parse, chunk, embed and index files into a knowledge base."""
    from ingest.pipeline import IngestPipeline

    state = cli_state(ctx)
    settings = state.settings
    overrides: dict[str, object] = {}
    if workers is not None:
        overrides["parse_workers"] = workers
    if engine is not None:
        overrides["ingest_engine"] = engine
    if address is not None:
        overrides["ray_address"] = address
        overrides.setdefault("ingest_engine", "ray")
    if embed_actors is not None:
        overrides["ray_embed_actors"] = embed_actors
    if overrides:
        settings = settings.model_copy(update=overrides)
    platform = state.platform
    pipeline = IngestPipeline(settings, platform.kbs, embedder_factory=platform.embedder)

    def run() -> IngestSummary:
        if as_json or not sys.stderr.isatty():
            return pipeline.run(
                paths, kb=kb, prune=prune, embedding_model=embedding, index_kind=index
            )
        with progress_bar() as bar:
            return pipeline.run(
                paths,
                kb=kb,
                prune=prune,
                embedding_model=embedding,
                index_kind=index,
                progress=_RichProgress(bar),
            )

    summary = guard(run)
    if as_json:
        data = asdict(summary)
        data["failures"] = [{"source": s, "error": e} for s, e in summary.failures]
        data["chunks_per_second"] = round(summary.chunks_per_second, 2)
        data["files_per_second"] = round(summary.files_per_second, 3)
        print_json(data)
    else:
        _print_summary(summary)
    raise typer.Exit(EXIT_PARTIAL if summary.files_failed else EXIT_OK)


def _print_summary(summary: IngestSummary) -> None:
    title = f"ingest into {summary.kb}" + (" (new)" if summary.kb_created else "")
    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("count", justify="right")
    rows = [
        ("files new", str(summary.files_new)),
        ("files updated", str(summary.files_updated)),
        ("files skipped (unchanged)", str(summary.files_skipped)),
        ("files failed", str(summary.files_failed)),
        ("files removed (--prune)", str(summary.files_removed)),
        ("chunks added", str(summary.chunks_added)),
        ("chunks removed", str(summary.chunks_removed)),
        ("seconds", f"{summary.seconds:.1f}"),
        ("chunks/s", f"{summary.chunks_per_second:.1f}"),
        ("files/s", f"{summary.files_per_second:.2f}"),
    ]
    for what, count in rows:
        table.add_row(what, count)
    if summary.embedding_note:
        out.print(f"embedding model: {summary.embedding_note}", highlight=False)
    out.print(table)
    for source, error in summary.failures:
        err.print(f"[red]failed[/] {source}: {error}", highlight=False)
