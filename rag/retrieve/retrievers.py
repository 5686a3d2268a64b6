"""Dense, BM25 and hybrid (RRF) retrievers over one knowledge base reader.

All three share :class:`SnapshotRetriever`'s template: ``retrieve`` validates, takes the
newest index snapshot, resolves the filter, lets ``_search`` rank chunk ids and attaches
the catalog's text. Which chunks count as retrieved is explained in :mod:`rag.retrieve`.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from rag.embed.protocol import Embedder
from rag.errors import ConfigError
from rag.records import RetrievedChunk
from rag.retrieve.protocol import RetrievalFilter, check_retrieve_args, positive_int
from rag.retrieve.rankers import (
    DenseRanking,
    FilterResolver,
    Hit,
    dense_ranking,
    keyword_matches,
    materialize,
    sparse_ranking,
)
from rag.store.reader import KnowledgeBaseReader
from rag.store.snapshot import IndexSnapshot
from rag.text.tokens import bm25_tokens

logger = logging.getLogger(__name__)


class SnapshotRetriever(ABC):
    """Template for retrievers over one reader: checks, snapshot, filters, catalog lookup.

    :meth:`retrieve` validates the inputs, takes the newest index snapshot, resolves the
    filter, lets :meth:`_search` rank chunk ids and attaches the catalog's text.
    """

    def __init__(self, reader: KnowledgeBaseReader) -> None:
        self._reader = reader
        self._filters = FilterResolver()

    @property
    def reader(self) -> KnowledgeBaseReader:
        """The knowledge base reader this retriever searches."""
        return self._reader

    def retrieve(
        self, query: str, *, k: int, filters: RetrievalFilter | None = None
    ) -> list[RetrievedChunk]:
        """The ``k`` best chunks for ``query``, ranked 1..n (fewer when fewer qualify).

        Args:
            query: the question, in any language the knowledge base holds.
            k: most chunks to return, at least 1.
            filters: restrict to some documents; None searches the whole base.

        Returns:
            Chunks with text, source, page, heading and span, best first, ties by
            ascending chunk id; empty when nothing counts as retrieved.

        Raises:
            TypeError: ``query`` is not a string or ``filters`` not a RetrievalFilter.
            ValueError: ``query`` is blank or ``k`` is not a positive integer.
            ConfigError: the embedder's dimension differs from the knowledge base's.
        """
        check_retrieve_args(query, k, filters)
        started = time.perf_counter()
        snapshot = self._reader.snapshot()
        allowed = self._filters.allowed(self._reader, snapshot.generation, filters)
        hits = (
            []
            if allowed is not None and not allowed
            else self._search(query, snapshot, k=k, allowed=allowed)
        )
        results = materialize(self._reader, hits)
        logger.debug(
            "%s: %d of k=%d chunks in %.1f ms (generation %d, filtered: %s)",
            type(self).__name__,
            len(results),
            k,
            (time.perf_counter() - started) * 1000,
            snapshot.generation,
            allowed is not None,
        )
        return results

    @abstractmethod
    def _search(
        self, query: str, snapshot: IndexSnapshot, *, k: int, allowed: frozenset[int] | None
    ) -> list[Hit]:
        """Rank chunk ids for ``query`` in ``snapshot``; at most ``k``, best first."""


# -------------------------------------------------------------------------- retrievers


class DenseRetriever(SnapshotRetriever):
    """Nearest chunks by cosine similarity of embeddings (FAISS inner product).

    Args:
        reader: the knowledge base to search.
        embedder: embeds the query; must be the model the base was built with.
        score_floor: cosine below which a chunk does not count as retrieved; None keeps
            every chunk. Calibrated for all-MiniLM-L6-v2 in ``bench/retrieval_bench.py``.

    Raises:
        ValueError: ``score_floor`` is outside [-1, 1].

    Example::

        dense = DenseRetriever(reader, embedder, score_floor=0.3)
        hits = dense.retrieve("Who founded the university?", k=5)
        hits[0].score == hits[0].dense_score     # cosine similarity
    """

    def __init__(
        self,
        reader: KnowledgeBaseReader,
        embedder: Embedder,
        *,
        score_floor: float | None,
    ) -> None:
        super().__init__(reader)
        if score_floor is not None and (
            isinstance(score_floor, bool)
            or not isinstance(score_floor, int | float)
            or not -1.0 <= score_floor <= 1.0
        ):
            raise ValueError(
                f"score_floor must be None or a cosine in [-1, 1], got {score_floor!r}"
            )
        self._embedder = embedder
        self.score_floor = None if score_floor is None else float(score_floor)

    @property
    def embedder(self) -> Embedder:
        """The query embedder."""
        return self._embedder

    def ranking(
        self,
        query: str,
        snapshot: IndexSnapshot,
        *,
        depth: int,
        allowed: frozenset[int] | None,
        floor: float | None,
    ) -> DenseRanking:
        """The ``depth`` best allowed chunks of ``snapshot`` by cosine with ``query``.

        Args:
            query: the question to embed.
            snapshot: the index generation to search.
            depth: most hits to return.
            allowed: the chunk ids a filter allows; None allows all.
            floor: the cosine a hit must reach; None ranks every chunk (hybrid fusion).

        Returns:
            The hits, best first (ties by chunk id), and a bound on every cosine left out.

        Raises:
            ConfigError: the embedder's dimension differs from the knowledge base's.
        """
        if len(snapshot.faiss) == 0:
            return DenseRanking((), -math.inf)
        vector = np.asarray(self._embedder.embed_query(query), dtype=np.float32).reshape(1, -1)
        if vector.shape[1] != snapshot.faiss.dimension:
            raise ConfigError(
                f"the query embedder {self._embedder.model_name!r} gives {vector.shape[1]}-d "
                f"vectors but knowledge base {self._reader.name!r} holds "
                f"{snapshot.faiss.dimension}-d ones; embed queries with the base's model "
                f"({self._reader.info.embedding_model!r})"
            )
        return dense_ranking(snapshot.faiss, vector, depth=depth, allowed=allowed, floor=floor)

    def _search(
        self, query: str, snapshot: IndexSnapshot, *, k: int, allowed: frozenset[int] | None
    ) -> list[Hit]:
        ranking = self.ranking(query, snapshot, depth=k, allowed=allowed, floor=self.score_floor)
        return list(ranking.hits)


class Bm25Retriever(SnapshotRetriever):
    """Chunks ranked by BM25 on the same tokens the index was built with.

    Args:
        reader: the knowledge base to search.
        min_score: BM25 score below which a chunk does not count as retrieved; 0 keeps
            every chunk sharing a token with the question. Raw BM25 scores grow with the
            size of the base, so a fixed cut means different things in different bases.

    Raises:
        ValueError: ``min_score`` is negative or not finite.

    Example::

        sparse = Bm25Retriever(reader)
        hits = sparse.retrieve("error E1234 during upload", k=5)
        hits[0].score == hits[0].sparse_score    # BM25 score
    """

    def __init__(self, reader: KnowledgeBaseReader, *, min_score: float = 0.0) -> None:
        super().__init__(reader)
        if (
            isinstance(min_score, bool)
            or not isinstance(min_score, int | float)
            or not math.isfinite(min_score)
            or min_score < 0
        ):
            raise ValueError(f"min_score must be a finite number >= 0, got {min_score!r}")
        self.min_score = float(min_score)

    def ranking(
        self,
        query: str,
        snapshot: IndexSnapshot,
        *,
        depth: int,
        allowed: frozenset[int] | None,
    ) -> list[Hit]:
        """The ``depth`` best allowed chunks of ``snapshot`` by BM25, at least ``min_score``.

        Args:
            query: the question, tokenized as the index was.
            snapshot: the index generation to search.
            depth: most hits to return.
            allowed: the chunk ids a filter allows; None allows all.

        Returns:
            The hits, best first, ties by chunk id.
        """
        return sparse_ranking(
            snapshot.bm25,
            bm25_tokens(query),
            depth=depth,
            allowed=allowed,
            min_score=self.min_score,
        )

    def _search(
        self, query: str, snapshot: IndexSnapshot, *, k: int, allowed: frozenset[int] | None
    ) -> list[Hit]:
        return self.ranking(query, snapshot, depth=k, allowed=allowed)


class HybridRetriever(SnapshotRetriever):
    """Dense and BM25 rankings fused by reciprocal rank fusion (RRF).

    Each retriever ranks its ``candidates`` best chunks (more when ``k`` is larger); a
    chunk's score is ``sum 1 / (rrf_k + rank)`` over the rankings it appears in. Results
    keep both underlying scores (``dense_score``, ``sparse_score``; None where that
    ranking did not reach the chunk). Which chunks count as retrieved is explained in
    the module docstring: the dense floor, or a rare code of the question.

    Args:
        dense: the dense retriever; its ``score_floor`` decides what counts.
        sparse: the BM25 retriever; must read the same reader as ``dense``.
        rrf_k: RRF's damping constant; 60 is the value of the original paper
            (Cormack et al., 2009).
        candidates: depth of each ranking before fusion.

    Raises:
        ValueError: ``rrf_k`` or ``candidates`` is not a positive integer, or the two
            retrievers read different readers.

    Example::

        hybrid = HybridRetriever(DenseRetriever(reader, embedder, score_floor=0.3),
                                 Bm25Retriever(reader))
        hit = hybrid.retrieve("What does E1234 mean?", k=3)[0]
        hit.score, hit.dense_score, hit.sparse_score
    """

    def __init__(
        self,
        dense: DenseRetriever,
        sparse: Bm25Retriever,
        *,
        rrf_k: int = 60,
        candidates: int = 50,
    ) -> None:
        if dense.reader is not sparse.reader:
            raise ValueError("dense and sparse must search the same KnowledgeBaseReader")
        super().__init__(dense.reader)
        self._dense = dense
        self._sparse = sparse
        self.rrf_k = positive_int("rrf_k", rrf_k)
        self.candidates = positive_int("candidates", candidates)

    def _search(
        self, query: str, snapshot: IndexSnapshot, *, k: int, allowed: frozenset[int] | None
    ) -> list[Hit]:
        depth = max(self.candidates, k)
        # No floor here: the floor decides what counts, not what gets fused.
        dense = self._dense.ranking(query, snapshot, depth=depth, allowed=allowed, floor=None)
        sparse = self._sparse.ranking(query, snapshot, depth=depth, allowed=allowed)
        fused: dict[int, list[Any]] = {}  # chunk id -> [rrf, dense score, sparse score]
        for rank, hit in enumerate(dense.hits, start=1):
            fused[hit.chunk_id] = [1.0 / (self.rrf_k + rank), hit.score, None]
        for rank, hit in enumerate(sparse, start=1):
            entry = fused.setdefault(hit.chunk_id, [0.0, None, None])
            entry[0] += 1.0 / (self.rrf_k + rank)
            entry[2] = hit.score
        floor = self._dense.score_floor
        keywords: set[int] = set()
        # Chunks dense did not rank score at most outside_max: they may clear the floor.
        unseen_may_clear = floor is None or dense.outside_max >= floor
        if floor is not None:
            keywords = keyword_matches(self._reader, snapshot.bm25, query, allowed)
            for chunk_id in keywords:
                fused.setdefault(chunk_id, [0.0, None, None])
        hits = [
            Hit(chunk_id, rrf, dense_score=dense_score, sparse_score=sparse_score)
            for chunk_id, (rrf, dense_score, sparse_score) in fused.items()
            if floor is None
            or chunk_id in keywords
            or (dense_score is not None and dense_score >= floor)
            or (dense_score is None and unseen_may_clear)
        ]
        hits.sort(key=lambda h: (-h.score, h.chunk_id))
        return hits[:k]
