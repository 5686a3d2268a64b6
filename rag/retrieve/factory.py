"""The one place a retrieval mode becomes a retriever."""

from __future__ import annotations

from typing import get_args

from rag.config import RetrievalMode
from rag.embed.protocol import Embedder
from rag.retrieve.protocol import Retriever
from rag.retrieve.rerank import CrossEncoderReranker
from rag.retrieve.retrievers import Bm25Retriever, DenseRetriever, HybridRetriever
from rag.store.reader import KnowledgeBaseReader

_RETRIEVAL_MODES: tuple[str, ...] = get_args(RetrievalMode)


def build_retriever(
    mode: RetrievalMode,
    reader: KnowledgeBaseReader,
    embedder: Embedder,
    *,
    score_floor: float | None,
    rerank_model: str = "",
    rerank_device: str = "auto",
) -> Retriever:
    """The retriever for a retrieval mode, reranked when a rerank model is set.

    Args:
        mode: ``dense``, ``bm25`` or ``hybrid`` (``Settings.retrieval_mode``).
        reader: the knowledge base to search.
        embedder: the query embedder (the base's embedding model); unused for ``bm25``.
        score_floor: the dense cosine floor (``Settings.score_floor``); ``bm25`` mode
            has no floor and refuses only when no token matches.
        rerank_model: a CrossEncoder directory (``Settings.rerank_model``); empty means
            no reranking.
        rerank_device: the device for the rerank model (``Settings.device``).

    Raises:
        ValueError: ``mode`` is not one of the three, or another parameter is invalid.

    Example::

        retriever = build_retriever("hybrid", reader, embedder, score_floor=0.3)
        retriever.retrieve("When was the library founded?", k=6)
    """
    if mode not in _RETRIEVAL_MODES:
        raise ValueError(f"mode must be one of {', '.join(_RETRIEVAL_MODES)}; got {mode!r}")
    retriever: Retriever
    if mode == "dense":
        retriever = DenseRetriever(reader, embedder, score_floor=score_floor)
    elif mode == "bm25":
        retriever = Bm25Retriever(reader)
    else:
        retriever = HybridRetriever(
            DenseRetriever(reader, embedder, score_floor=score_floor), Bm25Retriever(reader)
        )
    if rerank_model:
        retriever = CrossEncoderReranker(retriever, rerank_model, device=rerank_device)
    return retriever
