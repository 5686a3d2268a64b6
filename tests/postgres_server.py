"""A throwaway PostgreSQL server from Debian's packages, for the catalog tests.

``make test-postgres`` runs::

    python -m tests.postgres_server -- python -m pytest tests/rag/store/test_knowledge_bases.py ...

which creates a fresh cluster in a temporary folder, starts it on 127.0.0.1 on a free
port, runs the command with ``RAG_TEST_DATABASE_URL`` pointing at it, then stops the
server and deletes the folder. The suite's ``settings`` fixture gives every test its own
database on that server. Nothing is left behind, and the machine's own PostgreSQL cluster
(if any) is never touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: Debian installs each major version's server binaries here.
_DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
#: PostgreSQL refuses to run as root; Debian's package creates this account.
_SERVICE_ACCOUNT = "postgres"
_USER = "rag"


class PostgresUnavailable(RuntimeError):
    """The server binaries are not installed or the server did not start."""


def find_bindir() -> Path:
    """The newest installed PostgreSQL server's bin folder (``initdb``, ``pg_ctl``)."""
    candidates = sorted(
        Path("/").glob(_DEBIAN_BINDIRS.lstrip("/")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and "
        "PATH); install Debian's `postgresql` package (`make system-deps` does)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_service_account(command: Sequence[str]) -> list[str]:
    """Prefix ``command`` to run as the postgres account when we are root."""
    if os.geteuid() != 0:
        return list(command)
    return ["runuser", "-u", _SERVICE_ACCOUNT, "--", *command]


@contextmanager
def postgres_server(*, timeout: float = 60.0) -> Iterator[str]:
    """Run a fresh PostgreSQL on 127.0.0.1 and yield its SQLAlchemy URL.

    Raises:
        PostgresUnavailable: no server binaries, or the server did not become ready.
    """
    bindir = find_bindir()
    workdir = Path(tempfile.mkdtemp(prefix="rag-pg-"))
    data = workdir / "data"
    log = workdir / "server.log"
    port = _free_port()
    if os.geteuid() == 0:
        shutil.chown(workdir, user=_SERVICE_ACCOUNT)
    started = False
    try:
        subprocess.run(
            _as_service_account(
                [
                    str(bindir / "initdb"),
                    "--pgdata",
                    str(data),
                    "--username",
                    _USER,
                    # Only this machine's loopback can connect, and the cluster lives
                    # for one test run: trust authentication is enough.
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--no-instructions",
                ]
            ),
            check=True,
            capture_output=True,
            text=True,
        )
        # Durability of a throwaway cluster does not matter; the suite tests our
        # commit logic, not PostgreSQL's fsync. Sockets stay in the work folder so
        # nothing touches /var/run/postgresql.
        options = (
            f"-h 127.0.0.1 -p {port} -k {workdir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_service_account(
                [
                    str(bindir / "pg_ctl"),
                    "--pgdata",
                    str(data),
                    "--log",
                    str(log),
                    "--options",
                    options,
                    "--wait",
                    "--timeout",
                    str(int(timeout)),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            text=True,
        )
        started = True
        _wait_ready(bindir, port, timeout)
        yield f"postgresql+psycopg://{_USER}@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip()
        if log.is_file():
            detail += "\n" + log.read_text(errors="replace")[-2000:]
        raise PostgresUnavailable(f"PostgreSQL did not start: {detail}") from exc
    finally:
        if started:
            subprocess.run(
                _as_service_account(
                    [str(bindir / "pg_ctl"), "--pgdata", str(data), "--mode", "fast", "stop"]
                ),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(bindir: Path, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", _USER],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return
        time.sleep(0.2)
    raise PostgresUnavailable(f"PostgreSQL on 127.0.0.1:{port} not ready after {timeout:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Start a server, run the command after ``--`` against it, stop the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command [args...]")
    args = parser.parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("give the command to run after --")
    try:
        with postgres_server() as url:
            print(f"PostgreSQL ready at {url}", file=sys.stderr, flush=True)
            env = {**os.environ, "RAG_TEST_DATABASE_URL": url}
            return subprocess.run(command, env=env, check=False).returncode
    except PostgresUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
