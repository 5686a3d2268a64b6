"""`rag kb`: create, inspect, check, rebuild and delete knowledge bases."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from rag.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    cli_state,
    err,
    guard,
    out,
    print_json,
)
from rag.config import IndexKind
from rag.store.records import KnowledgeBaseInfo

kb_app = typer.Typer(
    help="Create, inspect, check, rebuild and delete knowledge bases.", no_args_is_help=True
)


@kb_app.command("create")
def kb_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the new knowledge base.")],
    embedding: Annotated[
        str | None,
        typer.Option(
            "--embedding",
            help="all-MiniLM-L6-v2 (default), multilingual (multilingual-e5-small, for "
            "Chinese and mixed text), or a local sentence-transformers folder.",
        ),
    ] = None,
    index: Annotated[IndexKind | None, typer.Option("--index", help="FAISS index kind.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create an empty knowledge base (ingest creates one on first use too).

    Without --embedding the model is the configured default, and the first ingest may
    switch it: a base whose first documents are mostly Chinese gets the multilingual one.
    """
    state = cli_state(ctx)

    def run() -> KnowledgeBaseInfo:
        # An empty --embedding means "not chosen", as it always has.
        chosen = embedding or None
        return state.platform.create_knowledge_base(name, embedding=chosen, index_kind=index)

    info = guard(run)
    if as_json:
        print_json(asdict(info))
    else:
        kind = index or state.settings.index_kind
        out.print(f"created knowledge base [bold]{name}[/] ({info.embedding_model}, {kind})")


@kb_app.command("list")
def kb_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List knowledge bases."""
    state = cli_state(ctx)
    infos = guard(state.platform.kbs.list_all)
    if as_json:
        print_json([asdict(i) for i in infos])
        return
    if not infos:
        out.print("no knowledge bases yet; create one with `rag ingest PATH --kb NAME`")
        return
    table = Table()
    for column in ("name", "documents", "failed", "chunks", "embedding", "index", "updated"):
        table.add_column(column)
    for info in infos:
        table.add_row(
            info.name,
            str(info.documents),
            str(info.failed_documents),
            str(info.chunks),
            info.embedding_model,
            info.index_kind,
            info.updated_at.strftime("%Y-%m-%d"),
        )
    out.print(table)


@kb_app.command("show")
def kb_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one knowledge base: model, index, counts and the last ingest run."""
    state = cli_state(ctx)
    info = guard(lambda: state.platform.kbs.get(name))
    run = guard(lambda: state.platform.kbs.latest_run(name))
    last_run = None
    if run is not None:
        last_run = {
            "status": run.status,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "files_new": run.files_new,
            "files_updated": run.files_updated,
            "files_skipped": run.files_skipped,
            "files_failed": run.files_failed,
            "files_removed": run.files_removed,
            "chunks_added": run.chunks_added,
            "seconds": run.seconds,
        }
    if as_json:
        print_json({**asdict(info), "last_run": last_run})
        return
    table = Table(show_header=False, title=f"knowledge base {name}")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in asdict(info).items():
        table.add_row(key, str(value))
    if last_run is not None:
        table.add_row(
            "last run",
            f"{last_run['status']}: {last_run['files_new']} new, {last_run['files_updated']} "
            f"updated, {last_run['files_skipped']} skipped, {last_run['files_failed']} failed, "
            f"{last_run['chunks_added']} chunks in {last_run['seconds']:.1f} s",
        )
    out.print(table)


@kb_app.command("delete")
def kb_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a knowledge base with its documents and indexes."""
    state = cli_state(ctx)
    info = guard(lambda: state.platform.kbs.get(name))
    if not yes:
        if not sys.stdin.isatty():
            err.print("[bold red]error:[/] refusing to delete without confirmation; pass --yes")
            raise typer.Exit(EXIT_USAGE)
        typer.confirm(
            f"delete knowledge base {name!r} ({info.documents} documents, {info.chunks} chunks)?",
            abort=True,
        )
    guard(lambda: state.platform.kbs.delete(name))
    state.platform.forget(name)
    out.print(f"deleted knowledge base [bold]{name}[/]")


@kb_app.command("check")
def kb_check(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Prove that catalog, FAISS and BM25 agree; exit 1 with a report if not."""
    state = cli_state(ctx)
    report = guard(lambda: state.platform.kbs.check(name))
    if as_json:
        print_json({**asdict(report), "ok": report.ok})
    else:
        status = "[green]ok[/]" if report.ok else "[bold red]INCONSISTENT[/]"
        out.print(
            f"{name}: {status} (generation {report.generation}: {report.documents_indexed} "
            f"documents indexed, {report.documents_failed} failed; {report.catalog_chunks} "
            f"catalog chunks, {report.faiss_vectors} FAISS vectors, {report.bm25_entries} "
            "BM25 entries)"
        )
        for problem in report.problems:
            out.print(f"  - {problem}", highlight=False)
        if not report.ok:
            out.print(f"repair with `rag kb rebuild {name}`")
    raise typer.Exit(EXIT_OK if report.ok else EXIT_PARTIAL)


@kb_app.command("rebuild")
def kb_rebuild(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    index: Annotated[
        IndexKind | None, typer.Option("--index", help="Switch the FAISS index kind.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rebuild the FAISS and BM25 indexes from the catalog."""
    state = cli_state(ctx)
    report = guard(lambda: state.platform.kbs.rebuild(name, index_kind=index))
    if as_json:
        print_json({**asdict(report), "ok": report.ok})
    else:
        out.print(
            f"rebuilt {name}: generation {report.generation}, {report.faiss_vectors} vectors, "
            f"{report.bm25_entries} BM25 entries; check {'ok' if report.ok else 'FAILED'}"
        )
    raise typer.Exit(EXIT_OK if report.ok else EXIT_PARTIAL)
