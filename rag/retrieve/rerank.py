"""Cross-encoder reranking of another retriever's candidates."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.device import resolve_device
from rag.errors import RetrievalError
from rag.records import RetrievedChunk
from rag.retrieve.protocol import RetrievalFilter, Retriever, check_retrieve_args, positive_int

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

logger = logging.getLogger(__name__)


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
        self.candidates = positive_int("candidates", candidates)
        self.batch_size = positive_int("batch_size", batch_size)
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
        check_retrieve_args(query, k, filters)
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
