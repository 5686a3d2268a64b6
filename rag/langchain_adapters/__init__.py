"""LangChain adapters: a knowledge base as a ``VectorStore``, a retriever, and the chain.

Three ways into the platform for LangChain code, each keeping our own contracts:

:class:`KnowledgeBaseVectorStore`
    A knowledge base behind LangChain's ``VectorStore`` interface. Each LangChain
    ``Document`` is one catalog document (source ``langchain://<id>``) holding one chunk,
    with the document's metadata stored as the chunk's metadata. Every write is one
    :meth:`KnowledgeBaseWriter.commit`, so the catalog, FAISS and BM25 stay consistent
    (``kbs.check(name).ok``) and ``rag`` tools see the same data.
:class:`KnowledgeBaseRetriever`
    One of our retrievers (dense, BM25 or hybrid) as a LangChain ``BaseRetriever``.
:class:`RagChainRunnable`
    The whole RAG chain as an LCEL ``Runnable``: a question in, the ``Answer`` as a
    JSON-friendly dict out; ``stream`` yields the answer's text pieces, then that dict.

:class:`LangChainEmbedder` turns any LangChain ``Embeddings`` into our
:class:`~rag.embed.Embedder` (L2-normalised float32 rows), for anything that needs one;
:class:`EmbedderEmbeddings` goes the other way, so LangChain code can use our packaged
models (MiniLM, the multilingual e5 with its query/passage prefixes) as ``Embeddings``.

Example::

    store = KnowledgeBaseVectorStore(kbs, "notes", embedding=my_langchain_embeddings)
    store.add_documents([Document(page_content="FAISS keeps vectors", metadata={"n": 1})],
                        ids=["a"])
    store.similarity_search("where are vectors kept?", k=1)   # [Document(id="a", ...)]

    retriever = KnowledgeBaseRetriever(
        retriever=build_retriever("hybrid", reader, embedder, score_floor=0.25), k=4
    )
    pipeline = RagChainRunnable(chain) | (lambda answer: answer["answer"])
    pipeline.invoke("How are vectors stored?")
"""

from rag.langchain_adapters.embeddings import EmbedderEmbeddings, LangChainEmbedder
from rag.langchain_adapters.retriever import KnowledgeBaseRetriever, retrieved_to_document
from rag.langchain_adapters.runnable import (
    AnswerChain,
    RagChainInput,
    RagChainOutput,
    RagChainRunnable,
    answer_to_dict,
)
from rag.langchain_adapters.sources import LANGCHAIN_SOURCE_PREFIX, langchain_id, langchain_source
from rag.langchain_adapters.vectorstore import KnowledgeBaseVectorStore

__all__ = [
    "LANGCHAIN_SOURCE_PREFIX",
    "AnswerChain",
    "EmbedderEmbeddings",
    "KnowledgeBaseRetriever",
    "KnowledgeBaseVectorStore",
    "LangChainEmbedder",
    "RagChainInput",
    "RagChainOutput",
    "RagChainRunnable",
    "answer_to_dict",
    "langchain_id",
    "langchain_source",
    "retrieved_to_document",
]
