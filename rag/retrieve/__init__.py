"""Retrieval: the chunks of a knowledge base that best answer a question.

Four retrievers share the one-method :class:`Retriever` protocol:

:class:`DenseRetriever`
    FAISS cosine similarity between the query's embedding and each chunk's.
:class:`Bm25Retriever`
    BM25 over :func:`rag.text.tokens.bm25_tokens`, the tokens the index was built with.
:class:`HybridRetriever`
    Reciprocal rank fusion (RRF) of the two rankings: ``sum 1 / (rrf_k + rank)``.
:class:`CrossEncoderReranker`
    Wraps any of them and reorders its candidates with a sentence-transformers
    ``CrossEncoder`` reading (question, chunk text) pairs.

What counts as retrieved (the chain refuses when a retriever returns nothing):

* dense: chunks whose cosine is at least ``score_floor``;
* BM25: chunks sharing a token with the question and scoring at least ``min_score``;
* hybrid: chunks that clear the dense floor, or that dense did not rank while it still
  ranked chunks above the floor (then the question is on topic and the fused ranking
  decides), or that contain a *rare code* of the question: a token mixing letters and
  digits (``E1234``, ``0x8007``, ``ERR-4512``) or a number of five digits or more, found
  in at most :data:`KEYWORD_MAX_CHUNKS` chunks of the base. Embeddings read such codes
  as noise, so an exact match is the only evidence they give. The BM25 score itself is
  no such evidence: on SQuAD, questions asked of unrelated articles get top BM25 scores
  as high as questions asked of their own article (shared words like "year", "first").

Filters (:class:`RetrievalFilter`) are resolved to the allowed chunk ids through the
catalog once per index generation and filter, then both indexes are over-fetched
(growing the depth fourfold) until enough allowed hits are found or the index is
exhausted. Unfiltered queries never touch more than the index's own search.

Every result carries the chunk's source, page, heading, text and character span, and
ranks are 1..n, best first, ties broken by ascending chunk id.

Example::

    reader = KnowledgeBaseReader(kbs, "handbook")
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    retriever = build_retriever("hybrid", reader, embedder, score_floor=0.3)
    for hit in retriever.retrieve("How do I rotate the API keys?", k=6):
        print(hit.rank, hit.source, hit.page, f"{hit.score:.4f}", hit.dense_score)
"""

from __future__ import annotations

import fnmatch
import logging
import math
import re
import threading
import time
import unicodedata
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, get_args, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from rag.config import RetrievalMode
from rag.device import resolve_device
from rag.embed.protocol import Embedder
from rag.errors import ConfigError, RetrievalError
from rag.records import RetrievedChunk
from rag.store.bm25_index import Bm25Index
from rag.store.faiss_index import FaissIndex
from rag.store.reader import KnowledgeBaseReader
from rag.store.snapshot import IndexSnapshot
from rag.text.tokens import bm25_tokens

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

logger = logging.getLogger(__name__)

#: A code of the question found in more chunks than this is not specific enough to
#: count as evidence on its own (a version tag like "v2" appears everywhere).
KEYWORD_MAX_CHUNKS = 3

#: Over-fetch factor when a filter or a tie at the cut leaves too few hits.
_GROWTH = 4
#: First depth of a filtered search: a filter usually removes most of the top hits.
_FILTERED_FIRST_FETCH = 256
#: Filters remembered per retriever (allowed ids of one index generation each).
_FILTER_CACHE_SIZE = 64
#: Sources per ``IN (...)`` query when resolving a glob (SQLite's bind-variable limit).
_SOURCES_PER_QUERY = 500

_RETRIEVAL_MODES: tuple[str, ...] = get_args(RetrievalMode)

# Runs of letters and digits joined by - _ . : / (ERR-4512, HTTP/404, v2.1, 0x8007).
_CODE_SPAN = re.compile(r"[^\W_]+(?:[-_.:/][^\W_]+)*")
_CODE_PART_SPLIT = re.compile(r"[-_.:/]")
# Ordinals and decades mix digits and letters but are prose ("17th", "1980s", "2nd").
_ORDINAL = re.compile(r"\d+(?:st|nd|rd|th|s)", re.IGNORECASE)
_MIN_DIGITS_OF_PLAIN_NUMBER = 5


