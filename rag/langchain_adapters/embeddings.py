"""LangChain ``Embeddings`` and our :class:`~rag.embed.Embedder`, each as the other."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings

from rag.embed.protocol import Embedder, unit_rows


class EmbedderEmbeddings(Embeddings):
    """One of our embedders as LangChain ``Embeddings``.

    Documents and queries keep their separate calls, so models that embed them
    differently (multilingual-e5's ``passage:`` and ``query:``) stay correct.

    Example::

        embeddings = EmbedderEmbeddings(build_embedder("multilingual"))
        embeddings.embed_query("北京在哪里？")          # 384 floats
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages; one list of floats per text."""
        return [[float(x) for x in row] for row in self.embedder.embed_documents(texts)]

    def embed_query(self, text: str) -> list[float]:
        """Embed a question."""
        return [float(x) for x in self.embedder.embed_query(text)]


class LangChainEmbedder:
    """Our :class:`~rag.embed.Embedder` protocol over a LangChain ``Embeddings``.

    LangChain embeddings are not always unit length; FAISS ranks by inner product, so
    every vector is L2-normalised here to make scores cosine similarities.

    Args:
        embeddings: any LangChain embeddings model.
        model_name: the name recorded in a knowledge base's manifest; defaults to
            ``langchain:<EmbeddingsClassName>`` since LangChain exposes no model name.

    Example::

        embedder = LangChainEmbedder(DeterministicFakeEmbedding(size=8))
        embedder.dimension                        # 8 (embeds one probe text, once)
        embedder.embed_documents(["a", "b"])      # (2, 8) float32, rows of norm 1
    """

    _PROBE_TEXT = "dimension probe"

    def __init__(self, embeddings: Embeddings, *, model_name: str | None = None) -> None:
        if not isinstance(embeddings, Embeddings):
            raise TypeError(
                f"embeddings must be a langchain_core Embeddings, got {type(embeddings).__name__}"
            )
        if model_name is not None and not model_name.strip():
            raise ValueError(f"model_name must be a non-empty string or None, got {model_name!r}")
        self.embeddings = embeddings
        self._model_name = model_name or f"langchain:{type(embeddings).__name__}"
        self._dimension: int | None = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """``langchain:<EmbeddingsClassName>`` unless a name was given."""
        return self._model_name

    @property
    def dimension(self) -> int:
        """Vector length, learnt from the first embedding (a probe text if none yet)."""
        if self._dimension is None:
            with self._lock:
                if self._dimension is None:
                    probe = self.embeddings.embed_query(self._PROBE_TEXT)
                    self._dimension = len(probe)
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts to index; returns ``(len(texts), dimension)`` unit rows.

        Raises:
            TypeError: ``texts`` is a single string.
            ValueError: the model returned the wrong number of vectors, ragged ones, or
                non-finite values.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        matrix = np.asarray(self.embeddings.embed_documents(list(texts)), dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise ValueError(
                f"{type(self.embeddings).__name__}.embed_documents returned shape "
                f"{matrix.shape} for {len(texts)} texts; expected ({len(texts)}, dimension)"
            )
        self._check(matrix)
        return unit_rows(matrix)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one query; returns a ``(dimension,)`` unit vector."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        vector = np.asarray(self.embeddings.embed_query(text), dtype=np.float32).reshape(1, -1)
        self._check(vector)
        return unit_rows(vector).reshape(-1)

    def _check(self, matrix: npt.NDArray[np.float32]) -> None:
        if not np.isfinite(matrix).all():
            raise ValueError(f"{type(self.embeddings).__name__} returned NaN or infinite values")
        if self._dimension is None:
            self._dimension = int(matrix.shape[1])
        elif matrix.shape[1] != self._dimension:
            raise ValueError(
                f"{type(self.embeddings).__name__} returned vectors of length "
                f"{matrix.shape[1]}, earlier ones had {self._dimension}"
            )

    def __repr__(self) -> str:
        return (
            f"LangChainEmbedder({type(self.embeddings).__name__}, model_name={self._model_name!r})"
        )
