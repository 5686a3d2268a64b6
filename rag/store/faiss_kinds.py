"""FAISS index kinds: their parameters, how to build each, and how to read one back.

The rules that size an index for its collection (IVF lists and probes, HNSW search
effort) and the FAISS-class plumbing :class:`rag.store.faiss_index.FaissIndex` uses to
create, recognise, tune and unpack its three kinds (``flat``, ``hnsw``, ``ivf``).
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import faiss
import numpy as np
from numpy.typing import NDArray

FaissKind = Literal["flat", "hnsw", "ivf"]
#: Every kind, in the order error messages list them.
KINDS: tuple[str, ...] = get_args(FaissKind)

HNSW_M = 32
HNSW_EF_SEARCH = 64
HNSW_EF_CONSTRUCTION = 64
#: Most candidates an HNSW query explores; see :func:`hnsw_ef_search`.
HNSW_EF_SEARCH_MAX = 512
#: Vectors per unit of HNSW_EF_SEARCH in :func:`hnsw_ef_search`.
_HNSW_EF_PER_VECTORS = 100_000

#: k-means in FAISS warns below 39 training points per centroid.
IVF_MIN_POINTS_PER_LIST = 39


def ivf_nlist(count: int) -> int:
    """Number of IVF lists for ``count`` vectors: ``4 * sqrt(count)``, at least 1."""
    return max(1, round(4 * math.sqrt(count)))


def ivf_nprobe(nlist: int) -> int:
    """Lists visited per IVF query: 1/16 of them, at least 8 (recall ~0.95+ on text)."""
    return min(nlist, max(8, nlist // 16))


def hnsw_ef_search(count: int, k: int) -> int:
    """Candidates an HNSW query explores in a graph of ``count`` vectors, for top ``k``.

    A fixed efSearch=64 gave recall@10 0.989 at 100k vectors but 0.821 at 1M
    (bench/index_bench.py); the search effort has to grow with the graph. 64 per 100k
    vectors, between 64 and 512, measured 0.989 at 100k and 0.954 at 1M (1.8 ms per
    query on one CPU thread, still ~90x faster than exact search). Never below ``k``.
    """
    scaled = round(HNSW_EF_SEARCH * count / _HNSW_EF_PER_VECTORS)
    return max(k, HNSW_EF_SEARCH, min(HNSW_EF_SEARCH_MAX, scaled))


def ivf_can_train(count: int) -> bool:
    """Whether ``count`` vectors are enough to train an IVF index of ``ivf_nlist(count)``."""
    return count >= IVF_MIN_POINTS_PER_LIST * ivf_nlist(count)


def new_flat(dimension: int) -> Any:
    """An empty exact index: ``IndexIDMap2`` over ``IndexFlatIP``."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


def new_hnsw(dimension: int) -> Any:
    """An empty HNSW graph (M=32) under ``IndexIDMap2``."""
    inner = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    inner.hnsw.efSearch = HNSW_EF_SEARCH
    return faiss.IndexIDMap2(inner)


def is_ivf(index: Any) -> bool:
    """Whether a FAISS index is an inverted-list (trained IVF) index."""
    return isinstance(index, faiss.IndexIVF)


def structure(index: Any) -> str:
    """``flat``, ``hnsw``, ``ivf`` or ``unknown``, from the FAISS classes in the file."""
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    if isinstance(index, faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSWFlat):
            return "hnsw"
        if isinstance(inner, faiss.IndexFlat):
            return "flat"
    return "unknown"


def apply_search_params(index: Any) -> None:
    """Set the query-time knobs, which are not a property of the trained data."""
    if isinstance(index, faiss.IndexIVF):
        index.nprobe = ivf_nprobe(int(index.nlist))
    elif isinstance(index, faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efSearch = HNSW_EF_SEARCH


def entry_ids(index: Any) -> NDArray[np.int64]:
    """Ids of every stored vector, in storage order."""
    if is_ivf(index):
        invlists = index.invlists
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
            for i in range(index.nlist)
            if invlists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)
    return faiss.vector_to_array(index.id_map).astype(np.int64)


def entries(index: Any) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Every stored (id, vector) pair, for rebuilding or retraining."""
    dimension = int(index.d)
    if is_ivf(index):
        invlists = index.invlists
        id_parts: list[NDArray[np.int64]] = []
        vector_parts: list[NDArray[np.float32]] = []
        for i in range(index.nlist):
            size = invlists.list_size(i)
            if not size:
                continue
            id_parts.append(faiss.rev_swig_ptr(invlists.get_ids(i), size).copy())
            # IVFFlat codes are the raw float32 vectors.
            codes = faiss.rev_swig_ptr(invlists.get_codes(i), size * invlists.code_size)
            vector_parts.append(codes.view(np.float32).reshape(size, dimension).copy())
        if not id_parts:
            return np.empty(0, np.int64), np.empty((0, dimension), np.float32)
        return (
            np.concatenate(id_parts).astype(np.int64),
            np.concatenate(vector_parts),
        )
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    inner = faiss.downcast_index(index.index)
    vectors = (
        inner.reconstruct_n(0, int(inner.ntotal))
        if ids.size
        else np.empty((0, dimension), np.float32)
    )
    return ids, np.asarray(vectors, dtype=np.float32).reshape(-1, dimension)