# -------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class RetrievalFilter:
    """Restrict retrieval to some documents of the knowledge base.

    Both criteria must hold when both are given; an empty filter allows everything.

    Attributes:
        sources: document paths, exactly as the catalog records them (absolute paths
            for files ingested from disk).
        path_glob: an :func:`fnmatch.fnmatchcase` pattern matched against the whole
            source path; ``*`` also crosses ``/``, so ``*.pdf`` or ``*/manuals/*``.

    Raises:
        TypeError: ``sources`` is a single string or holds a non-string.
        ValueError: a source or ``path_glob`` is empty.

    Example::

        RetrievalFilter(path_glob="*/manuals/*.pdf")
        RetrievalFilter(sources=("/data/handbook.md",))
    """

    sources: tuple[str, ...] = ()
    path_glob: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sources, str):
            raise TypeError("sources must be a tuple of paths, not a single string")
        sources = tuple(self.sources)
        for i, source in enumerate(sources):
            if not isinstance(source, str):
                raise TypeError(f"sources[{i}] must be a string, got {type(source).__name__}")
            if not source:
                raise ValueError(f"sources[{i}] must be a non-empty path, got {source!r}")
        # Frozen: coerce a list given by the caller into the hashable tuple it is typed as.
        object.__setattr__(self, "sources", sources)
        if self.path_glob is not None:
            if not isinstance(self.path_glob, str):
                raise TypeError(
                    f"path_glob must be a string or None, got {type(self.path_glob).__name__}"
                )
            if not self.path_glob.strip():
                raise ValueError(f"path_glob must be a non-empty pattern, got {self.path_glob!r}")

    @property
    def is_empty(self) -> bool:
        """True when the filter allows every document."""
        return not self.sources and self.path_glob is None

    def matches(self, source: str) -> bool:
        """Whether a document with this source path passes the filter."""
        if self.sources and source not in self.sources:
            return False
        return self.path_glob is None or fnmatch.fnmatchcase(source, self.path_glob)


@runtime_checkable
class Retriever(Protocol):
    """Finds the chunks that best answer a query, best first."""

    def retrieve(
        self, query: str, *, k: int, filters: RetrievalFilter | None = None
    ) -> list[RetrievedChunk]:
        """At most ``k`` chunks, ranked 1..n; empty when nothing counts as retrieved."""
        ...


# -------------------------------------------------------------------------- internals


@dataclass(frozen=True, slots=True)
class _Hit:
    chunk_id: int
    score: float
    dense_score: float | None = None
    sparse_score: float | None = None


@dataclass(frozen=True)
class _DenseRanking:
    """Dense hits, best first, and a bound on the cosine of every allowed chunk left out."""

    hits: tuple[_Hit, ...]
    outside_max: float


def _check_query(query: str) -> None:
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise ValueError(f"query must be a non-empty question, got {query!r}")


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _check_filters(filters: RetrievalFilter | None) -> None:
    if filters is not None and not isinstance(filters, RetrievalFilter):
        raise TypeError(f"filters must be a RetrievalFilter or None, got {type(filters).__name__}")


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class _FilterResolver:
    """Allowed chunk ids per (index generation, filter), computed once and remembered.

    Resolving costs catalog queries proportional to the matching documents' chunks; a
    chat session repeats the same filter, so the answer is kept until a new generation.
    """

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[int, RetrievalFilter], frozenset[int]] = OrderedDict()
        self._lock = threading.Lock()

    def allowed(
        self, reader: KnowledgeBaseReader, generation: int, filters: RetrievalFilter | None
    ) -> frozenset[int] | None:
        """None when everything is allowed, else the allowed chunk ids (maybe none)."""
        if filters is None or filters.is_empty:
            return None
        key = (generation, filters)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        ids = _chunk_ids_matching(reader, filters)
        with self._lock:
            self._cache[key] = ids
            while len(self._cache) > _FILTER_CACHE_SIZE:
                self._cache.popitem(last=False)
        return ids


def _chunk_ids_matching(reader: KnowledgeBaseReader, filters: RetrievalFilter) -> frozenset[int]:
    sources = list(filters.sources)
    if filters.path_glob is not None:
        candidates = sources or _document_sources(reader)
        sources = [s for s in candidates if filters.matches(s)]
    ids: set[int] = set()
    for start in range(0, len(sources), _SOURCES_PER_QUERY):
        ids |= reader.chunk_ids_where(sources=sources[start : start + _SOURCES_PER_QUERY])
    return frozenset(ids)


