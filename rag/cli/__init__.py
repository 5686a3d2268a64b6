"""The `rag` command line.

Exit codes: 0 everything landed; 1 some files failed (the rest landed) or a check found
problems; 2 usage errors (bad arguments, unknown knowledge base, bad settings); 3 the
environment is at fault (catalog unreachable, model missing, lock held too long).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rag.config import GeneratorBackend, IndexKind, IngestEngine, RetrievalMode, Settings
from rag.errors import (
    CatalogError,
    ConfigError,
    DocumentNotFoundError,
    EmbeddingModelError,
    GenerationError,
    IndexCorruptError,
    KnowledgeBaseExistsError,
    KnowledgeBaseNotFoundError,
    LockTimeoutError,
    ModelIntegrityError,
    RagError,
    RetrievalError,
)
from rag.prompt import source_title
from rag.records import Answer, ChatMessage, RetrievedChunk
from rag.store.catalog import Catalog
from rag.store.knowledge_bases import KnowledgeBaseInfo, KnowledgeBases, remove_document

if TYPE_CHECKING:
    from evals.runner import FolderIndexer
    from ingest.pipeline import IngestSummary

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3

app = typer.Typer(
    help="Documents in, grounded answers out: ingest files, manage knowledge bases, ask questions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
kb_app = typer.Typer(
    help="Create, inspect, check, rebuild and delete knowledge bases.", no_args_is_help=True
)
docs_app = typer.Typer(
    help="List and remove the documents of a knowledge base.", no_args_is_help=True
)
eval_app = typer.Typer(
    help="Compare RAG with prompt-only and fine-tuned baselines on your documents.",
    no_args_is_help=True,
)
app.add_typer(kb_app, name="kb")
app.add_typer(docs_app, name="docs")
app.add_typer(eval_app, name="eval")
models_app = typer.Typer(
    help="Install optional local models (e.g. a Chinese-capable generator).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")


class _Context:
    """What the root callback builds once and every command reads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = Catalog(settings.catalog_url)
        self.kbs = KnowledgeBases(settings, self.catalog)


def _state(ctx: typer.Context) -> _Context:
    state = ctx.obj
    if not isinstance(state, _Context):
        raise RuntimeError("the root callback did not run")
    return state


def _exit_code(exc: RagError) -> int:
    from ingest.errors import RayEngineError

    if isinstance(
        exc,
        KnowledgeBaseNotFoundError | KnowledgeBaseExistsError | DocumentNotFoundError | ConfigError,
    ):
        return EXIT_USAGE
    if isinstance(
        exc,
        CatalogError
        | EmbeddingModelError
        | LockTimeoutError
        | IndexCorruptError
        | GenerationError
        | RetrievalError
        | ModelIntegrityError
        | RayEngineError,
    ):
        return EXIT_ENVIRONMENT
    # Ingest errors at run level (a path that matches nothing) are usage errors too.
    return EXIT_USAGE


def _guard(action: Callable[[], T]) -> T:
    """Run a command body, turning a RagError into one clear line and an exit code."""
    try:
        return action()
    except RagError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        raise typer.Exit(_exit_code(exc)) from exc


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, default=_json_default, ensure_ascii=False, indent=2) + "\n")


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Where catalog and indexes live (default: $RAG_HOME or a per-user data dir).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    """Documents in, grounded answers out."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Some libraries (bm25s) set DEBUG on their own loggers; filter at the handler too.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    # Nothing in this product may reach a model hub at run time; say so to the libraries
    # (before they are imported). Our own progress bar replaces the libraries' ones.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        settings = Settings.load(home=home)
    except ValidationError as exc:
        err.print(f"[bold red]error:[/] invalid settings: {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    except ValueError as exc:
        err.print(f"[bold red]error:[/] invalid settings: {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    ctx.obj = _Context(settings)


# -- ingest ---------------------------------------------------------------------------------


def _progress_bar(*, disable: bool = False) -> Progress:
    """The one progress-bar layout of the CLI, drawn on stderr and removed when done."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=disable,
    )


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


