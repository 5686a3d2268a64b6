"""Rankings under the retrievers: dense and BM25 rankings, rare-code matches, filters.

The functions here work on one index snapshot and chunk ids; the retrievers in
:mod:`rag.retrieve.retrievers` validate, time and attach the catalog's text
(:func:`materialize`). See :mod:`rag.retrieve` for what counts as retrieved.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rag.records import RetrievedChunk
from rag.retrieve.protocol import RetrievalFilter
from rag.store.bm25_index import Bm25Index
from rag.store.faiss_index import FaissIndex
from rag.store.reader import KnowledgeBaseReader
from rag.text.tokens import bm25_tokens

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

# Runs of letters and digits joined by - _ . : / (ERR-4512, HTTP/404, v2.1, 0x8007).
_CODE_SPAN = re.compile(r"[^\W_]+(?:[-_.:/][^\W_]+)*")
_CODE_PART_SPLIT = re.compile(r"[-_.:/]")
# Ordinals and decades mix digits and letters but are prose ("17th", "1980s", "2nd").
_ORDINAL = re.compile(r"\d+(?:st|nd|rd|th|s)", re.IGNORECASE)
_MIN_DIGITS_OF_PLAIN_NUMBER = 5


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked chunk id: the ranking's score and, where known, each index's score."""

    chunk_id: int
    score: float
    dense_score: float | None = None
    sparse_score: float | None = None


@dataclass(frozen=True)
class DenseRanking:
    """Dense hits, best first, and a bound on the cosine of every allowed chunk left out."""

    hits: tuple[Hit, ...]
    outside_max: float


class FilterResolver:
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


def dense_ranking(
    index: FaissIndex,
    vector: NDArray[np.float32],
    *,
    depth: int,
    allowed: frozenset[int] | None,
    floor: float | None,
) -> DenseRanking:
    """The ``depth`` best allowed chunks with cosine >= ``floor``, ties by chunk id."""
    total = len(index)
    if total == 0:
        return DenseRanking((), -math.inf)
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
        Hit(int(kept_ids[i]), float(kept_scores[i]), dense_score=float(kept_scores[i]))
        for i in order
    )
    outside_max = hits[-1].score if len(hits) == depth else unseen_max
    return DenseRanking(hits, outside_max)


def sparse_ranking(
    index: Bm25Index,
    tokens: Sequence[str],
    *,
    depth: int,
    allowed: frozenset[int] | None,
    min_score: float,
) -> list[Hit]:
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
    return [Hit(cid, score, sparse_score=score) for cid, score in kept[:depth]]


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


def keyword_matches(
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


def materialize(reader: KnowledgeBaseReader, hits: Sequence[Hit]) -> list[RetrievedChunk]:
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