def _document_sources(reader: KnowledgeBaseReader) -> list[str]:
    """Source paths of the base's indexed documents (one catalog row per document)."""
    return reader.sources()


def _dense_ranking(
    index: FaissIndex,
    vector: NDArray[np.float32],
    *,
    depth: int,
    allowed: frozenset[int] | None,
    floor: float | None,
) -> _DenseRanking:
    """The ``depth`` best allowed chunks with cosine >= ``floor``, ties by chunk id."""
    total = len(index)
    if total == 0:
        return _DenseRanking((), -math.inf)
    # One beyond the depth: a lower (depth+1)-th score proves no tie hides past the cut.
    fetch = min(
        total, depth + 1 if allowed is None else max(depth * _GROWTH, _FILTERED_FIRST_FETCH)
    )
    while True:
        raw_scores, raw_ids = index.search(vector, fetch)
        found = raw_ids[0] >= 0
        scores, ids = raw_scores[0][found], raw_ids[0][found]
        # FAISS returns -1 ids once an approximate index has no more candidates to give.
        exhausted = fetch >= total or not bool(found.all())
        keep = np.ones(ids.shape, dtype=bool)
        if allowed is not None:
            keep = np.fromiter((int(i) in allowed for i in ids), dtype=bool, count=ids.size)
        if floor is not None:
            keep &= scores >= floor
        kept_scores, kept_ids = scores[keep], ids[keep]
        # Anything not fetched scores at most the last fetched score (FAISS sorts).
        unseen_max = -math.inf if exhausted or not scores.size else float(scores[-1])
        if exhausted or (floor is not None and unseen_max < floor):
            break
        if kept_ids.size >= depth:
            kth = float(np.sort(kept_scores)[-depth])
            # A tie with the k-th hit may hide beyond the cut with a smaller id: fetch on.
            if unseen_max < kth:
                break
        fetch = min(total, fetch * _GROWTH)
    order = np.lexsort((kept_ids, -kept_scores))[:depth]
    hits = tuple(
        _Hit(int(kept_ids[i]), float(kept_scores[i]), dense_score=float(kept_scores[i]))
        for i in order
    )
    outside_max = hits[-1].score if len(hits) == depth else unseen_max
    return _DenseRanking(hits, outside_max)


def _sparse_ranking(
    index: Bm25Index,
    tokens: Sequence[str],
    *,
    depth: int,
    allowed: frozenset[int] | None,
    min_score: float,
) -> list[_Hit]:
    """The ``depth`` best allowed chunks by BM25 with score >= ``min_score``."""
    total = len(index)
    if total == 0 or not tokens:
        return []
    fetch = min(total, depth if allowed is None else max(depth * _GROWTH, _FILTERED_FIRST_FETCH))
    while True:
        # Bm25Index orders by (-score, id) over the whole base, so any prefix of it is
        # already in final order and a filter keeps that order.
        found = index.search(tokens, fetch)
        kept = [
            (cid, score)
            for cid, score in found
            if score >= min_score and (allowed is None or cid in allowed)
        ]
        exhausted = len(found) < fetch or fetch >= total
        below = bool(found) and found[-1][1] < min_score
        if len(kept) >= depth or exhausted or below:
            break
        fetch = min(total, fetch * _GROWTH)
    return [_Hit(cid, score, sparse_score=score) for cid, score in kept[:depth]]


def query_codes(query: str) -> list[tuple[str, ...]]:
    """The codes of a question, as BM25 tokens: what embeddings cannot match.

    A code is a run of letters and digits joined by ``- _ . : /`` with a part that
    mixes letters and digits (``E1234``, ``0x8007``; not ordinals such as ``17th`` or
    decades such as ``1980s``), a letters part next to a digits part (``ERR-4512``,
    ``COVID-19``), or a number of five digits or more (``80070005``).

    Example::

        query_codes("What does ERR-4512 mean in 1998?")   # [('err', '4512')]
    """
    codes: list[tuple[str, ...]] = []
    for match in _CODE_SPAN.finditer(unicodedata.normalize("NFKC", query)):
        parts = [p for p in _CODE_PART_SPLIT.split(match.group(0)) if p]
        mixed = any(
            any(c.isdigit() for c in p)
            and any(c.isalpha() for c in p)
            and not _ORDINAL.fullmatch(p)
            for p in parts
        )
        joined = any(p.isalpha() for p in parts) and any(p.isdigit() for p in parts)
        long_number = any(p.isdigit() and len(p) >= _MIN_DIGITS_OF_PLAIN_NUMBER for p in parts)
        if mixed or joined or long_number:
            tokens = tuple(bm25_tokens(match.group(0)))
            if tokens and tokens not in codes:
                codes.append(tokens)
    return codes


