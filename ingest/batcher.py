"""Embedding parsed files in large batches and committing them to a knowledge base.

Each commit is atomic, so an interrupted run loses at most the files since the last
commit. Pre-embedded results (the Ray engine) wait for the same batch boundaries as local
ones, so both engines commit the same files together and assign the same chunk ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from ingest.parse import ParsedFile, ParseFailure
from rag.embed.protocol import Embedder
from rag.records import DocumentToIndex, FailedDocument
from rag.store.writer import KnowledgeBaseWriter

logger = logging.getLogger(__name__)


class IngestProgress(Protocol):
    """Progress callbacks; the CLI shows a bar, the library passes none."""

    def started(self, total_files: int) -> None:
        """The run knows how many files it will look at."""

    def file_done(self, source: str, outcome: str) -> None:
        """One file is finished: ``new``, ``updated``, ``skipped`` or ``failed``."""


class CommitBatcher:
    """Collects parsed files, embeds them in large batches and commits in big steps.

    Args:
        writer: the open writer of the knowledge base.
        embedder: embeds chunks that arrive without vectors.
        known: sources the base already holds (their files count as updated).
        commit_every: commit once this many embedded chunks wait.
        embed_every: embed once this many chunks wait.
        progress: told when each file is done, or None.
    """

    def __init__(
        self,
        writer: KnowledgeBaseWriter,
        embedder: Embedder,
        *,
        known: set[str],
        commit_every: int,
        embed_every: int,
        progress: IngestProgress | None,
    ) -> None:
        self.writer = writer
        self.embedder = embedder
        self.known = known
        self.commit_every = commit_every
        self.embed_every = embed_every
        self.progress = progress
        self._to_embed: list[tuple[ParsedFile, NDArray[np.float32] | None]] = []
        self._ready: list[DocumentToIndex] = []
        self._failed: list[FailedDocument] = []
        self.failures: list[tuple[str, str]] = []
        self.files_new = 0
        self.files_updated = 0
        self.chunks_added = 0
        self.chunks_removed = 0
        self.embed_seconds = 0.0

    def add(
        self,
        result: ParsedFile | ParseFailure,
        *,
        vectors: NDArray[np.float32] | None = None,
    ) -> None:
        """Queue one file's result; ``vectors`` when it was already embedded elsewhere.

        Args:
            result: a worker's result for one file.
            vectors: the file's chunk vectors when another engine embedded them.
        """
        if isinstance(result, ParseFailure):
            self._failed.append(
                FailedDocument(
                    result.source, result.sha256, result.mime, result.size_bytes, result.error
                )
            )
            self.failures.append((result.source, result.error))
            self._done(result.source, "failed")
        else:
            # Pre-embedded results wait for the same batch boundaries as local ones, so
            # both engines commit the same files together and assign the same chunk ids.
            self._to_embed.append((result, vectors))
            if sum(len(p.chunks) for p, _ in self._to_embed) >= self.embed_every:
                self._embed()
        if sum(len(d.chunks) for d in self._ready) >= self.commit_every:
            self._commit(removed_sources=[])

    def flush(self, *, removed_sources: Sequence[str]) -> None:
        """Embed and commit everything still waiting, with the sources pruned this run."""
        self._embed()
        if self._ready or self._failed or removed_sources:
            self._commit(removed_sources=removed_sources)

    def _embed(self) -> None:
        if not self._to_embed:
            return
        texts = [c.text for parsed, done in self._to_embed if done is None for c in parsed.chunks]
        vectors = np.zeros((0, 0), dtype=np.float32)
        if texts:
            started = time.perf_counter()
            vectors = self.embedder.embed_documents(texts)
            self.embed_seconds += time.perf_counter() - started
        offset = 0
        for parsed, done in self._to_embed:
            if done is None:
                count = len(parsed.chunks)
                done = vectors[offset : offset + count]
                offset += count
            self._ready.append(_to_index(parsed, done))
            self._done(parsed.source, "updated" if parsed.source in self.known else "new")
        self._to_embed = []

    def _commit(self, *, removed_sources: Sequence[str]) -> None:
        result = self.writer.commit(
            indexed=self._ready, failed=self._failed, removed_sources=removed_sources
        )
        for doc in self._ready:
            if doc.source in self.known:
                self.files_updated += 1
            else:
                self.files_new += 1
        self.chunks_added += result.chunks_added
        self.chunks_removed += result.chunks_removed
        logger.info(
            "committed generation %d: +%d chunks, -%d chunks",
            result.generation,
            result.chunks_added,
            result.chunks_removed,
        )
        self._ready = []
        self._failed = []

    def _done(self, source: str, outcome: str) -> None:
        if self.progress is not None:
            self.progress.file_done(source, outcome)


def _to_index(parsed: ParsedFile, vectors: NDArray[np.float32]) -> DocumentToIndex:
    return DocumentToIndex(
        source=parsed.source,
        sha256=parsed.sha256,
        mime=parsed.mime,
        size_bytes=parsed.size_bytes,
        chunks=parsed.chunks,
        vectors=np.asarray(vectors, dtype=np.float32),
        bm25_tokens=parsed.tokens,
        parse_seconds=parsed.seconds,
    )
