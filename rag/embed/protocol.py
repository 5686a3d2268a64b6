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
