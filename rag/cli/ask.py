"""`rag ask` and `rag chat`: answers with numbered, checked citations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from rag.cli.common import (
    BaseUrlOption,
    GeneratorOption,
    KOption,
    ModelOption,
    RetrievalOption,
    answer_settings,
    cli_state,
    err,
    generator_choice,
    guard,
    out,
    print_json,
)
from rag.errors import RagError
from rag.prompt import source_title
from rag.records import Answer, ChatMessage, RetrievedChunk


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
    """Run FAISS searches on one thread, since the CLI asks one query at a time.

    FAISS's OpenMP threads only add contention here (measured 8-48 ms per flat search with
    the default threads on a busy 2-core machine, 0.04-2.7 ms with one). The setting is
    process-wide, so it is made at the entry point, not in the library.
    """
    import faiss

    faiss.omp_set_num_threads(1)


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
    from rag.retrieve.protocol import RetrievalFilter

    state = cli_state(ctx)
    _single_query_threads()
    settings = answer_settings(state.settings, generator, model, base_url)
    choice = generator_choice(state.settings, generator, model, base_url)
    filters = None
    if source or path_glob:
        sources = tuple(str(Path(s).expanduser().resolve()) for s in source or ())
        filters = RetrievalFilter(sources=sources, path_glob=path_glob)

    def run() -> Answer:
        chain = state.platform.chain(
            kb, generator=None if no_generate else choice, settings=settings
        )
        if no_generate or as_json:
            return chain.answer(
                question, k=k, mode=retrieval, filters=filters, generate=not no_generate
            )
        return _echo_stream(chain.stream(question, k=k, mode=retrieval, filters=filters))

    answer = guard(run)
    if as_json:
        print_json(_answer_json(answer))
    elif no_generate:
        _print_retrieved(answer.retrieved)
    else:
        _print_sources(answer)


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
    state = cli_state(ctx)
    _single_query_threads()
    settings = answer_settings(state.settings, generator, model, base_url)
    choice = generator_choice(state.settings, generator, model, base_url)
    chain = guard(lambda: state.platform.chain(kb, generator=choice, settings=settings))
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