def _keyword_matches(
    reader: KnowledgeBaseReader,
    index: Bm25Index,
    query: str,
    allowed: frozenset[int] | None,
) -> set[int]:
    """Allowed chunks holding every token of a rare code of the query (see the module)."""
    matched: set[int] = set()
    for code in query_codes(query):
        postings = [index.search([token], KEYWORD_MAX_CHUNKS + 1) for token in code]
        rarest = min(postings, key=len)
        if not rarest or len(rarest) > KEYWORD_MAX_CHUNKS:
            continue
        candidates = [cid for cid, _ in rarest if allowed is None or cid in allowed]
        if len(code) > 1 and candidates:
            # The rare token alone could be a coincidence ("4512" as a count); the
            # chunk must hold the whole code. At most KEYWORD_MAX_CHUNKS texts to read.
            texts = reader.chunks(candidates)
            candidates = [
                cid
                for cid in candidates
                if cid in texts and set(code) <= set(bm25_tokens(texts[cid].text))
            ]
        matched.update(candidates)
    return matched


def _materialize(reader: KnowledgeBaseReader, hits: Sequence[_Hit]) -> list[RetrievedChunk]:
    """Attach the catalog's text and location to hits, ranking them 1..n."""
    if not hits:
        return []
    stored = reader.chunks([h.chunk_id for h in hits])
    results: list[RetrievedChunk] = []
    for hit in hits:
        chunk = stored.get(hit.chunk_id)
        if chunk is None:
            # Removed by a commit after this query's snapshot was taken.
            logger.debug("chunk %d vanished from the catalog during retrieval", hit.chunk_id)
            continue
        results.append(
            RetrievedChunk(
                chunk_id=chunk.chunk_id,
                source=chunk.source,
                text=chunk.text,
                page=chunk.page,
                heading=chunk.heading,
                char_start=chunk.char_start,
                char_end=chunk.char_end,
                score=hit.score,
                rank=len(results) + 1,
                dense_score=hit.dense_score,
                sparse_score=hit.sparse_score,
            )
        )
    return results


class _SnapshotRetriever(ABC):
    """Template for retrievers over one reader: checks, snapshot, filters, catalog lookup.

    :meth:`retrieve` validates the inputs, takes the newest index snapshot, resolves the
    filter, lets :meth:`_search` rank chunk ids and attaches the catalog's text.
    """

    def __init__(self, reader: KnowledgeBaseReader) -> None:
        self._reader = reader
        self._filters = _FilterResolver()

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
        _check_query(query)
        _check_k(k)
        _check_filters(filters)
        started = time.perf_counter()
        snapshot = self._reader.snapshot()
        allowed = self._filters.allowed(self._reader, snapshot.generation, filters)
        hits = (
            []
            if allowed is not None and not allowed
            else self._search(query, snapshot, k=k, allowed=allowed)
        )
        results = _materialize(self._reader, hits)
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
    ) -> list[_Hit]:
        """Rank chunk ids for ``query`` in ``snapshot``; at most ``k``, best first."""


# -------------------------------------------------------------------------- retrievers


class DenseRetriever(_SnapshotRetriever):
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

    def _ranking(
        self,
        query: str,
        snapshot: IndexSnapshot,
        *,
        depth: int,
        allowed: frozenset[int] | None,
        floor: float | None,
    ) -> _DenseRanking:
        if len(snapshot.faiss) == 0:
            return _DenseRanking((), -math.inf)
        vector = np.asarray(self._embedder.embed_query(query), dtype=np.float32).reshape(1, -1)
        if vector.shape[1] != snapshot.faiss.dimension:
            raise ConfigError(
                f"the query embedder {self._embedder.model_name!r} gives {vector.shape[1]}-d "
                f"vectors but knowledge base {self._reader.name!r} holds "
                f"{snapshot.faiss.dimension}-d ones; embed queries with the base's model "
                f"({self._reader.info.embedding_model!r})"
            )
        return _dense_ranking(snapshot.faiss, vector, depth=depth, allowed=allowed, floor=floor)

    def _search(
        self, query: str, snapshot: IndexSnapshot, *, k: int, allowed: frozenset[int] | None
    ) -> list[_Hit]:
        ranking = self._ranking(query, snapshot, depth=k, allowed=allowed, floor=self.score_floor)
        return list(ranking.hits)