@app.command()
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

    state = _state(ctx)
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
    pipeline = IngestPipeline(settings, KnowledgeBases(settings, state.catalog))

    def run() -> IngestSummary:
        if as_json or not sys.stderr.isatty():
            return pipeline.run(
                paths, kb=kb, prune=prune, embedding_model=embedding, index_kind=index
            )
        with _progress_bar() as bar:
            return pipeline.run(
                paths,
                kb=kb,
                prune=prune,
                embedding_model=embedding,
                index_kind=index,
                progress=_RichProgress(bar),
            )

    summary = _guard(run)
    if as_json:
        data = asdict(summary)
        data["failures"] = [{"source": s, "error": e} for s, e in summary.failures]
        data["chunks_per_second"] = round(summary.chunks_per_second, 2)
        data["files_per_second"] = round(summary.files_per_second, 3)
        _print_json(data)
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


# -- ask / chat -----------------------------------------------------------------------------

GeneratorOption = Annotated[
    GeneratorBackend | None,
    typer.Option("--generator", help="embedded (packaged SmolLM2), hf (local model) or openai."),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="hf: model folder, .gguf file or an installed model (qwen-0.5b); openai: the "
        "served model name.",
    ),
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."),
]
RetrievalOption = Annotated[
    RetrievalMode | None, typer.Option("--retrieval", help="dense, bm25 or hybrid (default).")
]
KOption = Annotated[int | None, typer.Option("--k", min=1, max=200, help="Chunks to retrieve.")]


def _answer_settings(
    settings: Settings,
    generator: str | None,
    model: str | None,
    base_url: str | None,
) -> Settings:
    update: dict[str, object] = {}
    if generator is not None:
        update["generator"] = generator
    if model is not None:
        update["generator_model"] = model
    if base_url is not None:
        update["openai_base_url"] = base_url
    return settings.model_copy(update=update) if update else settings


def _answer_json(answer: Answer) -> dict[str, object]:
    data = asdict(answer)
    for chunk in data["retrieved"]:
        chunk["n"] = chunk["rank"]
    return data


def _location(source: str, page: int | None, heading: str | None) -> str:
    """``file · page N · heading`` for a cited or retrieved chunk."""
    where = [source_title(source)]
    if page is not None:
        where.append(f"page {page}")
    if heading:
        where.append(heading)
    return " · ".join(where)


def _echo_stream(pieces: Iterator[str | Answer]) -> Answer:
    """Print a chain's text pieces as they arrive; return the final Answer."""
    final: Answer | None = None
    for piece in pieces:
        if isinstance(piece, Answer):
            final = piece
        else:
            out.print(piece, end="", highlight=False, markup=False)
    out.print()
    if final is None:  # pragma: no cover - the chain's stream always ends with an Answer
        raise RuntimeError("the chain produced no answer")
    return final


def _print_sources(answer: Answer) -> None:
    if answer.refused:
        return
    if not answer.citations:
        err.print("[yellow]unsupported:[/] the answer cites no source; treat it with care")
        return
    out.print()
    for citation in answer.citations:
        where = _location(citation.source, citation.page, citation.heading)
        mark = " (attributed)" if citation.inferred else ""
        out.print(f"[bold][{citation.n}][/] {where}{mark}", highlight=False)
        out.print(f"    {citation.text.strip()[:300]}", highlight=False, markup=False)


def _print_retrieved(chunks: tuple[RetrievedChunk, ...]) -> None:
    if not chunks:
        out.print("no chunk cleared the score floor")
        return
    for chunk in chunks:
        where = _location(chunk.source, chunk.page, chunk.heading)
        out.print(f"[bold][{chunk.rank}][/] {chunk.score:.4f}  {where}", highlight=False)
        out.print(f"    {chunk.text.strip()[:300]}", highlight=False, markup=False)


