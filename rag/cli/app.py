"""The `rag` Typer app: the root callback that builds the platform, and every command group.

Each group lives in its own module (:mod:`rag.cli.ingest`, :mod:`rag.cli.ask`,
:mod:`rag.cli.kb`, :mod:`rag.cli.docs`, :mod:`rag.cli.eval`, :mod:`rag.cli.models`,
:mod:`rag.cli.ui`); this module only registers them, in the order ``rag --help`` lists them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from rag.cli.ask import ask, chat
from rag.cli.common import EXIT_USAGE, CliContext, err
from rag.cli.docs import docs_app
from rag.cli.eval import eval_app
from rag.cli.ingest import ingest
from rag.cli.kb import kb_app
from rag.cli.models import models_app
from rag.cli.ui import hash_password_command, ui_command
from rag.config import Settings

app = typer.Typer(
    help="Documents in, grounded answers out: ingest files, manage knowledge bases, ask questions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(kb_app, name="kb")
app.add_typer(docs_app, name="docs")
app.add_typer(eval_app, name="eval")
app.add_typer(models_app, name="models")
app.command()(ingest)
app.command()(ask)
app.command()(chat)
app.command("ui")(ui_command)
app.command("hash-password")(hash_password_command)


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
    # The one composition root of this process: every command gets its objects from it.
    ctx.obj = CliContext(settings)


def run() -> None:
    """Console-script entry point."""
    app()
