"""Index benchmark: latency, throughput and recall of our FAISS index kinds.

The kinds we offer (flat, hnsw, ivf) are measured at several sizes, against exact search
(flat) as the baseline.

Run from the repository root::

    .venv/bin/python bench/index_bench.py                          # 10k, 100k, 1M vectors
    .venv/bin/python bench/index_bench.py --sizes 10000,100000     # skip the slow 1M size
    .venv/bin/python bench/index_bench.py --sizes 5000 --queries 50 --repeats 1 --out /tmp/b
    .venv/bin/python bench/index_bench.py --sizes 100000,1000000 --kinds flat,hnsw \
        --hnsw-ef-search 64,128,256,512 --repeats 1                # HNSW efSearch sweep

What it measures
----------------
Everything goes through our own :class:`rag.store.faiss_index.FaissIndex`, so the numbers are
what a knowledge base gets: ``FaissIndex.create(dimension=384, kind=...)``, vectors added
``ADD_BATCH`` (10,000) at a time as an ingest would add them (so the id checks, and for
``ivf`` the automatic training and retraining as the collection grows, are included), and
``search``. HNSW runs with our M=32 and the efSearch ``FaissIndex.search`` picks for
the index size (``hnsw_ef_search(n, k)``); IVF with our ``nlist = 4 sqrt(n)``
(fixed when it last trained) and ``nprobe = ivf_nprobe(nlist)``. Below ``39 * nlist``
vectors (about 24,300) an ``ivf`` index has not trained yet and is still exact flat search;
the table says so ("flat fallback") rather than reporting it as IVF.

Data: synthetic 384-d (all-MiniLM-L6-v2 sized) L2-normalised float32 vectors from a
seeded mixture of Gaussians (see :class:`ClusteredVectors` for why not uniform). Queries
are ``--queries`` further draws from the same mixture, not in the index. Sizes are nested:
the first 10,000 vectors of the 100,000 are the 10,000.

Per size, each kind in turn (flat first: it is the baseline and the ground truth):

* **build s**: wall time of the ``add`` calls only (vector generation excluded);
* **index MB**: size of the file ``FaissIndex.save`` writes (about the memory it holds);
* **p50 / p95 ms**: one query per ``search`` call, FAISS limited to one OpenMP thread so
  that kinds and machines compare, after ``WARMUP_QUERIES`` warm-up queries; measured
  ``--repeats`` times, the medians of the per-repeat p50 and p95 are reported;
* **speed-up vs exact**: flat's p50 over this kind's p50, same size and same run;
* **batch q/s**: all queries in one ``search`` call with FAISS's default thread count
  (median over the repeats);
* **recall@k**: share of exact search's top ``--k`` (flat's batch results on the same
  queries) that the kind returns; 1.0 for flat by definition.

HNSW efSearch sweep (``--hnsw-ef-search 64,128,...``, off by default): after the hnsw
row has been measured with the product's efSearch, the same HNSW index (built once per
size) is searched again with each listed efSearch, passed per call as
``faiss.SearchParametersHNSW`` to the ``IndexIDMap2`` inside our FaissIndex (as
``FaissIndex.search`` does; the index itself is not changed): single-query p50 / p95
(1 thread, as above), batch q/s and recall@k against flat. The rows go to an extra
"HNSW efSearch sweep" table and to ``hnsw_ef_sweep`` in the JSON.

Kinds run one after the other and each index is freed before the next, so at most one
index (1.5 GB at 1M vectors; IVF's retraining briefly holds two) is in memory.

Output: progress with timings on stderr; on stdout a Markdown table for
docs/performance.md and the device line (CPU model, cores, faiss version, whether faiss
has GPU support; with a GPU, our index searches a GPU copy for flat and ivf, and the
table's "search on" column says so); a JSON file with every number (default
``bench/results/index-<timestamp>.json``).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast, get_args

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from rag.store.faiss_index import FaissIndex  # noqa: E402
from rag.store.faiss_kinds import (  # noqa: E402
    HNSW_M,
    IVF_MIN_POINTS_PER_LIST,
    FaissKind,
    hnsw_ef_search,
    ivf_can_train,
    ivf_nprobe,
)

logger = logging.getLogger("bench.index")

KINDS: tuple[str, ...] = get_args(FaissKind)
BASELINE = "flat"
DIMENSION = 384
#: Vectors per ``FaissIndex.add`` call, as an ingest adds a few documents' chunks at a time.
ADD_BATCH = 10_000
WARMUP_QUERIES = 10
#: Slowest over fastest per-repeat p50 above which a kind's latency is called noisy.
NOISY_SPREAD = 1.3
#: Progress lines during a build at most this often (seconds).
PROGRESS_EVERY_S = 30.0

# The data model; see ClusteredVectors.
CLUSTERS = 2000
#: Noise norm relative to the (unit) cluster centre, drawn per cluster.
SPREAD_RANGE = (0.6, 1.2)
#: Sigma of the log-normal cluster weights: some topics are much larger than others.
CLUSTER_WEIGHT_SIGMA = 1.0
_MODEL_STREAM, _BASE_STREAM, _QUERY_STREAM = 0, 1, 2

NOTES: tuple[str, ...] = (
    "vectors: synthetic 384-d mixture of Gaussians (2,000 clusters), L2-normalised; queries "
    "are held-out draws from the same mixture",
    "build: FaissIndex.add in batches of 10,000 (ivf trains / retrains itself inside add)",
    "single-query latency: one query per search call, faiss.omp_set_num_threads(1); "
    "median over repeats of each repeat's p50 / p95",
    "batch: all queries in one search call, default FAISS threads",
    "recall@k against exact search (flat) on the same queries; speed-up = flat p50 / p50",
    "index MB: size of the file FaissIndex.save writes",
)


# --- data -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ClusteredVectors:
    """A seeded mixture of Gaussians on the unit sphere, drawn in reproducible chunks.

    Why clustered: uniformly random 384-d unit vectors are all nearly orthogonal (the
    nearest neighbour of a query has cosine ~0.2, barely above the rest), so there is no
    neighbourhood structure for an approximate index to exploit, and HNSW / IVF look far
    worse than they are on text: on 30,000 such vectors HNSW (M=32, efSearch=64) found
    0.36 of the exact top 10 and IVF (nprobe 1/16) 0.25. Text embeddings instead form
    topics: related passages sit at cosine ~0.5-0.8, unrelated ones near 0. Here each
    vector is ``normalise(centre + spread * g / sqrt(384))`` with ``g`` standard normal,
    around one of ``CLUSTERS`` random unit centres picked with log-normal weights, and a
    per-cluster ``spread`` in ``SPREAD_RANGE``: a query's nearest neighbour then has cosine
    ~0.6, its 10th ~0.5, and unrelated vectors ~0, and on 30,000 vectors HNSW found 0.97
    and IVF 0.97 of the exact top 10, in line with what FAISS reports for real text
    embeddings.

    Base vector ``i`` is always the same for a seed (chunk ``i // ADD_BATCH`` comes from
    its own generator), so smaller sizes are prefixes of larger ones and no chunk has to
    be kept in memory; queries come from another generator and are not in the base.

    Example::

        data = ClusteredVectors.create(seed=0)
        first = data.base_chunk(0, 10_000)   # (10000, 384) float32, unit rows
        queries = data.queries(1000)
    """

    seed: int
    centres: NDArray[np.float32]
    weights: NDArray[np.float64]
    spreads: NDArray[np.float32]

    @classmethod
    def create(cls, *, seed: int, dimension: int = DIMENSION) -> ClusteredVectors:
        """The mixture for ``seed``: centres, cluster weights and spreads."""
        rng = np.random.default_rng([seed, _MODEL_STREAM])
        centres = _normalise(rng.standard_normal((CLUSTERS, dimension), dtype=np.float32))
        weights = rng.lognormal(0.0, CLUSTER_WEIGHT_SIGMA, CLUSTERS)
        spreads = rng.uniform(*SPREAD_RANGE, CLUSTERS).astype(np.float32)
        return cls(seed, centres, weights / weights.sum(), spreads)

    @property
    def dimension(self) -> int:
        """Length of the vectors."""
        return int(self.centres.shape[1])

    def base_chunk(self, index: int, count: int) -> NDArray[np.float32]:
        """The first ``count`` (at most ``ADD_BATCH``) vectors of base chunk ``index``.

        Raises:
            ValueError: ``index`` is negative or ``count`` is not in 0..ADD_BATCH.
        """
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        if not 0 <= count <= ADD_BATCH:
            raise ValueError(f"count must be in 0..{ADD_BATCH}, got {count}")
        # The whole chunk is drawn and then cut, so a chunk's rows do not depend on count.
        rng = np.random.default_rng([self.seed, _BASE_STREAM, index])
        return self._draw(rng, ADD_BATCH)[:count]

    def queries(self, count: int) -> NDArray[np.float32]:
        """``count`` query vectors from the same mixture (independent of the base)."""
        return self._draw(np.random.default_rng([self.seed, _QUERY_STREAM]), count)

    def _draw(self, rng: np.random.Generator, count: int) -> NDArray[np.float32]:
        labels = rng.choice(len(self.weights), size=count, p=self.weights)
        noise = rng.standard_normal((count, self.dimension), dtype=np.float32)
        noise *= (self.spreads[labels] / np.float32(math.sqrt(self.dimension)))[:, None]
        return _normalise(self.centres[labels] + noise)


def _normalise(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


# --- one index ------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyStats:
    """Single-query latency: medians over the repeats of each repeat's p50 / p95 (ms)."""

    p50_ms: float
    p95_ms: float
    mean_ms: float
    per_repeat_p50_ms: list[float]
    per_repeat_p95_ms: list[float]
    threads: int