def _single_query_threads() -> None:
    """One query at a time: FAISS's OpenMP threads only add contention (measured 8-48 ms
    per flat search with the default threads on a busy 2-core machine, 0.04-2.7 ms with
    one). Process-wide, so set here at the entry point, not in the library."""
    import faiss

    faiss.omp_set_num_threads(1)


@app.command()
def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question.")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base to answer from.")],
    generator: GeneratorOption = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    retrieval: RetrievalOption = None,
    k: KOption = None,
    no_generate: Annotated[
        bool, typer.Option("--no-generate", help="Retrieval only: print the ranked chunks.")
    ] = False,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only these documents (repeatable).")
    ] = None,
    path_glob: Annotated[
        str | None, typer.Option("--path-glob", help="Only documents whose path matches.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Answer a question from a knowledge base, with numbered, checked citations."""
    from rag.chain import RagChain
    from rag.retrieve import RetrievalFilter

    state = _state(ctx)
    _single_query_threads()
    settings = _answer_settings(state.settings, generator, model, base_url)
    filters = None
    if source or path_glob:
        sources = tuple(str(Path(s).expanduser().resolve()) for s in source or ())
        filters = RetrievalFilter(sources=sources, path_glob=path_glob)

    def run() -> Answer:
        chain = RagChain.for_knowledge_base(settings, state.kbs, kb, with_generator=not no_generate)
        if no_generate or as_json:
            return chain.answer(
                question, k=k, mode=retrieval, filters=filters, generate=not no_generate
            )
        return _echo_stream(chain.stream(question, k=k, mode=retrieval, filters=filters))

    answer = _guard(run)
    if as_json:
        _print_json(_answer_json(answer))
    elif no_generate:
        _print_retrieved(answer.retrieved)
    else:
        _print_sources(answer)


@app.command()
def chat(
    ctx: typer.Context,
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base to answer from.")],
    generator: GeneratorOption = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    retrieval: RetrievalOption = None,
    k: KOption = None,
) -> None:
    """Multi-turn chat in the terminal; follow-up questions use the history.

    Type /clear to forget the history, /exit (or Ctrl-D) to leave.
    """
    from rag.chain import RagChain

    state = _state(ctx)
    _single_query_threads()
    settings = _answer_settings(state.settings, generator, model, base_url)
    chain = _guard(lambda: RagChain.for_knowledge_base(settings, state.kbs, kb))
    history: list[ChatMessage] = []
    out.print(f"chatting with [bold]{kb}[/]; /clear forgets the history, /exit leaves")
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            out.print()
            break
        if not question:
            continue
        if question in ("/exit", "/quit"):
            break
        if question == "/clear":
            history.clear()
            out.print("history cleared")
            continue

        def turn(question: str = question) -> Answer:
            out.print("rag> ", end="")
            return _echo_stream(chain.stream(question, history=history, k=k, mode=retrieval))

        try:
            answer = turn()
        except RagError as exc:
            err.print(f"[bold red]error:[/] {exc}")
            continue
        _print_sources(answer)
        history.extend([ChatMessage("user", question), ChatMessage("assistant", answer.answer)])


# -- kb -------------------------------------------------------------------------------------


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
    from rag.config import DEFAULT_EMBEDDING_MODEL
    from rag.embed import build_embedder, canonical_model_name

    state = _state(ctx)
    model = canonical_model_name(embedding or state.settings.embedding_model)
    auto = embedding is None and model == DEFAULT_EMBEDDING_MODEL

    def run() -> KnowledgeBaseInfo:
        dimension = build_embedder(model, device=state.settings.device).dimension
        return state.kbs.create(
            name,
            embedding_model=model,
            embedding_dim=dimension,
            index_kind=index,
            embedding_auto=auto,
        )

    info = _guard(run)
    if as_json:
        _print_json(asdict(info))
    else:
        kind = index or state.settings.index_kind
        out.print(f"created knowledge base [bold]{name}[/] ({model}, {kind})")


@kb_app.command("list")
def kb_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List knowledge bases."""
    state = _state(ctx)
    infos = _guard(state.kbs.list_all)
    if as_json:
        _print_json([asdict(i) for i in infos])
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
    state = _state(ctx)
    info = _guard(lambda: state.kbs.get(name))
    run = _guard(lambda: state.kbs.latest_run(name))
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
        _print_json({**asdict(info), "last_run": last_run})
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
    state = _state(ctx)
    info = _guard(lambda: state.kbs.get(name))
    if not yes:
        if not sys.stdin.isatty():
            err.print("[bold red]error:[/] refusing to delete without confirmation; pass --yes")
            raise typer.Exit(EXIT_USAGE)
        typer.confirm(
            f"delete knowledge base {name!r} ({info.documents} documents, {info.chunks} chunks)?",
            abort=True,
        )
    _guard(lambda: state.kbs.delete(name))
    out.print(f"deleted knowledge base [bold]{name}[/]")


@kb_app.command("check")
def kb_check(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Prove that catalog, FAISS and BM25 agree; exit 1 with a report if not."""
    state = _state(ctx)
    report = _guard(lambda: state.kbs.check(name))
    if as_json:
        _print_json({**asdict(report), "ok": report.ok})
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
    state = _state(ctx)
    report = _guard(lambda: state.kbs.rebuild(name, index_kind=index))
    if as_json:
        _print_json({**asdict(report), "ok": report.ok})
    else:
        out.print(
            f"rebuilt {name}: generation {report.generation}, {report.faiss_vectors} vectors, "
            f"{report.bm25_entries} BM25 entries; check {'ok' if report.ok else 'FAILED'}"
        )
    raise typer.Exit(EXIT_OK if report.ok else EXIT_PARTIAL)


# -- docs -----------------------------------------------------------------------------------


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
    state = _state(ctx)
    docs = _guard(lambda: state.kbs.documents(kb))
    if status is not None:
        docs = [d for d in docs if d.status == status]
    if as_json:
        _print_json([asdict(d) for d in docs])
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
    state = _state(ctx)
    # The catalog keys documents by absolute path; the file itself may be gone already.
    source = str(Path(file).expanduser().resolve())
    result = _guard(lambda: remove_document(state.kbs, kb, source))
    out.print(f"removed {source} ({result.chunks_removed} chunks)", highlight=False)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


# -- evaluation (the evals package; imported only when these commands run) ----------------


class _EvalProgress:
    """One rich bar per phase of an evaluation run (indexing, fine-tuning, answering)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: Any = None

    def phase(self, name: str, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._task = self._progress.add_task(name, total=total or None)

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=steps)


def _index_folder(settings: Settings, kbs: KnowledgeBases) -> FolderIndexer:
    """The product's ingest pipeline as the evaluation's corpus indexer."""

    def index(folder: Path, kb: str) -> None:
        from ingest.pipeline import IngestPipeline

        summary = IngestPipeline(settings, kbs).run([str(folder)], kb=kb)
        if summary.files_failed:
            err.print(f"[yellow]{summary.files_failed} corpus files failed to ingest[/]")

    return index


def _strategy_list(value: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in value.split(",") if s.strip())


@eval_app.command("run")
def eval_run(
    ctx: typer.Context,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="squad:PATH, cmrc:PATH, beir:FOLDER, or a .jsonl question file (with --kb).",
        ),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Run folder for report.json/md and plots.")
    ],
    strategies: Annotated[
        str,
        typer.Option(
            "--strategies",
            help="Comma-separated: closed-book, few-shot, cot, rag, lora, full-ft, lora+rag, "
            "full-ft+rag; bm25, dense, hybrid for retrieval datasets.",
        ),
    ] = "closed-book,few-shot,rag",
    kb: Annotated[
        str | None, typer.Option("--kb", help="Answer from this knowledge base (JSONL sets).")
    ] = None,
    articles: Annotated[
        int | None,
        typer.Option("--articles", min=1, help="SQuAD/CMRC: the first N articles (default 5)."),
    ] = None,
    questions: Annotated[
        int | None,
        typer.Option(
            "--questions",
            min=1,
            help="SQuAD/CMRC: questions to sample, train + test (default 60); BEIR: the "
            "first N queries (default all); JSONL: a sample (default all).",
        ),
    ] = None,
    unanswerable: Annotated[
        int,
        typer.Option("--unanswerable", min=0, help="Add questions the corpus cannot answer."),
    ] = 10,
    test_fraction: Annotated[
        float,
        typer.Option(
            "--test-fraction", help="Share of questions held out for testing.", show_default="2/3"
        ),
    ] = 2 / 3,
    split: Annotated[str, typer.Option("--split", help="BEIR qrels split.")] = "test",
    retrieval: RetrievalOption = None,
    k: KOption = None,
    few_shot_k: Annotated[int, typer.Option("--few-shot-k", min=1)] = 3,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 32,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Questions generated per batch.")
    ] = 8,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Fine-tuning steps.")] = 40,
    lr: Annotated[float | None, typer.Option("--lr", help="Fine-tuning learning rate.")] = None,
    lora_r: Annotated[int, typer.Option("--lora-r", min=1)] = 16,
    seq_len: Annotated[int, typer.Option("--seq-len", min=16)] = 160,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    embedding: Annotated[
        str | None,
        typer.Option(
            "--embedding",
            help="Embedding model of the evaluation knowledge base (all-MiniLM-L6-v2, "
            "multilingual, a folder); default: chosen by the documents' language.",
        ),
    ] = None,
    generator: GeneratorOption = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the headline metrics as JSON.")
    ] = False,
) -> None:
    """Run strategies on a dataset and write report.json, report.md and plots."""
    from evals.runner import EvalRunner, RunConfig
    from rag.platform import Platform

    state = _state(ctx)
    settings = _answer_settings(state.settings, generator, model, base_url)
    kbs = KnowledgeBases(settings, state.catalog)
    config = _guard(
        lambda: RunConfig(
            dataset=dataset,
            out=out_dir,
            strategies=_strategy_list(strategies),
            kb=kb,
            articles=articles,
            questions=questions,
            unanswerable=unanswerable,
            test_fraction=test_fraction,
            split=split,
            retrieval_mode=retrieval,
            k=k,
            few_shot_k=few_shot_k,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            finetune_steps=steps,
            finetune_lr=lr,
            lora_r=lora_r,
            finetune_seq_len=seq_len,
            seed=seed,
            embedding=embedding,
        )
    )

    def execute() -> dict[str, Any]:
        with _progress_bar(disable=as_json or not sys.stderr.isatty()) as bar:
            runner = EvalRunner(
                Platform(settings, catalog=state.catalog),
                index_folder=_index_folder(settings, kbs),
                progress=_EvalProgress(bar),
            )
            return runner.run(config).to_dict()

    report = _guard(execute)
    if as_json:
        _print_json({n: d["metrics"] for n, d in report["strategies"].items()})
        return
    _print_eval_table(report)
    written = ", ".join(sorted(p.name for p in out_dir.iterdir() if p.is_file()))
    out.print(f"wrote {out_dir}: {written}")


def _print_eval_table(report: dict[str, Any]) -> None:
    from evals.report import scored_as_retrieval

    retrieval = scored_as_retrieval(report)
    # Short headers so the table fits an 80-column terminal; report.md has them all.
    keys = (
        (
            ("ndcg@10", "nDCG@10"),
            ("recall@5", "R@5"),
            ("recall@10", "R@10"),
            ("recall@100", "R@100"),
            ("mrr", "MRR"),
        )
        if retrieval
        else (
            ("f1", "F1"),
            ("em", "EM"),
            ("contains", "has ans"),
            ("citation_precision", "cite P"),
            ("refusal_rate_unanswerable", "refuse ?"),
        )
    )
    main = report.get("main_metric", "f1")
    table = Table(title=f"{report['dataset']['spec']} ({report['dataset']['language']})")
    table.add_column("strategy", no_wrap=True)
    for _, title in keys:
        table.add_column(title, justify="right")
    table.add_column("ms/q" if retrieval else "s/q", justify="right")
    table.add_column(f"Δ{main}", no_wrap=True)
    for name, data in report["strategies"].items():
        cells = []
        for key, _ in keys:
            value = data["metrics"].get(key)
            cells.append("–" if value is None else f"{value:.3f}")
        p50 = data.get("latency", {}).get("total", {}).get("p50")
        if p50 is None:
            cells.append("–")
        else:
            cells.append(f"{p50 * 1000:.1f}" if retrieval else f"{p50:.2f}")
        vs = data.get("vs_best")
        if data.get("best"):
            cells.append("best")
        elif vs:
            diff = vs["difference"]["mean"]
            cells.append(f"{diff:+.3f}{' ≈' if vs['within_noise'] else ''}")
        else:
            cells.append("–")
        label = f"[bold]{name}[/]" if data.get("best") else name
        table.add_row(label, *cells)
    out.print(table)
    if not retrieval:
        out.print(
            "has ans: the reference answer is in the answer; cite P: citation precision; "
            "refuse ?: refusal rate on unanswerable questions; s/q: p50 seconds per "
            f"question; Δ{main}: paired difference to the best (≈: within noise)"
        )
    else:
        out.print(
            f"ms/q: p50 milliseconds per query; Δ{main}: paired difference to the best "
            "(≈: within noise)"
        )


@eval_app.command("synth")
def eval_synth(
    ctx: typer.Context,
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base to write questions about.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Questions wanted.")],
    output: Annotated[Path, typer.Option("--out", help="JSONL file to write.")],
    seed: Annotated[int, typer.Option("--seed")] = 13,
    generator: GeneratorOption = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
) -> None:
    """Write a checked question set from a knowledge base with the generator."""
    from evals.synth import synthesize, write_jsonl
    from rag.generate import build_generator
    from rag.store.reader import KnowledgeBaseReader

    state = _state(ctx)
    settings = _answer_settings(state.settings, generator, model, base_url)

    def execute() -> Any:
        reader = KnowledgeBaseReader(state.kbs, kb)
        backend = build_generator(settings)
        with _progress_bar(disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("writing questions", total=n)
            result = synthesize(
                reader,
                backend,
                n=n,
                seed=seed,
                on_batch=lambda kept, _tried: bar.update(task, completed=min(kept, n)),
            )
        write_jsonl(result.rows, output)
        return result

    result = _guard(execute)
    out.print(
        f"wrote {len(result.rows)} questions to {output} "
        f"({result.attempted} passages tried, {result.acceptance:.0%} kept)"
    )
    if len(result.rows) < n:
        err.print(
            f"[yellow]only {len(result.rows)} of {n} candidates passed the check (the answer "
            "must be copied from the passage); a stronger generator keeps more[/]"
        )


@eval_app.command("report")
def eval_report(
    run_dir: Annotated[Path, typer.Argument(help="The --out folder of a run.")],
) -> None:
    """Re-render report.md and the plots of a run from its report.json."""
    from evals.report import load_report, render

    written = _guard(lambda: render(run_dir))
    _print_eval_table(_guard(lambda: load_report(run_dir)))
    out.print(f"rendered {', '.join(p.name for p in written)} in {run_dir}")


@eval_app.command("list")
def eval_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the evaluation runs recorded in the catalog."""
    from sqlalchemy import select

    from rag.store.schema import EvalRunRow

    state = _state(ctx)
    with state.catalog.session() as session:
        rows = list(session.scalars(select(EvalRunRow).order_by(EvalRunRow.id)))
        runs = [
            {
                "id": r.id,
                "name": r.name,
                "dataset": r.dataset,
                "status": r.status,
                "out_dir": r.out_dir,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "strategies": json.loads(r.strategies_json),
                "summary": json.loads(r.summary_json),
                "error": r.error,
            }
            for r in rows
        ]
    if as_json:
        _print_json(runs)
        return
    table = Table(title="evaluation runs")
    for column in ("id", "name", "dataset", "status", "strategies", "folder"):
        table.add_column(column)
    for r in runs:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["dataset"],
            r["status"],
            ",".join(r["strategies"]),
            r["out_dir"],
        )
    out.print(table)


# -- optional models -------------------------------------------------------------------------


@models_app.command("list")
def models_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """The optional models, whether each is installed, and where they come from."""
    from rag.generate.models import MODELS, installed_model_path

    state = _state(ctx)
    rows = [
        {
            "name": m.name,
            "title": m.title,
            "installed": str(path)
            if (path := installed_model_path(state.settings.home, m.name))
            else None,
            "size_bytes": m.size,
            "sha256": m.sha256,
            "license": m.license,
            "provenance": m.provenance,
        }
        for m in MODELS.values()
    ]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        status = f"installed at {row['installed']}" if row["installed"] else "not installed"
        out.print(f"[bold]{row['name']}[/]: {row['title']} ({status})")
        out.print(f"  license: {row['license']}; source: {row['provenance']}", highlight=False)


@models_app.command("install")
def models_install(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model to install (see `rag models list`).")],
    wheels_from: Annotated[
        Path | None,
        typer.Option("--from", help="A folder with the part wheels already downloaded."),
    ] = None,
) -> None:
    """Download the model's parts, join them, verify the sha256 and install the file."""
    from rag.generate.models import MODELS, install_model

    state = _state(ctx)
    model = MODELS.get(name)
    if model is None:
        err.print(f"[bold red]error:[/] unknown model {name!r}; choose one of {', '.join(MODELS)}")
        raise typer.Exit(EXIT_USAGE)
    err.print(f"{model.title}\n  source: {model.provenance}", highlight=False)
    with err.status(f"downloading and verifying {model.size / 1e6:.0f} MB"):
        path = _guard(lambda: install_model(state.settings.home, model, wheels_dir=wheels_from))
    out.print(f"installed {name}: {path} (sha256 verified)")
    out.print(f"use it with: rag ask QUESTION --kb KB --generator hf --model {name}")


# -- web UI ----------------------------------------------------------------------------------


@app.command("ui")
def ui_command(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to bind; 0.0.0.0 exposes the UI to the network."),
    ] = "127.0.0.1",
) -> None:
    """Start the web UI (chat, knowledge bases, evaluations) at http://HOST:PORT."""
    import importlib.util
    import math

    state = _state(ctx)
    spec = importlib.util.find_spec("ui")
    if spec is None or spec.origin is None:
        err.print("[bold red]error:[/] the ui package is not installed; run `make setup`")
        raise typer.Exit(EXIT_ENVIRONMENT)
    app_path = Path(spec.origin).parent / "app.py"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.maxUploadSize",
        str(math.ceil(state.settings.ui_max_upload_mb)),
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]
    # The app builds its settings from the same sources; --home travels as RAG_HOME.
    env = {**os.environ, "RAG_HOME": str(state.settings.home)}
    out.print(f"web UI: http://{host}:{port}  (home {state.settings.home}; Ctrl-C stops it)")
    sys.stdout.flush()
    # Become the Streamlit server rather than wait for a child: a signal that stops
    # `rag ui` (Ctrl-C, a service manager's SIGTERM) then stops the server, never
    # leaving an orphan holding the port.
    os.execve(sys.executable, command, env)


@app.command("hash-password")
def hash_password_command() -> None:
    """Print a hash for RAG_UI_PASSWORD_HASH: the web UI then asks for this password."""
    from ui.auth import hash_password

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        out.print(hash_password(password), highlight=False)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc


def run() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    run()
