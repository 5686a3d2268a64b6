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

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, get_args

import numpy as np
import numpy.typing as npt
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.messages import BaseMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from pydantic import ConfigDict, Field
from sqlalchemy import select

from rag.config import RetrievalMode
from rag.embed.protocol import Embedder
from rag.errors import KnowledgeBaseExistsError
from rag.records import (
    Answer,
    ChatMessage,
    ChunkDraft,
    DocumentToIndex,
    RetrievedChunk,
    StoredChunk,
)
from rag.retrieve.protocol import RetrievalFilter, Retriever
from rag.store.knowledge_bases import KnowledgeBases, validate_kb_name
from rag.store.reader import KnowledgeBaseReader
from rag.store.schema import ChunkRow
from rag.text.tokens import bm25_tokens

logger = logging.getLogger(__name__)

#: Catalog sources of documents written through the vector store: ``langchain://<id>``.
LANGCHAIN_SOURCE_PREFIX = "langchain://"

#: Ids per SQL ``IN (...)``: SQLite builds before 3.32 allow 999 bound parameters.
_SQL_BATCH = 900

_RETRIEVAL_MODES: tuple[str, ...] = get_args(RetrievalMode)


def langchain_source(doc_id: str) -> str:
    """The catalog source of the LangChain document with id ``doc_id``."""
    return f"{LANGCHAIN_SOURCE_PREFIX}{doc_id}"


def langchain_id(source: str) -> str | None:
    """The LangChain id of a catalog source, or None for sources not written by LangChain."""
    if source.startswith(LANGCHAIN_SOURCE_PREFIX):
        return source[len(LANGCHAIN_SOURCE_PREFIX) :]
    return None


def _reject_unknown(kwargs: Mapping[str, Any], where: str) -> None:
    # LangChain's base signatures end in **kwargs; we keep them for compatibility but a
    # typo (``filters=`` for ``filter=``) must fail instead of being silently ignored.
    if kwargs:
        raise TypeError(f"{where} got unexpected keyword arguments: {sorted(kwargs)}")


