"""One of our retrievers as a LangChain ``BaseRetriever``."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field

from rag.langchain_adapters.checks import check_k
from rag.langchain_adapters.sources import langchain_id
from rag.records import RetrievedChunk
from rag.retrieve.protocol import RetrievalFilter, Retriever


class KnowledgeBaseRetriever(BaseRetriever):
    """One of our retrievers (dense, BM25 or hybrid) as a LangChain retriever.

    Each result is a ``Document`` with the chunk's text and metadata ``source``,
    ``page``, ``heading``, ``chunk_id``, ``score``, ``rank``, ``dense_score``,
    ``sparse_score``, ``char_start`` and ``char_end``; its ``id`` is the LangChain id for
    chunks written by :class:`KnowledgeBaseVectorStore`.

    Args:
        retriever: a :class:`rag.retrieve.Retriever`, e.g. from ``build_retriever``.
        k: how many chunks to return.
        filters: which documents to search (:class:`rag.retrieve.RetrievalFilter`).

    ``invoke(query, k=..., filters=...)`` overrides ``k`` and ``filters`` for one call.
    What counts as retrieved is the wrapped retriever's rule (its score floor), so a
    call may return fewer than ``k`` documents, or none.

    Example::

        retriever = KnowledgeBaseRetriever(
            retriever=build_retriever("hybrid", reader, embedder, score_floor=0.25),
            k=4,
            filters=RetrievalFilter(path_glob="*/manuals/*"),
        )
        docs = retriever.invoke("how are vectors stored?")
        docs[0].metadata["source"], docs[0].metadata["score"]
        sources = retriever | (lambda docs: [d.metadata["source"] for d in docs])
        sources.invoke("how are vectors stored?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    k: int = Field(default=4, ge=1)
    filters: RetrievalFilter | None = None

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: RetrievalFilter | None = None,
    ) -> list[Document]:
        return self._retrieve(query, k, filters)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: RetrievalFilter | None = None,
    ) -> list[Document]:
        # Our retrievers are synchronous (FAISS, BM25, SQL); keep the event loop free.
        return await run_in_executor(None, self._retrieve, query, k, filters)

    def _retrieve(
        self, query: str, k: int | None, filters: RetrievalFilter | None
    ) -> list[Document]:
        limit = self.k if k is None else k
        check_k(limit)
        chunks = self.retriever.retrieve(
            query, k=limit, filters=self.filters if filters is None else filters
        )
        return [retrieved_to_document(c) for c in chunks]


def retrieved_to_document(chunk: RetrievedChunk) -> Document:
    """A retrieved chunk as a LangChain ``Document`` with its provenance as metadata."""
    metadata: dict[str, Any] = {
        "source": chunk.source,
        "page": chunk.page,
        "heading": chunk.heading,
        "chunk_id": chunk.chunk_id,
        "score": chunk.score,
        "rank": chunk.rank,
        "dense_score": chunk.dense_score,
        "sparse_score": chunk.sparse_score,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
    }
    return Document(id=langchain_id(chunk.source), page_content=chunk.text, metadata=metadata)