@dataclass(frozen=True)
class BatchStats:
    """All queries in one call: median queries per second over the repeats."""

    queries_per_second: float
    per_repeat_seconds: list[float]
    threads: int


@dataclass(frozen=True)
class KindResult:
    """Everything measured for one index kind at one size."""

    size: int
    kind: str
    structure: str
    search_device: str
    build_seconds: float
    save_seconds: float
    index_bytes: int
    latency: LatencyStats
    batch: BatchStats
    recall_at_k: float
    speedup_p50_vs_exact: float
    speedup_batch_vs_exact: float
    ivf_trained: bool | None = None
    ivf_nlist: int | None = None
    ivf_nprobe: int | None = None
    ivf_training_events: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EfSearchResult:
    """HNSW at one size searched with one efSearch (the ``--hnsw-ef-search`` sweep)."""

    size: int
    ef_search: int
    #: Whether this is the efSearch the product uses at this size (``hnsw_ef_search``).
    product_default: bool
    latency: LatencyStats
    batch: BatchStats
    recall_at_k: float
    speedup_p50_vs_exact: float


class _TrainingEvents(logging.Handler):
    """Collects the "training IVF index" lines FaissIndex logs while it is built."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.messages: list[str] = []
        self._started = time.perf_counter()

    def emit(self, record: logging.LogRecord) -> None:
        elapsed = time.perf_counter() - self._started
        self.messages.append(f"{elapsed:.1f} s into the build: {record.getMessage()}")


def build_index(
    data: ClusteredVectors, kind: str, size: int
) -> tuple[FaissIndex, float, list[str]]:
    """Add ``size`` vectors to a new index of ``kind``, ``ADD_BATCH`` per call; timed.

    Returns:
        The index, the seconds spent in ``add`` calls, and FaissIndex's IVF training
        log lines (with the time into the build at which each started).
    """
    index = FaissIndex.create(dimension=data.dimension, kind=cast(FaissKind, kind))
    events = _TrainingEvents()
    index_logger = logging.getLogger("rag.store.faiss_index")
    previous_level = index_logger.level
    index_logger.setLevel(logging.INFO)
    index_logger.addHandler(events)
    add_seconds = 0.0
    last_report = began = time.perf_counter()
    try:
        for chunk, start in enumerate(range(0, size, ADD_BATCH)):
            count = min(ADD_BATCH, size - start)
            vectors = data.base_chunk(chunk, count)
            ids = np.arange(start, start + count, dtype=np.int64)
            added = time.perf_counter()
            index.add(ids, vectors)
            add_seconds += time.perf_counter() - added
            now = time.perf_counter()
            if now - last_report >= PROGRESS_EVERY_S:
                last_report = now
                logger.info(
                    "  %s @ %d: added %d / %d in %.0f s (%.0f vectors/s in add)",
                    kind,
                    size,
                    start + count,
                    size,
                    now - began,
                    (start + count) / add_seconds,
                )
    finally:
        index_logger.removeHandler(events)
        index_logger.setLevel(previous_level)
    return index, add_seconds, events.messages


class Searcher(Protocol):
    """What the measurements search: a FaissIndex, or :class:`FixedEfSearch` over one."""

    def search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Scores and ids of the ``k`` nearest vectors for each query row."""
        ...


