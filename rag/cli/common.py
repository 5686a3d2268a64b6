"""What every `rag` command shares: the context object, exit codes and output helpers.

Exit codes: 0 everything landed; 1 some files failed (the rest landed) or a check found
problems; 2 usage errors (bad arguments, unknown knowledge base, bad settings); 3 the
environment is at fault (catalog unreachable, model missing, lock held too long).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rag.config import GeneratorBackend, RetrievalMode, Settings
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
from rag.platform import GeneratorChoice, Platform

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3

#: Results go to stdout; progress, warnings and errors to stderr.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")


class CliContext:
    """What the root callback builds once and every command reads.

    Args:
        settings: the settings built from ``--home``, the environment and the config file.
        platform: the one composition root of this process; by default one for
            ``settings``.
    """

    def __init__(self, settings: Settings, platform: Platform | None = None) -> None:
        self.settings = settings
        self.platform = platform or Platform(settings)


def cli_state(ctx: typer.Context) -> CliContext:
    """The :class:`CliContext` the root callback stored on ``ctx``.

    Raises:
        RuntimeError: the root callback did not run (a command invoked on its own).
    """
    state = ctx.obj
    if not isinstance(state, CliContext):
        raise RuntimeError("the root callback did not run")
    return state


def exit_code(exc: RagError) -> int:
    """The exit code for a product error: usage (2) or environment (3)."""
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


def guard(action: Callable[[], T]) -> T:
    """Run a command body, turning a RagError into one clear line and an exit code.

    Raises:
        typer.Exit: with :func:`exit_code`'s code when ``action`` raises a RagError.
    """
    try:
        return action()
    except RagError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        raise typer.Exit(exit_code(exc)) from exc


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(data: object) -> None:
    """Print ``data`` as indented JSON on stdout (datetimes as ISO text, paths as text)."""
    sys.stdout.write(json.dumps(data, default=_json_default, ensure_ascii=False, indent=2) + "\n")


def progress_bar(*, disable: bool = False) -> Progress:
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


# -- options of the commands that answer (ask, chat, eval) ---------------------------------

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


def answer_settings(
    settings: Settings,
    generator: str | None,
    model: str | None,
    base_url: str | None,
) -> Settings:
    """``settings`` with the generator options of a command applied.

    Args:
        settings: the process's settings.
        generator: ``--generator`` or None.
        model: ``--model`` or None.
        base_url: ``--base-url`` or None.
    """
    update: dict[str, object] = {}
    if generator is not None:
        update["generator"] = generator
    if model is not None:
        update["generator_model"] = model
    if base_url is not None:
        update["openai_base_url"] = base_url
    return settings.model_copy(update=update) if update else settings


def generator_choice(
    settings: Settings,
    generator: str | None,
    model: str | None,
    base_url: str | None,
) -> GeneratorChoice:
    """The platform's :class:`GeneratorChoice` for a command's generator options.

    The embedded backend runs one packaged model, so a ``--model`` (or a configured
    ``generator_model``) means nothing to it and is left out, as it always was.

    Args:
        settings: the process's settings (their ``generator`` when ``--generator`` is absent).
        generator: ``--generator`` or None.
        model: ``--model`` or None.
        base_url: ``--base-url`` or None.
    """
    backend = generator or settings.generator
    return GeneratorChoice(
        backend=generator or "",
        model="" if backend == "embedded" else model or "",
        base_url=base_url or "",
    )