def _unit_rows(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Scale rows to length 1 (inner product = cosine); all-zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    return (matrix / norms).astype(np.float32, copy=False)


# -- embeddings ------------------------------------------------------------------------------


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
        return _unit_rows(matrix)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one query; returns a ``(dimension,)`` unit vector."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        vector = np.asarray(self.embeddings.embed_query(text), dtype=np.float32).reshape(1, -1)
        self._check(vector)
        return _unit_rows(vector)[0]

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


# -- vector store ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    chunk_id: int
    document: Document
    score: float


class KnowledgeBaseVectorStore(VectorStore):
    """A knowledge base as a LangChain ``VectorStore``.

    Each added ``Document`` becomes one catalog document with source
    ``langchain://<id>`` and a single chunk (its ``page_content``); its metadata is
    stored as that chunk's JSON metadata, so it must be JSON-serialisable (tuples come
    back as lists, non-string keys as strings). Ids are the caller's (from ``ids=`` or
    ``Document.id``) or new uuid4 strings; adding an existing id replaces that document.

    Scores are cosine similarities (vectors are L2-normalised); relevance scores map
    them to ``[0, 1]`` as ``(cosine + 1) / 2``. ``filter`` (a dict) keeps documents
    whose metadata has every given key with an equal value.

    Chunks ingested by ``rag ingest`` into the same base are searchable too: their
    documents have no ``id`` and carry ``source``, ``page``, ``heading`` and
    ``chunk_id`` in their metadata.

    The base is created on the first write if it does not exist, recording the
    embeddings as ``langchain:<EmbeddingsClassName>`` with their dimension. Writes take
    the base's writer lock; each call is one atomic commit.

    Args:
        kbs: the knowledge bases (catalog and index locations).
        name: the knowledge base to read and write.
        embedding: the LangChain embeddings; must be the model the base was built with.

    Example::

        store = KnowledgeBaseVectorStore.from_texts(
            ["FAISS keeps the vectors", "BM25 keeps the words"],
            embedding=embeddings, metadatas=[{"topic": "dense"}, {"topic": "sparse"}],
            ids=["v", "w"], kbs=kbs, name="notes",
        )
        store.similarity_search_with_score("vectors", k=1, filter={"topic": "dense"})
        store.delete(["w"])
        assert kbs.check("notes").ok
    """

    def __init__(self, kbs: KnowledgeBases, name: str, embedding: Embeddings) -> None:
        if not isinstance(kbs, KnowledgeBases):
            raise TypeError(f"kbs must be KnowledgeBases, got {type(kbs).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        validate_kb_name(name)
        self.kbs = kbs
        self.name = name
        self.embedder = LangChainEmbedder(embedding)
        self._reader: KnowledgeBaseReader | None = None
        self._reader_lock = threading.Lock()

    @property
    def embeddings(self) -> Embeddings:
        """The LangChain embeddings this store embeds with."""
        return self.embedder.embeddings

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        kbs: KnowledgeBases | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> KnowledgeBaseVectorStore:
        """Open (creating if missing) the knowledge base ``name`` and add ``texts``.

        Args:
            texts, embedding, metadatas, ids: as for :meth:`add_texts`.
            kbs: the knowledge bases (required).
            name: the knowledge base (required).

        Raises:
            ValueError: ``kbs`` or ``name`` is missing.
            TypeError: an unknown keyword argument was given.
        """
        _reject_unknown(kwargs, "KnowledgeBaseVectorStore.from_texts")
        if kbs is None or name is None:
            raise ValueError("from_texts needs kbs=KnowledgeBases(...) and name='<kb name>'")
        store = cls(kbs, name, embedding)
        if texts:
            store.add_texts(texts, metadatas, ids=ids)
        else:
            store._ensure_kb(store.embedder.dimension)
        return store

    # -- writes ------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and add texts as documents in one commit; returns their ids.

        Args:
            texts: the documents' contents.
            metadatas: one JSON-serialisable dict per text, or None.
            ids: one id per text (None entries get a uuid4), or None for all new ids.
                An id that exists already is replaced.

        Raises:
            ValueError: lengths differ, an id is repeated or empty.
            TypeError: a metadata dict is not JSON-serialisable, or an unknown keyword
                argument was given.
        """
        _reject_unknown(kwargs, "KnowledgeBaseVectorStore.add_texts")
        contents = list(texts)
        for i, text in enumerate(contents):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a string, got {type(text).__name__}")
        if metadatas is not None and len(metadatas) != len(contents):
            raise ValueError(f"got {len(metadatas)} metadatas for {len(contents)} texts")
        if ids is not None and len(ids) != len(contents):
            raise ValueError(f"got {len(ids)} ids for {len(contents)} texts")
        doc_ids = [
            str(uuid.uuid4()) if ids is None or ids[i] is None else ids[i]
            for i in range(len(contents))
        ]
        for i, doc_id in enumerate(doc_ids):
            if not isinstance(doc_id, str) or not doc_id:
                raise ValueError(f"ids[{i}] must be a non-empty string, got {doc_id!r}")
        if len(set(doc_ids)) != len(doc_ids):
            repeated = sorted(d for d, n in Counter(doc_ids).items() if n > 1)
            raise ValueError(f"ids must be unique within one call; repeated: {repeated}")
        if not contents:
            return []
        metas = [dict(m) if m else {} for m in (metadatas or [{}] * len(contents))]
        encoded = [_metadata_json(meta, i) for i, meta in enumerate(metas)]
        # Embed before taking the writer lock: embedding is the slow part and needs no lock.
        vectors = self.embedder.embed_documents(contents)
        documents = [
            _document_to_index(doc_id, text, meta, meta_json, vector)
            for doc_id, text, meta, meta_json, vector in zip(
                doc_ids, contents, metas, encoded, vectors, strict=True
            )
        ]
        self._ensure_kb(int(vectors.shape[1]))
        with self.kbs.writer(self.name) as writer:
            writer.commit(indexed=documents, failed=[], removed_sources=[])
        return doc_ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id in one commit; ids that do not exist are ignored.

        Returns:
            True (also when nothing matched).

        Raises:
            ValueError: ``ids`` is None (deleting everything is
                :meth:`KnowledgeBases.delete`'s job, not an accident of a missing argument).
            TypeError: an unknown keyword argument was given.
        """
        _reject_unknown(kwargs, "KnowledgeBaseVectorStore.delete")
        if ids is None:
            raise ValueError(
                "ids must be a list of document ids; to remove the whole knowledge base "
                f"use KnowledgeBases.delete({self.name!r})"
            )
        if not ids or not self.kbs.exists(self.name):
            return True
        sources = list(dict.fromkeys(langchain_source(str(i)) for i in ids))
        with self.kbs.writer(self.name) as writer:
            known = writer.known_documents()
            present = [s for s in sources if s in known]
            # A commit writes a new index generation; skip it when nothing would change.
            if present:
                writer.commit(indexed=[], failed=[], removed_sources=present)
        return True

    # -- reads -------------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the order asked; missing ids are left out."""
        reader = self._open_reader()
        if reader is None or not ids:
            return []
        wanted = list(dict.fromkeys(str(i) for i in ids))
        chunk_ids: set[int] = set()
        for start in range(0, len(wanted), _SQL_BATCH):
            batch = wanted[start : start + _SQL_BATCH]
            chunk_ids |= reader.chunk_ids_where(sources=[langchain_source(i) for i in batch])
        by_id: dict[str, Document] = {}
        for chunk in self._chunks(reader, sorted(chunk_ids)).values():
            document = _to_document(chunk)
            if document.id is not None:
                by_id[document.id] = document
        return [by_id[i] for i in wanted if i in by_id]

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` documents most similar to ``query`` (no score threshold)."""
        _reject_unknown(kwargs, "KnowledgeBaseVectorStore.similarity_search")
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter)]

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Documents with their cosine similarity to ``query`` (higher is closer).

        Args:
            query: the text to search for.
            k: how many documents at most.
            filter: metadata that every returned document must have (equal values).

        Raises:
            ValueError: ``k`` is not positive.
            TypeError: ``filter`` is not a dict, or an unknown keyword argument was given.
        """
        _reject_unknown(kwargs, "KnowledgeBaseVectorStore.similarity_search_with_score")
        _check_k(k)
        if self._open_reader() is None:
            return []
        vector = self.embedder.embed_query(query)
        return [(h.document, h.score) for h in self._search(vector, k, filter)]

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        *,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` documents most similar to an embedding (normalised here)."""
        _reject_unknown(kwargs, "KnowledgeBaseVectorStore.similarity_search_by_vector")
        _check_k(k)
        vector = _unit_rows(np.asarray(embedding, dtype=np.float32).reshape(1, -1))[0]
        return [h.document for h in self._search(vector, k, filter)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return _cosine_to_relevance

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Documents relevant to ``query`` yet unlike each other (maximal marginal relevance).

        Args:
            query: the text to search for.
            k: how many documents to return.
            fetch_k: how many nearest documents MMR chooses from.
            lambda_mult: 1 ranks by relevance only, 0 by diversity only.
            filter: metadata that every returned document must have.
        """
        _reject_unknown(kwargs, "KnowledgeBaseVectorStore.max_marginal_relevance_search")
        if self._open_reader() is None:
            return []
        vector = self.embedder.embed_query(query)
        return self._mmr(vector, k, fetch_k, lambda_mult, filter)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search` for an embedding instead of a query."""
        _reject_unknown(kwargs, "KnowledgeBaseVectorStore.max_marginal_relevance_search_by_vector")
        vector = _unit_rows(np.asarray(embedding, dtype=np.float32).reshape(1, -1))[0]
        return self._mmr(vector, k, fetch_k, lambda_mult, filter)

    # -- internals ---------------------------------------------------------------------------

    def _ensure_kb(self, dimension: int) -> None:
        """Create the base on first write, recording the embeddings and their dimension."""
        if self.kbs.exists(self.name):
            recorded = self.kbs.get(self.name).embedding_model
            if recorded != self.embedder.model_name:
                # LangChain embeddings carry no reliable model name (a wrapper of the
                # same model has another class name); the commit still refuses vectors
                # of the wrong dimension, which is the mismatch that breaks search.
                logger.warning(
                    "knowledge base %r records embedding model %r; writing with %r",
                    self.name,
                    recorded,
                    self.embedder.model_name,
                )
            return
        try:
            self.kbs.create(
                self.name, embedding_model=self.embedder.model_name, embedding_dim=dimension
            )
        except KnowledgeBaseExistsError:
            # Another writer created it between our check and create; use theirs.
            logger.debug("knowledge base %r was created concurrently", self.name)

    def _open_reader(self) -> KnowledgeBaseReader | None:
        """The base's reader, or None while the base does not exist (nothing added yet)."""
        if self._reader is None:
            with self._reader_lock:
                if self._reader is None:
                    if not self.kbs.exists(self.name):
                        return None
                    self._reader = KnowledgeBaseReader(self.kbs, self.name)
        return self._reader

    @staticmethod
    def _chunks(reader: KnowledgeBaseReader, ids: Sequence[int]) -> dict[int, StoredChunk]:
        found: dict[int, StoredChunk] = {}
        for start in range(0, len(ids), _SQL_BATCH):
            found.update(reader.chunks(ids[start : start + _SQL_BATCH]))
        return found

    def _search(
        self,
        vector: npt.NDArray[np.float32],
        k: int,
        filter: Mapping[str, Any] | None,
    ) -> list[_Hit]:
        """Nearest chunks by cosine; with a filter, widen the search until k match."""
        if filter is not None and not isinstance(filter, Mapping):
            raise TypeError(
                f"filter must be a dict of metadata values, got {type(filter).__name__}"
            )
        reader = self._open_reader()
        if reader is None:
            return []
        snapshot = reader.snapshot()
        total = len(snapshot.faiss)
        if total == 0:
            return []
        if vector.shape != (snapshot.faiss.dimension,):
            raise ValueError(
                f"query vector has {vector.shape[-1]} dimensions but knowledge base "
                f"{self.name!r} stores {snapshot.faiss.dimension}; use the embeddings "
                "the base was built with"
            )
        fetch = k if not filter else max(4 * k, 32)
        while True:
            fetch = min(fetch, total)
            scores, ids = snapshot.faiss.search(vector.reshape(1, -1), fetch)
            ranked = [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
            chunks = self._chunks(reader, [i for i, _ in ranked])
            # A writer may have removed a chunk since the snapshot: skip what is gone.
            found = [(i, _to_document(chunks[i]), score) for i, score in ranked if i in chunks]
            hits = [
                _Hit(i, doc, score) for i, doc, score in found if _matches(doc.metadata, filter)
            ]
            if len(hits) >= k or fetch >= total:
                return hits[:k]
            fetch *= 4

    def _mmr(
        self,
        vector: npt.NDArray[np.float32],
        k: int,
        fetch_k: int,
        lambda_mult: float,
        filter: Mapping[str, Any] | None,
    ) -> list[Document]:
        _check_k(k)
        _check_k(fetch_k, "fetch_k")
        if not 0.0 <= lambda_mult <= 1.0:
            raise ValueError(f"lambda_mult must be between 0 and 1, got {lambda_mult}")
        hits = self._search(vector, max(k, fetch_k), filter)
        if not hits:
            return []
        stored = self._stored_vectors([h.chunk_id for h in hits])
        candidates = [h for h in hits if h.chunk_id in stored]
        chosen = maximal_marginal_relevance(
            vector,
            [stored[h.chunk_id].tolist() for h in candidates],
            lambda_mult=lambda_mult,
            k=k,
        )
        return [candidates[i].document for i in chosen]

    def _stored_vectors(self, chunk_ids: Sequence[int]) -> dict[int, npt.NDArray[np.float32]]:
        """The indexed vectors of chunks, from the catalog (the indexes' source of truth)."""
        found: dict[int, npt.NDArray[np.float32]] = {}
        with self.kbs.catalog.session() as session:
            for start in range(0, len(chunk_ids), _SQL_BATCH):
                rows = session.execute(
                    select(ChunkRow.id, ChunkRow.embedding).where(
                        ChunkRow.id.in_(list(chunk_ids[start : start + _SQL_BATCH]))
                    )
                ).all()
                for row in rows:
                    found[int(row.id)] = np.frombuffer(row.embedding, dtype="<f4")
        return found


def _check_k(k: int, name: str = "k") -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")


def _cosine_to_relevance(cosine: float) -> float:
    """Map a cosine similarity in [-1, 1] to a relevance score in [0, 1]."""
    return min(1.0, max(0.0, (cosine + 1.0) / 2.0))


def _matches(metadata: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    if not filter:
        return True
    return all(key in metadata and metadata[key] == value for key, value in filter.items())


def _metadata_json(metadata: Mapping[str, Any], index: int) -> str:
    try:
        return json.dumps(metadata, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"metadatas[{index}] must be JSON-serialisable to be stored in the catalog: {exc}"
        ) from exc


def _document_to_index(
    doc_id: str,
    text: str,
    metadata: Mapping[str, Any],
    metadata_json: str,
    vector: npt.NDArray[np.float32],
) -> DocumentToIndex:
    """One LangChain document as a one-chunk catalog document."""
    payload = text.encode("utf-8")
    tokens = tuple(bm25_tokens(text))
    chunk = ChunkDraft(
        ordinal=0,
        text=text,
        page=None,
        heading=None,
        char_start=0,
        char_end=len(text),
        # LangChain embeddings expose no tokenizer; whitespace words are the estimate.
        token_count=len(text.split()),
    )
    return DocumentToIndex(
        source=langchain_source(doc_id),
        # The content hash covers the metadata too: changing only metadata is a change.
        sha256=hashlib.sha256(payload + b"\0" + metadata_json.encode("utf-8")).hexdigest(),
        mime="text/plain",
        size_bytes=len(payload),
        chunks=(chunk,),
        vectors=vector.reshape(1, -1),
        bm25_tokens=(tokens,),
        chunk_metadata=(dict(metadata),),
    )


def _to_document(chunk: StoredChunk) -> Document:
    """A stored chunk as a LangChain document (see :class:`KnowledgeBaseVectorStore`)."""
    doc_id = langchain_id(chunk.source)
    if doc_id is not None:
        return Document(id=doc_id, page_content=chunk.text, metadata=dict(chunk.metadata))
    metadata = {
        **chunk.metadata,
        "source": chunk.source,
        "page": chunk.page,
        "heading": chunk.heading,
        "chunk_id": chunk.chunk_id,
    }
    return Document(page_content=chunk.text, metadata=metadata)


# -- retriever -------------------------------------------------------------------------------


class KnowledgeBaseRetriever(BaseRetriever):
    """One of our retrievers (dense, BM25 or hybrid) as a LangChain retriever.

    Each result is a ``Document`` with the chunk's text and metadata ``source``,
    ``page``, ``heading``, ``chunk_id``, ``score``, ``rank``, ``dense_score``,
    ``sparse_score``, ``char_start`` and ``char_end``; its ``id`` is the LangChain id for
    chunks written by :class:`KnowledgeBaseVectorStore`.

    Args:
        retriever: a :class:`rag.retrieve.protocol.Retriever`, e.g. from ``build_retriever``.
        k: how many chunks to return.
        filters: which documents to search (:class:`rag.retrieve.protocol.RetrievalFilter`).

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
        _check_k(limit)
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


# -- the chain as a runnable -----------------------------------------------------------------

#: What :class:`RagChainRunnable` takes: a question, or {"question": ..., "history": [...]}.
RagChainInput = str | Mapping[str, Any]
#: What it returns: :func:`answer_to_dict` of the chain's ``Answer``.
RagChainOutput = dict[str, Any]


class AnswerChain(Protocol):
    """What :class:`RagChainRunnable` wraps: ``rag.chain.RagChain`` or a test double."""

    def answer(
        self,
        question: str,
        *,
        history: Sequence[ChatMessage] = (),
        k: int | None = None,
        mode: RetrievalMode | None = None,
    ) -> Answer:
        """Answer a question."""
        ...

    def stream(
        self,
        question: str,
        *,
        history: Sequence[ChatMessage] = (),
        k: int | None = None,
        mode: RetrievalMode | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the answer's text pieces, then the final ``Answer``."""
        ...


def answer_to_dict(answer: Answer) -> RagChainOutput:
    """An ``Answer`` as plain JSON types (``dataclasses.asdict``, tuples as lists)."""
    converted = _jsonable(asdict(answer))
    if not isinstance(converted, dict):  # pragma: no cover - asdict returns a dict
        raise TypeError("answer did not convert to a dict")
    return converted


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class _Question:
    text: str
    history: tuple[ChatMessage, ...]


_LANGCHAIN_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


def _history_message(item: Any, index: int) -> ChatMessage:
    if isinstance(item, ChatMessage):
        return item
    if isinstance(item, BaseMessage):
        role = _LANGCHAIN_ROLES.get(item.type)
        if role is None:
            raise ValueError(
                f"history[{index}] is a {item.type!r} message; only human, ai and system "
                "messages can be history"
            )
        return ChatMessage(role=role, content=item.text)
    if isinstance(item, Mapping):
        unknown = set(item) - {"role", "content"}
        if unknown or not isinstance(item.get("content"), str):
            raise ValueError(
                f"history[{index}] must be {{'role': ..., 'content': str}}, got {dict(item)!r}"
            )
        return ChatMessage(role=str(item.get("role")), content=item["content"])
    raise TypeError(
        f"history[{index}] must be a ChatMessage, a LangChain message or a "
        f"{{'role', 'content'}} dict, got {type(item).__name__}"
    )


def _parse_input(value: RagChainInput) -> _Question:
    history_value: Any
    if isinstance(value, str):
        question, history_value = value, ()
    elif isinstance(value, Mapping):
        unknown = set(value) - {"question", "history"}
        if unknown:
            raise ValueError(
                f"input has unknown keys {sorted(unknown)}; use 'question' and 'history'"
            )
        if "question" not in value:
            raise ValueError("input must have a 'question'")
        question = value["question"]
        history_value = value.get("history") or ()
    else:
        raise TypeError(
            f"input must be a question string or a dict with 'question', got {type(value).__name__}"
        )
    if not isinstance(question, str):
        raise TypeError(f"question must be a string, got {type(question).__name__}")
    if not question.strip():
        raise ValueError("question must not be empty")
    if isinstance(history_value, str | bytes) or not isinstance(history_value, Sequence):
        raise TypeError(f"history must be a list of messages, got {type(history_value).__name__}")
    history = tuple(_history_message(m, i) for i, m in enumerate(history_value))
    return _Question(question, history)


class RagChainRunnable(Runnable[RagChainInput, RagChainOutput]):
    """The RAG chain as an LCEL runnable: composes with ``|``, batches, streams.

    Input is a question string or ``{"question": str, "history": [...]}`` where history
    items are :class:`~rag.records.ChatMessage`, LangChain messages or
    ``{"role", "content"}`` dicts. ``invoke`` returns :func:`answer_to_dict` of the
    ``Answer``. ``stream`` yields the answer's text pieces as they are generated, then
    that dict; composed in a sequence, the next step receives the final dict (LCEL adds
    up the text pieces and lets the dict, which cannot be added to them, replace them).

    Args:
        chain: a :class:`rag.chain.RagChain` (or anything with its ``answer``/``stream``).
        k: chunks to retrieve per question; None uses the chain's settings.
        mode: ``dense``, ``bm25`` or ``hybrid``; None uses the chain's settings.

    Example::

        runnable = RagChainRunnable(Platform(settings).chain("handbook"))
        answer = runnable.invoke({"question": "And on GPU?", "history": history})
        text = (runnable | (lambda a: a["answer"])).invoke("How are vectors stored?")
        for item in runnable.stream("How are vectors stored?"):
            print(item if isinstance(item, str) else item["citations"])
    """

    def __init__(
        self, chain: AnswerChain, *, k: int | None = None, mode: RetrievalMode | None = None
    ) -> None:
        if k is not None:
            _check_k(k)
        if mode is not None and mode not in _RETRIEVAL_MODES:
            raise ValueError(f"mode must be one of {list(_RETRIEVAL_MODES)} or None, got {mode!r}")
        self.chain = chain
        self.k = k
        self.mode = mode

    def invoke(
        self, input: RagChainInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> RagChainOutput:
        """Answer one question; returns the ``Answer`` as a dict."""
        _reject_unknown(kwargs, "RagChainRunnable.invoke")
        return self._call_with_config(self._answer, input, config)

    def _answer(self, value: RagChainInput) -> RagChainOutput:
        question = _parse_input(value)
        answer = self.chain.answer(
            question.text, history=question.history, k=self.k, mode=self.mode
        )
        return answer_to_dict(answer)

    # The stream deliberately yields text pieces before the final dict, so its item type
    # is wider than invoke's output; LCEL's accumulation makes downstream steps (and the
    # traced run output) see only the final dict.
    def stream(  # type: ignore[override]
        self, input: RagChainInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[str | RagChainOutput]:
        """Yield the answer's text pieces, then the ``Answer`` as a dict."""
        _reject_unknown(kwargs, "RagChainRunnable.stream")
        yield from self.transform(iter([input]), config)

    def transform(  # type: ignore[override]
        self,
        input: Iterator[RagChainInput],
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Iterator[str | RagChainOutput]:
        """Stream the answer to the question an upstream step produced."""
        _reject_unknown(kwargs, "RagChainRunnable.transform")
        outputs: Iterator[Any] = self._transform_stream_with_config(
            input, self._stream_answer, config
        )
        yield from outputs

    def _stream_answer(self, inputs: Iterator[RagChainInput]) -> Iterator[Any]:
        question = _parse_input(_gather(inputs))
        for item in self.chain.stream(
            question.text, history=question.history, k=self.k, mode=self.mode
        ):
            yield answer_to_dict(item) if isinstance(item, Answer) else item

    async def astream(  # type: ignore[override]
        self, input: RagChainInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[str | RagChainOutput]:
        """:meth:`stream` without blocking the event loop (the chain runs in a thread)."""
        _reject_unknown(kwargs, "RagChainRunnable.astream")
        iterator = self.stream(input, config)
        while True:
            # Each step runs in a worker thread: generation is synchronous and slow. The
            # stream never yields None, so None marks its end.
            item: str | RagChainOutput | None = await run_in_executor(config, next, iterator, None)
            if item is None:
                return
            yield item


def _gather(inputs: Iterator[RagChainInput]) -> RagChainInput:
    """One question from a streamed input: string pieces join, a dict is taken whole."""
    items = list(inputs)
    if not items:
        raise ValueError("RagChainRunnable received no input")
    if all(isinstance(item, str) for item in items):
        return "".join(str(item) for item in items)
    return items[-1]
