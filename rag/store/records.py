"""What the store hands out about knowledge bases: frozen records, no ORM rows.

These cross the store's boundary (to the CLI, the UI, ingestion and evaluations), so
they are plain frozen dataclasses that stay valid after the database session closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from rag.records import StoredChunk

#: A document whose chunks are in the catalog and both indexes.
STATUS_INDEXED = "indexed"
#: A document that could not be parsed; it keeps its row (and error) but no chunks.
STATUS_FAILED = "failed"


@dataclass(frozen=True)
class KnowledgeBaseInfo:
    """A knowledge base as listings show it."""

    id: int
    name: str
    embedding_model: str
    embedding_dim: int
    index_kind: str
    chunk_size: int
    chunk_overlap: int
    generation: int
    documents: int
    failed_documents: int
    chunks: int
    created_at: datetime
    updated_at: datetime
    embedding_auto: bool = False


@dataclass(frozen=True)
class DocumentInfo:
    """One document of a knowledge base as listings show it."""

    source: str
    status: str
    chunks: int
    error: str | None
    sha256: str
    mime: str
    size_bytes: int
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class CommitResult:
    """What one commit changed."""

    generation: int
    documents_new: int
    documents_updated: int
    documents_removed: int
    chunks_added: int
    chunks_removed: int


@dataclass(frozen=True)
class KnownDocument:
    """What the catalog already holds for a source, used to skip unchanged files."""

    sha256: str
    status: str


@dataclass(frozen=True)
class IngestRunInfo:
    """One ingest run of a knowledge base and its counts, as ``rag kb show`` reports it."""

    id: int
    kb_id: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    files_new: int
    files_updated: int
    files_skipped: int
    files_failed: int
    files_removed: int
    chunks_added: int
    chunks_removed: int
    seconds: float


@dataclass(frozen=True)
class IndexedChunk:
    """One stored chunk with what the indexes were built from (for exports and benches).

    Attributes:
        chunk: the chunk as readers see it.
        vector: its stored embedding (float32, read-only view of the catalog bytes).
        bm25_tokens: the tokens its BM25 entry was built from.
    """

    chunk: StoredChunk
    vector: npt.NDArray[np.float32]
    bm25_tokens: tuple[str, ...]