def measure_latency(
    index: Searcher, queries: NDArray[np.float32], k: int, repeats: int, label: str
) -> LatencyStats:
    """One query per ``search`` call on one FAISS thread, ``repeats`` times."""
    default_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for i in range(min(WARMUP_QUERIES, len(queries))):
            index.search(queries[i : i + 1], k)
        p50s: list[float] = []
        p95s: list[float] = []
        means: list[float] = []
        for repeat in range(repeats):
            times = np.empty(len(queries))
            began = time.perf_counter()
            for i in range(len(queries)):
                started = time.perf_counter()
                index.search(queries[i : i + 1], k)
                times[i] = time.perf_counter() - started
            times *= 1000
            p50s.append(float(np.percentile(times, 50)))
            p95s.append(float(np.percentile(times, 95)))
            means.append(float(times.mean()))
            logger.info(
                "  %s single-query repeat %d/%d: p50 %.3f ms, p95 %.3f ms (%.1f s)",
                label,
                repeat + 1,
                repeats,
                p50s[-1],
                p95s[-1],
                time.perf_counter() - began,
            )
    finally:
        faiss.omp_set_num_threads(default_threads)
    return LatencyStats(
        p50_ms=statistics.median(p50s),
        p95_ms=statistics.median(p95s),
        mean_ms=statistics.median(means),
        per_repeat_p50_ms=p50s,
        per_repeat_p95_ms=p95s,
        threads=1,
    )


