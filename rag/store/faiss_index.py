"""The dense vector index of a knowledge base: FAISS, keyed by int64 chunk ids.

Vectors are L2-normalised by the embedder, so inner product equals cosine similarity.
Three kinds share one interface:

``flat``
    Exact search (``IndexIDMap2`` over ``IndexFlatIP``). The default; fine to a few
    hundred thousand chunks.
``hnsw``
    Graph search (``IndexIDMap2`` over ``IndexHNSWFlat``, M=32; efSearch grows with the
    index, 64 per 100k vectors between 64 and 512: :func:`hnsw_ef_search`). Fast
    approximate search, but FAISS cannot delete from HNSW: :meth:`FaissIndex.remove`
    rebuilds the graph from the stored vectors, which costs about as much as adding
    everything again.
``ivf``
    Inverted lists (``IndexIVFFlat``). IVF must be trained on data first, and k-means
    needs about 39 points per list, so until the index holds ``39 * nlist`` vectors
    (about 24,300 with ``nlist = 4 * sqrt(n)``) the vectors live in an exact flat index.
    Once there are enough, the IVF index is trained on all of them and they move over;
    it is trained again from scratch whenever the collection has grown so much that
    ``nlist`` would double (about 4x the vectors). IVF uses its own ids, not
    ``IndexIDMap2``, because ``IndexIDMap2.remove_ids`` over IVF maps the surviving
    vectors to the wrong ids (IVF does not renumber what it keeps).

When the installed FAISS has GPU support and sees a GPU, flat and IVF searches run on a
GPU copy made on first search; the CPU index stays the master that is mutated and saved.

Example::

    index = FaissIndex.create(dimension=384, kind="flat")
    index.add(np.array([7, 8], dtype=np.int64), vectors)   # vectors: (2, 384) float32
    scores, ids = index.search(query_vectors, k=5)          # ids -1 where fewer than k
    index.save(kb_dir / "vectors.faiss")                    # + vectors.faiss.json
    again = FaissIndex.load(kb_dir / "vectors.faiss", expected_dimension=384)
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from rag.errors import IndexCorruptError
from rag.store.faiss_kinds import (
    HNSW_M,
    KINDS,
    FaissKind,
    apply_search_params,
    entries,
    entry_ids,
    hnsw_ef_search,
    is_ivf,
    ivf_can_train,
    ivf_nlist,
    new_flat,
    new_hnsw,
    structure,
)
from rag.store.faiss_manifest import MANIFEST_FORMAT, METRIC, manifest_path, read_manifest
from rag.store.files import atomic_write_bytes, fsync_file, sha256_file

logger = logging.getLogger(__name__)


class FaissIndex:
    """Cosine similarity via inner product on normalised vectors; ids are int64 chunk ids.

    Build with :meth:`create` or :meth:`load`, not the constructor. Searches may run
    from several threads; mutations (:meth:`add`, :meth:`remove`) need one writer, which
    the knowledge base's writer lock provides.

    Example::

        index = FaissIndex.create(dimension=3, kind="hnsw")
        index.add(np.array([1, 2], dtype=np.int64),
                  np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
        scores, ids = index.search(np.array([[1, 0, 0]], dtype=np.float32), k=1)
        # ids == [[1]], scores ~= [[1.0]]
        index.remove(np.array([1], dtype=np.int64))   # -> 1
    """

    def __init__(self, *, kind: FaissKind, dimension: int, index: Any) -> None:
        """Wrap a FAISS index; use :meth:`create` or :meth:`load` instead."""
        self.kind: str = kind
        self.dimension: int = dimension
        self._index = index
        self._ids_cache: NDArray[np.int64] | None = None
        self._gpu_index: Any = None
        self._gpu_resources: Any = None
        self._gpu_failed = False

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(cls, *, dimension: int, kind: FaissKind = "flat") -> FaissIndex:
        """Make an empty index.

        Args:
            dimension: vector length (384 for all-MiniLM-L6-v2).
            kind: ``flat``, ``hnsw`` or ``ivf`` (see the module docstring).

        Raises:
            ValueError: ``dimension`` is not a positive integer or ``kind`` is unknown.
        """
        _check_dimension(dimension)
        _check_kind(kind)
        # IVF starts flat and is trained once there are enough vectors.
        index = new_hnsw(dimension) if kind == "hnsw" else new_flat(dimension)
        return cls(kind=kind, dimension=dimension, index=index)

    # ------------------------------------------------------------------ inspection

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        return f"FaissIndex(kind={self.kind!r}, dimension={self.dimension}, count={len(self)})"

    @property
    def cpu_index(self) -> Any:
        """The wrapped FAISS index on the CPU (the master copy that is mutated and saved).

        For benchmarks that search it directly (bypassing the GPU copy) or tune a search;
        changing it bypasses this class's id bookkeeping.
        """
        return self._index

    @property
    def ivf_trained(self) -> bool:
        """True when an ``ivf`` index has left its flat start-up phase."""
        return is_ivf(self._index)

    def ids(self) -> NDArray[np.int64]:
        """All ids present, sorted ascending."""
        return np.sort(self._current_ids())

    # ------------------------------------------------------------------ mutation

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Add vectors under the given ids.

        Cost includes a check of the new ids against all present ones (O(n)), so add
        in batches (a document's chunks at a time), not one vector at a time.

        Args:
            ids: shape ``(n,)``, distinct non-negative integers not yet in the index.
            vectors: shape ``(n, dimension)``, finite, L2-normalised float32 rows.

        Raises:
            ValueError: shapes disagree, ids repeat or are negative, values are not
                finite, or an id is already present.
        """
        id_array = _as_ids(ids)
        matrix = _as_vectors(vectors, self.dimension, "vectors")
        if matrix.shape[0] != id_array.shape[0]:
            raise ValueError(
                f"ids and vectors must have the same length, got {id_array.shape[0]} ids "
                f"and {matrix.shape[0]} vectors"
            )
        if id_array.size == 0:
            return
        if (id_array < 0).any():
            raise ValueError(f"ids must be non-negative, got {int(id_array.min())}")
        if np.unique(id_array).size != id_array.size:
            raise ValueError("ids must be distinct; the same id appears twice in ids")
        present = self._current_ids()
        clash = id_array[np.isin(id_array, present)]
        if clash.size:
            raise ValueError(
                f"ids already in the index: {clash[:10].tolist()}"
                + (f" and {clash.size - 10} more" if clash.size > 10 else "")
                + "; remove them first"
            )
        self._index.add_with_ids(matrix, id_array)
        self._ids_cache = np.concatenate([present, id_array])
        self._invalidate_gpu()
        if self.kind == "ivf":
            self._maybe_train_ivf()

    def remove(self, ids: NDArray[np.int64]) -> int:
        """Remove the given ids; ids not present are ignored.

        Returns:
            How many vectors were removed.

        Raises:
            ValueError: ``ids`` is not a 1-D integer array.
        """
        id_array = _as_ids(ids)
        present = self._current_ids()
        doomed = np.isin(present, id_array)
        n_doomed = int(doomed.sum())
        if n_doomed == 0:
            return 0
        if self.kind == "hnsw":
            # HNSW graphs cannot drop nodes; rebuild from the vectors kept.
            keep_ids, keep_vectors = entries(self._index)
            mask = ~np.isin(keep_ids, id_array)
            fresh = new_hnsw(self.dimension)
            if mask.any():
                fresh.add_with_ids(keep_vectors[mask], keep_ids[mask])
            self._index = fresh
            removed = n_doomed
        else:
            removed = int(self._index.remove_ids(faiss.IDSelectorBatch(id_array)))
        self._ids_cache = present[~doomed]
        self._invalidate_gpu()
        if removed != n_doomed:
            raise IndexCorruptError(
                f"FAISS removed {removed} vectors where {n_doomed} were present; the index "
                "is inconsistent, run `rag kb rebuild NAME`"
            )
        return removed

    # ------------------------------------------------------------------ search

    def search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Find the ``k`` most similar vectors for each query.

        Args:
            queries: shape ``(nq, dimension)``, L2-normalised float32 rows.
            k: results per query, at least 1.

        Returns:
            ``(scores, ids)``, both ``(nq, k)``, best first. Where fewer than ``k``
            vectors are found, ids are ``-1`` and scores ``-inf``.

        Raises:
            ValueError: ``k`` is not a positive integer or ``queries`` has the wrong shape.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        matrix = _as_vectors(queries, self.dimension, "queries")
        nq = matrix.shape[0]
        if nq == 0 or len(self) == 0:
            return (
                np.full((nq, k), -np.inf, dtype=np.float32),
                np.full((nq, k), -1, dtype=np.int64),
            )
        index = self._search_index(k)
        if self.kind == "hnsw":
            # Per-call parameters: concurrent readers may share this index.
            params = faiss.SearchParametersHNSW(efSearch=hnsw_ef_search(len(self), k))  # type: ignore[attr-defined]
            scores, found = index.search(matrix, k, params=params)
        else:
            scores, found = index.search(matrix, k)
        scores = np.asarray(scores, dtype=np.float32)
        found = np.asarray(found, dtype=np.int64)
        scores[found < 0] = -np.inf
        return scores, found

    # ------------------------------------------------------------------ persistence

    @staticmethod
    def manifest_path(path: Path) -> Path:
        """Where the manifest of the index file ``path`` lives (``<name>.json``)."""
        return manifest_path(path)

    def save(self, path: Path) -> None:
        """Write the index and its manifest atomically.

        Each file is written to a temporary file in the same directory, fsynced and
        ``os.replace``d, so readers see the old file or the new one, never half of one.
        The index goes first; a crash between the two replacements leaves a manifest
        whose checksum does not match, which :meth:`load` reports as corrupt. The
        knowledge base writes each generation under a new name, so this only happens
        to a generation the catalog does not point at yet.

        Args:
            path: the index file, e.g. ``indexes/<kb>/vectors.faiss``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # FAISS writes straight to the temp file: a serialized copy in memory would double
        # the peak memory of large indexes.
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            faiss.write_index(self._index, str(tmp))
            fsync_file(tmp)
            size, digest = tmp.stat().st_size, sha256_file(tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "kind": self.kind,
            "dimension": self.dimension,
            "metric": METRIC,
            "count": len(self),
            "faiss_version": faiss.__version__,
            "file_bytes": size,
            "file_sha256": digest,
        }
        if self.kind == "hnsw":
            manifest["hnsw_m"] = HNSW_M
        if self.kind == "ivf":
            manifest["ivf_trained"] = self.ivf_trained
            manifest["ivf_nlist"] = int(self._index.nlist) if self.ivf_trained else None
        atomic_write_bytes(
            self.manifest_path(path), (json.dumps(manifest, indent=2) + "\n").encode()
        )

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        expected_dimension: int | None = None,
        expected_kind: str | None = None,
    ) -> FaissIndex:
        """Read an index saved by :meth:`save`, checking it against its manifest.

        Args:
            path: the index file.
            expected_dimension: the knowledge base's embedding dimension, if known.
            expected_kind: the knowledge base's index kind, if known.

        Raises:
            IndexCorruptError: a file is missing or unreadable, the checksum, count,
                dimension or structure disagrees with the manifest, or the manifest
                disagrees with what was expected. The message names the file and says
                to run ``rag kb rebuild NAME``.
        """
        path = Path(path)
        manifest = read_manifest(path)
        kind = manifest["kind"]
        dimension = manifest["dimension"]

        def corrupt(problem: str) -> IndexCorruptError:
            return IndexCorruptError(
                f"FAISS index {path}: {problem}; run `rag kb rebuild NAME` to rebuild it "
                "from the catalog"
            )

        if expected_kind is not None and kind != expected_kind:
            raise corrupt(f"manifest says kind {kind!r} but {expected_kind!r} was expected")
        if expected_dimension is not None and dimension != expected_dimension:
            raise corrupt(
                f"manifest says dimension {dimension} but {expected_dimension} was expected "
                "(was the embedding model changed?)"
            )
        if manifest["metric"] != METRIC:
            raise corrupt(f"manifest says metric {manifest['metric']!r}, expected {METRIC!r}")
        try:
            size = path.stat().st_size
            if size != manifest["file_bytes"]:
                raise corrupt(
                    f"file has {size} bytes but the manifest recorded "
                    f"{manifest['file_bytes']} (truncated or replaced)"
                )
            if sha256_file(path) != manifest["file_sha256"]:
                raise corrupt("file checksum differs from the manifest's")
        except OSError as exc:
            raise corrupt(f"cannot read the index file ({exc})") from exc
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise corrupt(f"FAISS cannot read the file ({exc})") from exc
        if int(index.d) != dimension:
            raise corrupt(f"file holds dimension {index.d}, manifest says {dimension}")
        if int(index.ntotal) != manifest["count"]:
            raise corrupt(f"file holds {index.ntotal} vectors, manifest says {manifest['count']}")
        expected_structure = {
            "flat": "flat",
            "hnsw": "hnsw",
            "ivf": "ivf" if manifest.get("ivf_trained") else "flat",
        }[kind]
        if structure(index) != expected_structure:
            raise corrupt(
                f"file holds a {structure(index)} index but the manifest describes {kind!r}"
            )
        if manifest["faiss_version"] != faiss.__version__:
            logger.info(
                "FAISS index %s was written by faiss %s, reading with %s",
                path,
                manifest["faiss_version"],
                faiss.__version__,
            )
        apply_search_params(index)
        return cls(kind=kind, dimension=dimension, index=index)

    # ------------------------------------------------------------------ internals

    def _current_ids(self) -> NDArray[np.int64]:
        if self._ids_cache is None:
            self._ids_cache = entry_ids(self._index)
        return self._ids_cache

    def _maybe_train_ivf(self) -> None:
        """Move to IVF, or retrain it, when the collection has grown enough."""
        count = len(self)
        if is_ivf(self._index):
            if ivf_nlist(count) < 2 * int(self._index.nlist):
                return
        elif not ivf_can_train(count):
            return
        ids, vectors = entries(self._index)
        nlist = ivf_nlist(count)
        logger.info("training IVF index: %d vectors into %d lists", count, nlist)
        quantizer = faiss.IndexFlatIP(self.dimension)
        ivf = faiss.IndexIVFFlat(quantizer, self.dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(vectors)
        ivf.add_with_ids(vectors, ids)
        apply_search_params(ivf)
        self._index = ivf
        self._ids_cache = None
        self._invalidate_gpu()

    def _invalidate_gpu(self) -> None:
        self._gpu_index = None

    def _search_index(self, k: int) -> Any:
        """The index to search: a GPU copy where possible, else the CPU master."""
        # GPU FAISS limits k to 2048; HNSW has no GPU version.
        if self._gpu_failed or self.kind == "hnsw" or k > 2048 or not _gpus_available():
            return self._index
        if self._gpu_index is None:
            try:
                if self._gpu_resources is None:
                    self._gpu_resources = faiss.StandardGpuResources()
                self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._index)
            except RuntimeError as exc:
                logger.warning("FAISS GPU copy failed, searching on CPU: %s", exc)
                self._gpu_failed = True
                return self._index
        return self._gpu_index


# ---------------------------------------------------------------------- helpers


def _gpus_available() -> bool:
    """True when this FAISS build has GPU support and sees at least one GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _check_dimension(dimension: int) -> None:
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
        raise ValueError(f"dimension must be a positive integer, got {dimension!r}")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")


def _as_ids(ids: NDArray[np.int64]) -> NDArray[np.int64]:
    array = np.asarray(ids)
    if array.ndim != 1:
        raise ValueError(f"ids must be a 1-D array, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _as_vectors(vectors: NDArray[np.float32], dimension: int, name: str) -> NDArray[np.float32]:
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] != dimension:
        raise ValueError(f"{name} must have shape (n, {dimension}), got {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be floating point, got dtype {array.dtype}")
    matrix = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} must be finite; found NaN or infinity")
    return matrix
