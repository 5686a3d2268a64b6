"""Frozen records that cross stage boundaries (chunker -> embedder -> store -> readers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    #: Optional JSON-serialisable metadata per chunk (same order as ``chunks``).
    chunk_metadata: tuple[Mapping[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.chunks):
            raise ValueError(
                f"vectors must have shape (len(chunks)={len(self.chunks)}, dim); "
                f"got {self.vectors.shape}"
            )
        if self.chunk_metadata is not None and len(self.chunk_metadata) != len(self.chunks):
            raise ValueError(
                f"chunk_metadata must have one entry per chunk ({len(self.chunks)}); "
                f"got {len(self.chunk_metadata)}"
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


@dataclass(frozen=True, eq=False)
class StoredChunk:
    """A chunk as the catalog holds it, for readers (retrievers, the UI, adapters)."""

    chunk_id: int
    document_id: int
    source: str
    ordinal: int
    text: str
    page: int | None
    heading: str | None
    char_start: int
    char_end: int
    token_count: int
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrievedChunk:
    """A chunk a retriever returned for a query, with where it came from and why.

    Attributes:
        chunk_id: the catalog / FAISS / BM25 id.
        source: the document's path.
        text, page, heading, char_start, char_end: as stored for the chunk.
        score: the retriever's final score (cosine for dense, BM25 for sparse, RRF or
            the cross-encoder's score for hybrid / reranked results); higher is better.
        rank: 1-based position in the final ranking.
        dense_score: cosine similarity to the query when dense retrieval saw the chunk.
        sparse_score: BM25 score when sparse retrieval saw the chunk.
    """

    chunk_id: int
    source: str
    text: str
    page: int | None
    heading: str | None
    char_start: int
    char_end: int
    score: float
    rank: int
    dense_score: float | None = None
    sparse_score: float | None = None


@dataclass(frozen=True)
class Citation:
    """One numbered source an answer cites: ``[n]`` in the answer text maps to it.

    ``text`` is the quoted span of the chunk that supports the claim (the whole chunk
    when no narrower span is found); ``inferred`` is True when the generator wrote no
    marker and the citation was attributed by matching the answer against the sources.
    """

    n: int
    chunk_id: int
    source: str
    page: int | None
    heading: str | None
    text: str
    score: float
    inferred: bool = False


@dataclass(frozen=True)
class Answer:
    """What the chain returns: the text, its citations, the retrieval trace and timings.

    ``refused`` is True when the sources do not answer the question (the text then says
    so and no answer is invented); ``supported`` is False when the answer carries no
    valid citation. ``invalid_markers`` lists ``[n]`` markers that pointed at no source,
    or at a source sharing almost no words with the sentence (dropped from the citations).
    ``prompt_tokens`` and ``output_tokens`` are the generator's counts of the prompt's
    messages and of ``raw``, the generator's text before the citation check (all three
    stay 0 / empty when nothing was generated). ``sources`` holds the chunk ids of the
    sources packed into the prompt, in their ``[n]`` order (empty when no prompt was
    built); it can be shorter than ``retrieved`` when packing dropped some.
    """

    question: str
    answer: str
    refused: bool
    supported: bool
    citations: tuple[Citation, ...]
    retrieved: tuple[RetrievedChunk, ...]
    timings: dict[str, float]
    generator: dict[str, str]
    invalid_markers: tuple[int, ...] = ()
    language: str = "en"
    prompt_tokens: int = 0
    output_tokens: int = 0
    raw: str = ""
    sources: tuple[int, ...] = ()


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat prompt: ``role`` is ``system``, ``user`` or ``assistant``."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise ValueError(f"role must be system, user or assistant, got {self.role!r}")
