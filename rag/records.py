"""Frozen records that cross stage boundaries (chunker -> embedder -> store -> readers)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk as the chunker makes it, before it has a catalog id.

    Attributes:
        ordinal: position of the chunk within its document, from 0.
        text: the chunk's text, as embedded and shown to users.
        page: 1-based page the chunk starts on, when the format has pages.
        heading: the nearest heading above the chunk ("A > B" for nested ones), if any.
        char_start / char_end: span of ``text`` in the document's full text
            (``ParsedDocument.text``), end exclusive.
        token_count: tokens of the embedding model's tokenizer.
    """

    ordinal: int
    text: str
    page: int | None
    heading: str | None
    char_start: int
    char_end: int
    token_count: int


@dataclass(frozen=True, eq=False)
class DocumentToIndex:
    """One parsed, chunked and embedded file, ready to be written by the store.

    ``vectors`` holds one L2-normalised float32 row per chunk, in chunk order;
    ``bm25_tokens`` holds the sparse-index tokens of each chunk, in chunk order.
    """

    source: str
    sha256: str
    mime: str
    size_bytes: int
    chunks: tuple[ChunkDraft, ...]
    vectors: npt.NDArray[np.float32]
    bm25_tokens: tuple[tuple[str, ...], ...]
    parse_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.chunks):
            raise ValueError(
                f"vectors must have shape (len(chunks)={len(self.chunks)}, dim); "
                f"got {self.vectors.shape}"
            )
        if len(self.bm25_tokens) != len(self.chunks):
            raise ValueError(
                f"bm25_tokens must have one entry per chunk ({len(self.chunks)}); "
                f"got {len(self.bm25_tokens)}"
            )


@dataclass(frozen=True)
class FailedDocument:
    """A file that could not be indexed, kept in the catalog with its error."""

    source: str
    sha256: str
    mime: str
    size_bytes: int
    error: str


@dataclass(frozen=True)
class CheckReport:
    """What ``rag kb check`` found: ``ok`` only when catalog, FAISS and BM25 agree."""

    kb: str
    generation: int
    documents_indexed: int
    documents_failed: int
    catalog_chunks: int
    faiss_vectors: int
    bm25_entries: int
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems
