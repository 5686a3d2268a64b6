"""The worker side of the pipeline: load, chunk and BM25-tokenise one file.

Kept apart from :mod:`ingest.pipeline` so that spawned parse workers import only what
parsing needs (no FAISS, SQLAlchemy or torch), which keeps worker start-up short.
"""

from __future__ import annotations

import ctypes
import logging
import mimetypes
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ingest.chunk import Chunker
from ingest.document import ParsedDocument
from ingest.errors import ParseError
from ingest.load.loader import DocumentLoader
from rag.records import ChunkDraft
from rag.text.tokens import bm25_tokens

logger = logging.getLogger(__name__)

#: prctl option: the signal this process gets when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ParseTask:
    """One file for a worker: its path and the facts the main process already knows."""

    source: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class ParsedFile:
    """A worker's result for a file that parsed: its chunks and their BM25 tokens."""

    source: str
    sha256: str
    mime: str
    size_bytes: int
    chunks: tuple[ChunkDraft, ...]
    tokens: tuple[tuple[str, ...], ...]
    seconds: float


@dataclass(frozen=True)
class ParseFailure:
    """A worker's result for a file that could not be parsed."""

    source: str
    sha256: str
    mime: str
    size_bytes: int
    error: str


def guess_mime(path: str) -> str:
    """A MIME type from the file name, ``application/octet-stream`` when unknown."""
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


class FileParser:
    """Loads, chunks and BM25-tokenises files; one per worker process.

    Args:
        loader: reads a file into a parsed document.
        chunker: splits a parsed document into chunks.
    """

    def __init__(self, loader: DocumentLoader, chunker: Chunker) -> None:
        self.loader = loader
        self.chunker = chunker

    def parse(self, task: ParseTask) -> ParsedFile | ParseFailure:
        """Load, chunk and tokenise one file; a file that fails becomes a ParseFailure.

        Args:
            task: the file and what the main process knows of it.

        Returns:
            The parsed file, or the failure recorded against it.
        """
        started = time.perf_counter()
        try:
            document = self.loader.load(Path(task.source))
        except ParseError as exc:
            return _failure(task, str(exc))
        except Exception as exc:
            # Any third-party failure on one file (a parser bug, a malformed archive) must
            # be recorded against that file and never stop the run.
            logger.exception("unexpected error parsing %s", task.source)
            return _failure(
                task, f"{task.source}: unexpected {type(exc).__name__} while parsing: {exc}"
            )
        return self.parse_loaded(task, document, load_seconds=time.perf_counter() - started)

    def parse_loaded(
        self, task: ParseTask, document: ParsedDocument, *, load_seconds: float = 0.0
    ) -> ParsedFile | ParseFailure:
        """Chunk and tokenise a document that is already loaded (no second parse).

        Args:
            task: the file the document was loaded from.
            document: its parsed document.
            load_seconds: how long loading took, counted in the result's ``seconds``.

        Returns:
            The parsed file, or the failure recorded against it.
        """
        started = time.perf_counter()
        try:
            chunks = tuple(self.chunker.split(document))
        except ParseError as exc:
            return _failure(task, str(exc))
        except Exception as exc:
            # Any third-party failure on one file (a parser bug, a malformed archive) must
            # be recorded against that file and never stop the run.
            logger.exception("unexpected error parsing %s", task.source)
            return _failure(
                task, f"{task.source}: unexpected {type(exc).__name__} while parsing: {exc}"
            )
        if not chunks:
            return ParseFailure(
                task.source,
                task.sha256,
                document.mime,
                task.size_bytes,
                f"{task.source}: no text found in the file",
            )
        tokens = tuple(tuple(bm25_tokens(chunk.text)) for chunk in chunks)
        return ParsedFile(
            source=task.source,
            sha256=task.sha256,
            mime=document.mime,
            size_bytes=task.size_bytes,
            chunks=chunks,
            tokens=tokens,
            seconds=load_seconds + time.perf_counter() - started,
        )


def _failure(task: ParseTask, error: str) -> ParseFailure:
    """The failure to record for a file that could not be loaded or chunked."""
    return ParseFailure(task.source, task.sha256, guess_mime(task.source), task.size_bytes, error)


# Per-process state of a parse worker, set once by the pool initializer: the standard
# ProcessPoolExecutor pattern for keeping a loaded tokenizer across tasks. The main
# process never touches it.
_worker_parser: FileParser | None = None


def init_worker(parser: FileParser) -> None:
    """Set up a parse worker process: the pool's initializer.

    Keeps ``parser`` for :func:`parse_in_worker`, limits the worker to one thread and
    makes it end with its parent.
    """
    global _worker_parser
    # Parsing is single-threaded per worker; extra BLAS/tokenizer threads would only
    # fight the main process's embedding for the same cores.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["OMP_NUM_THREADS"] = "1"
    _die_with_parent()
    _worker_parser = parser


def _die_with_parent() -> None:
    """Ask Linux to end this worker when the ingest process dies (SIGKILL, OOM killer).

    Without it a killed ingest leaves its parse workers behind as orphans, each holding
    a loaded parser's memory, until the machine restarts.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # an unusual libc: orphans are the lesser harm
        logger.debug("prctl(PR_SET_PDEATHSIG) unavailable; workers may outlive a killed ingest")
        return
    if os.getppid() == 1:
        # The parent died before the request above took effect.
        os._exit(0)


def parse_in_worker(task: ParseTask) -> ParsedFile | ParseFailure:
    """Parse one file in a worker with the parser :func:`init_worker` kept.

    Raises:
        RuntimeError: the process was not started with :func:`init_worker`.
    """
    if _worker_parser is None:
        raise RuntimeError("parse worker used before its initializer ran")
    return _worker_parser.parse(task)
