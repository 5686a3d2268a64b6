"""The ``Embedder`` interface: text in, L2-normalised float32 vectors out.

Vectors are L2-normalised float32 rows, so the FAISS index can rank by inner product
(cosine similarity). Documents and queries are separate calls because some models embed
them differently (instruction prefixes); for all-MiniLM-L6-v2 they are the same.

Example::

    vectors = embedder.embed_documents(["first chunk", "second chunk"])  # (2, 384)
    query = embedder.embed_query("what is in the first chunk?")          # (384,)
    scores = vectors @ query
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


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


def check_texts(texts: Sequence[str]) -> None:
    """Check ``embed_documents``' argument at the boundary, for every backend.

    Raises:
        TypeError: ``texts`` is a single string or holds a non-string.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a string, got {type(text).__name__}")


def unit_rows(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    """Scale rows to length 1 (inner product = cosine); all-zero rows stay zero, not NaN."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    # np.linalg.norm is typed as returning Any; asarray restores the array type.
    return np.asarray(matrix / norms, dtype=np.float32)