def measure_batch(
    index: Searcher, queries: NDArray[np.float32], k: int, repeats: int
) -> tuple[BatchStats, NDArray[np.int64]]:
    """All queries in one ``search`` call, ``repeats`` times; also returns the found ids."""
    seconds: list[float] = []
    found = np.empty((0, k), dtype=np.int64)
    for _ in range(repeats):
        started = time.perf_counter()
        _, found = index.search(queries, k)
        seconds.append(time.perf_counter() - started)
    return (
        BatchStats(
            queries_per_second=len(queries) / statistics.median(seconds),
            per_repeat_seconds=seconds,
            threads=faiss.omp_get_max_threads(),
        ),
        found,
    )


def recall_at_k(found: NDArray[np.int64], truth: NDArray[np.int64]) -> float:
    """Mean share of each query's true top ids (``-1`` padding excluded) that were found."""
    shares = []
    for got, want in zip(found, truth, strict=True):
        relevant = want[want >= 0]
        if relevant.size:
            shares.append(np.isin(relevant, got).sum() / relevant.size)
    return float(np.mean(shares)) if shares else 1.0


def describe_structure(
    kind: str, trained: bool, nlist: int | None, *, size: int = 0, k: int = 10
) -> str:
    """What the index really is after the build, for the table."""
    if kind == "flat":
        return "exact"
    if kind == "hnsw":
        return f"HNSW M={HNSW_M} efSearch={hnsw_ef_search(size, k)}"
    if trained and nlist is not None:
        return f"IVF nlist={nlist} nprobe={ivf_nprobe(nlist)}"
    return f"flat fallback (IVF trains at {ivf_training_threshold():,} vectors)"


def ivf_training_threshold() -> int:
    """The smallest vector count at which an ``ivf`` FaissIndex trains (about 24,300)."""
    count = 1
    while not ivf_can_train(count):
        count += 1
    return count


