"""`rag ui` and `rag hash-password`: start the web UI and set its password."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from rag.cli.common import EXIT_ENVIRONMENT, EXIT_USAGE, cli_state, err, out


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

    state = cli_state(ctx)
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


def hash_password_command() -> None:
    """Print a hash for RAG_UI_PASSWORD_HASH: the web UI then asks for this password."""
    from ui.auth import hash_password

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        out.print(hash_password(password), highlight=False)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