class Bm25Retriever(_SnapshotRetriever):
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

    def _ranking(
        self,
        query: str,
        snapshot: IndexSnapshot,
        *,
        depth: int,
        allowed: frozenset[int] | None,
    ) -> list[_Hit]:
        return _sparse_ranking(
            snapshot.bm25,
            bm25_tokens(query),
            depth=depth,
            allowed=allowed,
            min_score=self.min_score,
        )

    def _search(
        self, query: str, snapshot: IndexSnapshot, *, k: int, allowed: frozenset[int] | None
    ) -> list[_Hit]:
        return self._ranking(query, snapshot, depth=k, allowed=allowed)


class HybridRetriever(_SnapshotRetriever):
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
        self.rrf_k = _positive_int("rrf_k", rrf_k)
        self.candidates = _positive_int("candidates", candidates)

    def _search(
        self, query: str, snapshot: IndexSnapshot, *, k: int, allowed: frozenset[int] | None
    ) -> list[_Hit]:
        depth = max(self.candidates, k)
        # No floor here: the floor decides what counts, not what gets fused.
        dense = self._dense._ranking(query, snapshot, depth=depth, allowed=allowed, floor=None)
        sparse = self._sparse._ranking(query, snapshot, depth=depth, allowed=allowed)
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
            keywords = _keyword_matches(self._reader, snapshot.bm25, query, allowed)
            for chunk_id in keywords:
                fused.setdefault(chunk_id, [0.0, None, None])
        hits = [
            _Hit(chunk_id, rrf, dense_score=dense_score, sparse_score=sparse_score)
            for chunk_id, (rrf, dense_score, sparse_score) in fused.items()
            if floor is None
            or chunk_id in keywords
            or (dense_score is not None and dense_score >= floor)
            or (dense_score is None and unseen_may_clear)
        ]
        hits.sort(key=lambda h: (-h.score, h.chunk_id))
        return hits[:k]