class FixedEfSearch:
    """Searches an ``hnsw`` FaissIndex with a given efSearch instead of the product's.

    The efSearch goes with each call as ``faiss.SearchParametersHNSW`` to the FAISS
    ``IndexIDMap2`` (over ``IndexHNSWFlat``) that FaissIndex wraps, as
    ``FaissIndex.search`` itself passes its own; the index is not modified. Results are
    shaped as ``FaissIndex.search``'s (ids ``-1`` and scores ``-inf`` where fewer than k).

    Raises:
        TypeError: ``index`` is not HNSW.
    """

    def __init__(self, index: FaissIndex, ef_search: int) -> None:
        outer = index.cpu_index
        inner = faiss.downcast_index(outer.index) if isinstance(outer, faiss.IndexIDMap2) else None
        if not isinstance(inner, faiss.IndexHNSW):
            raise TypeError(f"not an HNSW index: {index!r} holds {type(outer).__name__}")
        self._index = outer
        self.ef_search = ef_search

    def search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Top ``k`` for each row of ``queries`` with this efSearch."""
        params = faiss.SearchParametersHNSW(efSearch=self.ef_search)  # type: ignore[attr-defined]
        scores, found = self._index.search(
            np.ascontiguousarray(queries, dtype=np.float32), k, params=params
        )
        scores = np.asarray(scores, dtype=np.float32)
        found = np.asarray(found, dtype=np.int64)
        scores[found < 0] = -np.inf
        return scores, found


def sweep_ef_search(
    index: FaissIndex,
    ef_values: Sequence[int],
    queries: NDArray[np.float32],
    k: int,
    repeats: int,
    truth: NDArray[np.int64],
    label: str,
) -> list[dict[str, Any]]:
    """Search ``index`` (hnsw) with each efSearch in turn (see :class:`FixedEfSearch`).

    Returns:
        Per efSearch: ``ef_search``, ``product_default`` (whether FaissIndex uses it at
        this size), ``latency`` (single query, 1 thread), ``batch`` and ``recall_at_k``
        against ``truth``.
    """
    product = hnsw_ef_search(len(index), k)
    rows: list[dict[str, Any]] = []
    for ef in ef_values:
        searcher = FixedEfSearch(index, ef)
        latency = measure_latency(searcher, queries, k, repeats, f"{label} efSearch={ef}")
        batch, found = measure_batch(searcher, queries, k, repeats)
        recall = recall_at_k(found, truth)
        logger.info(
            "%s efSearch=%d: recall@%d %.3f, p50 %.3f ms, batch %.0f queries/s",
            label,
            ef,
            k,
            recall,
            latency.p50_ms,
            batch.queries_per_second,
        )
        rows.append(
            {
                "ef_search": ef,
                "product_default": ef == product,
                "latency": latency,
                "batch": batch,
                "recall_at_k": recall,
            }
        )
    return rows


def bench_kind(
    data: ClusteredVectors,
    kind: str,
    size: int,
    queries: NDArray[np.float32],
    k: int,
    repeats: int,
    work: Path,
    gpu: bool,
    *,
    ef_search: Sequence[int] = (),
    truth: NDArray[np.int64] | None = None,
) -> tuple[dict[str, Any], NDArray[np.int64]]:
    """Build one index, save it, measure it; returns raw numbers and the batch result ids.

    For ``hnsw`` with ``ef_search`` values (and the exact ``truth``), the raw numbers
    also hold ``ef_sweep``: :func:`sweep_ef_search` on the same index.
    """
    label = f"{kind} @ {size}"
    logger.info("%s: building (%d add calls)", label, math.ceil(size / ADD_BATCH))
    index, build_seconds, training = build_index(data, kind, size)
    logger.info("%s: built in %.1f s (add calls only)", label, build_seconds)
    path = work / f"{kind}-{size}.faiss"
    started = time.perf_counter()
    index.save(path)
    save_seconds = time.perf_counter() - started
    manifest = json.loads(FaissIndex.manifest_path(path).read_text(encoding="utf-8"))
    index_bytes = path.stat().st_size
    path.unlink()
    FaissIndex.manifest_path(path).unlink()
    latency = measure_latency(index, queries, k, repeats, label)
    batch, found = measure_batch(index, queries, k, repeats)
    logger.info("%s: batch %.0f queries/s", label, batch.queries_per_second)
    ef_sweep: list[dict[str, Any]] = []
    if kind == "hnsw" and ef_search:
        if truth is None:
            raise ValueError("the efSearch sweep needs the exact results (truth)")
        ef_sweep = sweep_ef_search(index, ef_search, queries, k, repeats, truth, label)
    trained = index.ivf_trained
    nlist = manifest.get("ivf_nlist") if kind == "ivf" else None
    del index
    gc.collect()
    raw: dict[str, Any] = {
        "size": size,
        "kind": kind,
        "structure": describe_structure(kind, trained, nlist, size=size, k=k),
        # FaissIndex searches a GPU copy for flat and ivf when FAISS sees a GPU.
        "search_device": "gpu" if gpu and kind != "hnsw" else "cpu",
        "build_seconds": build_seconds,
        "save_seconds": save_seconds,
        "index_bytes": index_bytes,
        "latency": latency,
        "batch": batch,
    }
    if kind == "ivf":
        raw.update(
            ivf_trained=trained,
            ivf_nlist=nlist,
            ivf_nprobe=ivf_nprobe(nlist) if nlist is not None else None,
            ivf_training_events=training,
        )
    if ef_sweep:
        raw["ef_sweep"] = ef_sweep
    return raw, found


def bench_size(
    data: ClusteredVectors,
    kinds: Sequence[str],
    size: int,
    queries: NDArray[np.float32],
    k: int,
    repeats: int,
    work: Path,
    gpu: bool,
    ef_search: Sequence[int] = (),
) -> tuple[list[KindResult], list[EfSearchResult]]:
    """All kinds at one size; flat first, as ground truth and latency baseline.

    Returns:
        The kinds' results (those in ``kinds``) and the HNSW efSearch sweep (empty unless
        ``ef_search`` lists values and ``kinds`` has hnsw).
    """
    ordered = [BASELINE, *(kind for kind in kinds if kind != BASELINE)]
    raws: list[dict[str, Any]] = []
    truth: NDArray[np.int64] | None = None
    recalls: list[float] = []
    for kind in ordered:
        raw, found = bench_kind(
            data, kind, size, queries, k, repeats, work, gpu, ef_search=ef_search, truth=truth
        )
        if truth is None:
            truth = found
        recalls.append(recall_at_k(found, truth))
        raws.append(raw)
    base_p50 = raws[0]["latency"].p50_ms
    base_qps = raws[0]["batch"].queries_per_second
    sweep = [
        EfSearchResult(
            size=size,
            **row,
            speedup_p50_vs_exact=base_p50 / row["latency"].p50_ms,
        )
        for raw in raws
        for row in raw.pop("ef_sweep", [])
    ]
    results = [
        KindResult(
            **raw,
            recall_at_k=recall,
            speedup_p50_vs_exact=base_p50 / raw["latency"].p50_ms,
            speedup_batch_vs_exact=raw["batch"].queries_per_second / base_qps,
        )
        for raw, recall in zip(raws, recalls, strict=True)
        if raw["kind"] in kinds
    ]
    return results, sweep


# --- report ---------------------------------------------------------------------------


def device_label() -> dict[str, Any]:
    """CPU model, cores, FAISS version and GPU support, and the default thread count."""
    gpu_support = hasattr(faiss, "StandardGpuResources")
    gpus = int(faiss.get_num_gpus()) if gpu_support else 0
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "faiss": faiss.__version__,
        "faiss_gpu_support": gpu_support,
        "gpus_visible_to_faiss": gpus,
        "faiss_default_threads": faiss.omp_get_max_threads(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def device_line(device: dict[str, Any]) -> str:
    """One line naming the machine, for under the table."""
    if device["gpus_visible_to_faiss"]:
        gpu = f"GPU support, {device['gpus_visible_to_faiss']} GPU(s): flat/ivf search on GPU"
    elif device["faiss_gpu_support"]:
        gpu = "GPU support but no GPU visible"
    else:
        gpu = "no GPU support"
    return (
        f"device: {device['cpu']}, {device['cores']} cores; faiss {device['faiss']} ({gpu}); "
        f"single-query latency on 1 FAISS thread, batch on {device['faiss_default_threads']}"
    )


def markdown_table(results: Sequence[KindResult], k: int) -> str:
    """The results as a Markdown table, one row per size and kind."""
    lines = [
        f"| vectors | kind | structure | search on | build s | index MB | p50 ms | p95 ms "
        f"| speed-up vs exact (p50) | batch q/s | recall@{k} |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.size:,} | {r.kind} | {r.structure} | {r.search_device} "
            f"| {r.build_seconds:.1f} | {r.index_bytes / 2**20:.0f} "
            f"| {r.latency.p50_ms:.3f} | {r.latency.p95_ms:.3f} "
            f"| {r.speedup_p50_vs_exact:.2f}x | {r.batch.queries_per_second:,.0f} "
            f"| {r.recall_at_k:.3f} |"
        )
    return "\n".join(lines)


def sweep_table(sweep: Sequence[EfSearchResult], k: int) -> str:
    """The HNSW efSearch sweep as a Markdown table, one row per size and efSearch."""
    lines = [
        f"| vectors | efSearch | p50 ms | p95 ms | speed-up vs exact (p50) | batch q/s "
        f"| recall@{k} |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sweep:
        ef = f"{r.ef_search} (product)" if r.product_default else str(r.ef_search)
        lines.append(
            f"| {r.size:,} | {ef} | {r.latency.p50_ms:.3f} | {r.latency.p95_ms:.3f} "
            f"| {r.speedup_p50_vs_exact:.2f}x | {r.batch.queries_per_second:,.0f} "
            f"| {r.recall_at_k:.3f} |"
        )
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------


def parse_sizes(value: str) -> tuple[int, ...]:
    """``"10000,100000"`` -> ``(10000, 100000)``: sorted, distinct, positive."""
    try:
        sizes = sorted({int(s.replace("_", "")) for s in value.split(",") if s.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"sizes must be integers, got {value!r}") from exc
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {value!r}")
    return tuple(sizes)


def parse_kinds(value: str) -> tuple[str, ...]:
    """``"hnsw, ivf"`` -> ``("hnsw", "ivf")``, rejecting unknown kinds."""
    kinds = tuple(dict.fromkeys(k.strip().lower() for k in value.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(
            f"kinds must be a comma-separated subset of {','.join(KINDS)}, got {value!r}"
        )
    return kinds


def parse_ef_search(value: str) -> tuple[int, ...]:
    """``"128, 64,64"`` -> ``(64, 128)``: sorted, distinct, positive; ``""`` -> ``()``."""
    try:
        values = sorted({int(s.replace("_", "")) for s in value.split(",") if s.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"efSearch values must be integers, got {value!r}"
        ) from exc
    if values and values[0] < 1:
        raise argparse.ArgumentTypeError(f"efSearch values must be >= 1, got {value!r}")
    return tuple(values)


def positive_int(value: str) -> int:
    """An argparse type for integers >= 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark FaissIndex kinds: latency, throughput and recall vs exact search."
    )
    parser.add_argument(
        "--sizes", type=parse_sizes, default=(10_000, 100_000, 1_000_000), help="comma list"
    )
    parser.add_argument(
        "--kinds",
        type=parse_kinds,
        default=KINDS,
        help="comma list of flat,hnsw,ivf; flat (exact: the baseline and ground truth) is "
        "always measured, and reported only when listed",
    )
    parser.add_argument(
        "--hnsw-ef-search",
        type=parse_ef_search,
        default=(),
        metavar="LIST",
        help="comma list of efSearch values: also measure the hnsw index (built once per "
        "size) with each of them (default: none, only the efSearch the product picks "
        "for the size); needs hnsw in --kinds",
    )
    parser.add_argument("--queries", type=positive_int, default=1000)
    parser.add_argument("--k", type=positive_int, default=10)
    parser.add_argument(
        "--repeats", type=positive_int, default=3, help="latency / batch measurements"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for the saved index files (temporary)"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "bench" / "results", help="folder for the JSON"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every kind at every size, print the table and write the JSON."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.hnsw_ef_search and "hnsw" not in args.kinds:
        parser.error("--hnsw-ef-search needs hnsw in --kinds")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    logger.setLevel(logging.INFO)
    device = device_label()
    gpu = bool(device["gpus_visible_to_faiss"])
    load_before = os.getloadavg()
    began = time.perf_counter()
    data = ClusteredVectors.create(seed=args.seed)
    queries = data.queries(args.queries)
    results: list[KindResult] = []
    sweep: list[EfSearchResult] = []
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="index-bench-", dir=args.work) as tmp:
        for size in args.sizes:
            logger.info("size %d: kinds %s", size, ", ".join(args.kinds))
            size_results, size_sweep = bench_size(
                data,
                args.kinds,
                size,
                queries,
                args.k,
                args.repeats,
                Path(tmp),
                gpu,
                args.hnsw_ef_search,
            )
            results.extend(size_results)
            sweep.extend(size_sweep)
            # Each size's rows as soon as they exist: the 1M size takes long.
            print(markdown_table(size_results, args.k), file=sys.stderr)
            if size_sweep:
                print(sweep_table(size_sweep, args.k), file=sys.stderr)

    noisy = [
        f"{r.kind} @ {r.size} ({part})"
        for r in results
        for part, values in (
            ("single-query p50", r.latency.per_repeat_p50_ms),
            ("batch", r.batch.per_repeat_seconds),
        )
        if max(values) > NOISY_SPREAD * min(values)
    ]
    noisy.extend(
        f"hnsw efSearch={r.ef_search} @ {r.size} ({part})"
        for r in sweep
        for part, values in (
            ("single-query p50", r.latency.per_repeat_p50_ms),
            ("batch", r.batch.per_repeat_seconds),
        )
        if max(values) > NOISY_SPREAD * min(values)
    )
    print(
        f"\nFAISS index kinds: {DIMENSION}-d clustered synthetic vectors, {args.queries} "
        f"queries, k={args.k}, {args.repeats} repeat(s) (medians), seed {args.seed}\n"
    )
    print(markdown_table(results, args.k))
    if sweep:
        product = ", ".join(f"{hnsw_ef_search(size, args.k)} at {size:,}" for size in args.sizes)
        print(
            f"\nHNSW efSearch sweep (M={HNSW_M}, the same index per size; the product "
            f"uses efSearch {product}):\n"
        )
        print(sweep_table(sweep, args.k))
    print()
    print(device_line(device))
    fallback = [r for r in results if r.kind == "ivf" and not r.ivf_trained]
    for r in fallback:
        print(
            f"note: ivf @ {r.size:,} is a flat fallback (exact search): IVF trains once the "
            f"index holds {IVF_MIN_POINTS_PER_LIST} x nlist vectors, first at "
            f"{ivf_training_threshold():,}"
        )
    if noisy:
        print(
            f"warning: repeats vary by more than {NOISY_SPREAD - 1:.0%} for "
            f"{', '.join(noisy)} (load average {os.getloadavg()[0]:.1f}); the machine is busy"
        )
    for note in NOTES:
        print(f"note: {note}")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "benchmark": "index",
        "created": stamp,
        "argv": list(argv) if argv is not None else sys.argv[1:],
        "device": device,
        "load_average_at_start": [round(x, 2) for x in load_before],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "total_seconds": time.perf_counter() - began,
        "data": {
            "kind": "mixture of Gaussians on the unit sphere",
            "dimension": DIMENSION,
            "clusters": CLUSTERS,
            "spread_range": list(SPREAD_RANGE),
            "cluster_weight_sigma": CLUSTER_WEIGHT_SIGMA,
            "seed": args.seed,
        },
        "sizes": list(args.sizes),
        "kinds": list(args.kinds),
        "baseline": BASELINE,
        "queries": args.queries,
        "k": args.k,
        "repeats": args.repeats,
        "add_batch": ADD_BATCH,
        "warmup_queries": WARMUP_QUERIES,
        "notes": list(NOTES),
        "noisy": noisy,
        "results": [asdict(r) for r in results],
    }
    if args.hnsw_ef_search:
        report["hnsw_ef_search"] = list(args.hnsw_ef_search)
        report["hnsw_ef_search_product"] = {
            str(size): hnsw_ef_search(size, args.k) for size in args.sizes
        }
        report["hnsw_ef_sweep"] = [asdict(r) for r in sweep]
    args.out.mkdir(parents=True, exist_ok=True)
    out_file = args.out / f"index-{stamp}.json"
    out_file.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"results: {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