class CrossEncoderReranker:
    """Reorders another retriever's candidates with a cross-encoder's relevance scores.

    The inner retriever decides what counts as retrieved (an empty answer stays empty);
    the cross-encoder reads each (query, chunk text) pair and its score becomes the
    result's ``score``. ``dense_score`` and ``sparse_score`` are kept. Construction only
    validates; the model loads on :meth:`warm_up`, which the first query with
    candidates triggers. Nothing is downloaded: ``model`` is a local directory or a
    model already in the Hugging Face cache.

    Args:
        inner: the retriever whose candidates are reranked.
        model: a sentence-transformers ``CrossEncoder`` directory or cached model id.
        candidates: how many chunks to ask ``inner`` for (at least ``k``).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: pairs per forward pass.

    Raises:
        ValueError: a parameter has an invalid value.

    Example::

        reranker = CrossEncoderReranker(hybrid, "/models/ms-marco-MiniLM-L-6-v2")
        best = reranker.retrieve("How do I rotate keys?", k=4)[0]
        best.score        # the cross-encoder's score; best.dense_score is kept
    """

    def __init__(
        self,
        inner: Retriever,
        model: str,
        *,
        candidates: int = 30,
        device: str = "auto",
        batch_size: int = 32,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if not isinstance(device, str) or not device:
            raise ValueError(f"device must be a device name such as 'auto', got {device!r}")
        self._inner = inner
        self._model_spec = model
        self._device_setting = device
        self.candidates = _positive_int("candidates", candidates)
        self.batch_size = _positive_int("batch_size", batch_size)
        self._model: CrossEncoder | None = None
        self._load_lock = threading.Lock()

    @property
    def inner(self) -> Retriever:
        """The retriever whose candidates are reranked."""
        return self._inner

    def warm_up(self) -> None:
        """Load the cross-encoder once; later calls return at once.

        Raises:
            RetrievalError: the model cannot be found or loaded without a download.
            ValueError: ``device`` is invalid or names a missing CUDA device.
        """
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            device = resolve_device(self._device_setting)
            local = Path(self._model_spec).expanduser()
            path = str(local.resolve()) if local.is_dir() else self._model_spec
            try:
                from sentence_transformers import CrossEncoder

                model = CrossEncoder(path, device=device, local_files_only=True)
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise RetrievalError(
                    f"cannot load rerank model {self._model_spec!r} without a download: {exc}. "
                    "Set rerank_model to a local sentence-transformers CrossEncoder directory, "
                    "or to '' to turn reranking off"
                ) from exc
            self._model = model
            logger.info("loaded rerank model %s on %s", path, device)

    def retrieve(
        self, query: str, *, k: int, filters: RetrievalFilter | None = None
    ) -> list[RetrievedChunk]:
        """The inner retriever's candidates reordered by the cross-encoder; at most ``k``.

        Raises:
            TypeError / ValueError: as :meth:`DenseRetriever.retrieve`.
            RetrievalError: the model cannot be loaded or gives more than one score per pair.
        """
        _check_query(query)
        _check_k(k)
        _check_filters(filters)
        pool = self._inner.retrieve(query, k=max(k, self.candidates), filters=filters)
        if not pool:
            return []
        self.warm_up()
        if self._model is None:  # pragma: no cover - warm_up sets it or raises
            raise RetrievalError(f"rerank model {self._model_spec!r} did not load")
        started = time.perf_counter()
        scores = np.asarray(
            self._model.predict(
                [(query, chunk.text) for chunk in pool],
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
            ),
            dtype=np.float64,
        )
        if scores.ndim != 1:
            raise RetrievalError(
                f"rerank model {self._model_spec!r} gives {scores.shape[-1]} scores per pair; "
                "a reranker must give one (num_labels=1)"
            )
        order = sorted(range(len(pool)), key=lambda i: (-scores[i], pool[i].chunk_id))[:k]
        logger.debug(
            "reranked %d candidates in %.1f ms", len(pool), (time.perf_counter() - started) * 1000
        )
        return [
            replace(pool[i], score=float(scores[i]), rank=rank)
            for rank, i in enumerate(order, start=1)
        ]


def build_retriever(
    mode: RetrievalMode,
    reader: KnowledgeBaseReader,
    embedder: Embedder,
    *,
    score_floor: float | None,
    rerank_model: str = "",
    rerank_device: str = "auto",
) -> Retriever:
    """The retriever for a retrieval mode, reranked when a rerank model is set.

    Args:
        mode: ``dense``, ``bm25`` or ``hybrid`` (``Settings.retrieval_mode``).
        reader: the knowledge base to search.
        embedder: the query embedder (the base's embedding model); unused for ``bm25``.
        score_floor: the dense cosine floor (``Settings.score_floor``); ``bm25`` mode
            has no floor and refuses only when no token matches.
        rerank_model: a CrossEncoder directory (``Settings.rerank_model``); empty means
            no reranking.
        rerank_device: the device for the rerank model (``Settings.device``).

    Raises:
        ValueError: ``mode`` is not one of the three, or another parameter is invalid.

    Example::

        retriever = build_retriever("hybrid", reader, embedder, score_floor=0.3)
        retriever.retrieve("When was the library founded?", k=6)
    """
    if mode not in _RETRIEVAL_MODES:
        raise ValueError(f"mode must be one of {', '.join(_RETRIEVAL_MODES)}; got {mode!r}")
    retriever: Retriever
    if mode == "dense":
        retriever = DenseRetriever(reader, embedder, score_floor=score_floor)
    elif mode == "bm25":
        retriever = Bm25Retriever(reader)
    else:
        retriever = HybridRetriever(
            DenseRetriever(reader, embedder, score_floor=score_floor), Bm25Retriever(reader)
        )
    if rerank_model:
        retriever = CrossEncoderReranker(retriever, rerank_model, device=rerank_device)
    return retriever


__all__ = [
    "KEYWORD_MAX_CHUNKS",
    "Bm25Retriever",
    "CrossEncoderReranker",
    "DenseRetriever",
    "HybridRetriever",
    "RetrievalFilter",
    "Retriever",
    "build_retriever",
    "query_codes",
]
