"""A knowledge base as a LangChain ``VectorStore``, read through the store's reader."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from rag.embed.protocol import unit_rows
from rag.errors import KnowledgeBaseExistsError
from rag.langchain_adapters.checks import check_k, reject_unknown_kwargs
from rag.langchain_adapters.documents import (
    document_to_index,
    metadata_json,
    metadata_matches,
    stored_to_document,
)
from rag.langchain_adapters.embeddings import LangChainEmbedder
from rag.langchain_adapters.sources import langchain_source
from rag.store.knowledge_bases import KnowledgeBases, validate_kb_name
from rag.store.reader import KnowledgeBaseReader

logger = logging.getLogger(__name__)


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
            texts: the documents' contents.
            embedding: the LangChain embeddings to embed with; a new base records its
                model as the base's embedding choice.
            metadatas: one JSON-serialisable dict per text, or None.
            ids: one id per text, as for :meth:`add_texts`.
            kbs: the knowledge bases (required).
            name: the knowledge base (required).
            **kwargs: accepted only to match LangChain's signature; any key raises.

        Returns:
            The store over ``name``, its texts committed.

        Raises:
            ValueError: ``kbs`` or ``name`` is missing.
            TypeError: an unknown keyword argument was given.
        """
        reject_unknown_kwargs(kwargs, "KnowledgeBaseVectorStore.from_texts")
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
            **kwargs: accepted only to match LangChain's signature; any key raises.

        Raises:
            ValueError: lengths differ, an id is repeated or empty.
            TypeError: a metadata dict is not JSON-serialisable, or an unknown keyword
                argument was given.
        """
        reject_unknown_kwargs(kwargs, "KnowledgeBaseVectorStore.add_texts")
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
        encoded = [metadata_json(meta, i) for i, meta in enumerate(metas)]
        # Embed before taking the writer lock: embedding is the slow part and needs no lock.
        vectors = self.embedder.embed_documents(contents)
        documents = [
            document_to_index(doc_id, text, meta, meta_json, vector)
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
        reject_unknown_kwargs(kwargs, "KnowledgeBaseVectorStore.delete")
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
        chunk_ids = reader.chunk_ids_where(sources=[langchain_source(i) for i in wanted])
        by_id: dict[str, Document] = {}
        for chunk in reader.chunks(sorted(chunk_ids)).values():
            document = stored_to_document(chunk)
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
        reject_unknown_kwargs(kwargs, "KnowledgeBaseVectorStore.similarity_search")
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
            **kwargs: accepted only to match LangChain's signature; any key raises.

        Raises:
            ValueError: ``k`` is not positive.
            TypeError: ``filter`` is not a dict, or an unknown keyword argument was given.
        """
        reject_unknown_kwargs(kwargs, "KnowledgeBaseVectorStore.similarity_search_with_score")
        check_k(k)
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
        reject_unknown_kwargs(kwargs, "KnowledgeBaseVectorStore.similarity_search_by_vector")
        check_k(k)
        vector = unit_rows(np.asarray(embedding, dtype=np.float32).reshape(1, -1))[0]
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
            **kwargs: accepted only to match LangChain's signature; any key raises.

        Raises:
            TypeError: an unknown keyword argument was given.
        """
        reject_unknown_kwargs(kwargs, "KnowledgeBaseVectorStore.max_marginal_relevance_search")
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
        reject_unknown_kwargs(
            kwargs, "KnowledgeBaseVectorStore.max_marginal_relevance_search_by_vector"
        )
        vector = unit_rows(np.asarray(embedding, dtype=np.float32).reshape(1, -1))[0]
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
            chunks = reader.chunks([i for i, _ in ranked])
            # A writer may have removed a chunk since the snapshot: skip what is gone.
            found = [
                (i, stored_to_document(chunks[i]), score) for i, score in ranked if i in chunks
            ]
            hits = [
                _Hit(i, doc, score)
                for i, doc, score in found
                if metadata_matches(doc.metadata, filter)
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
        check_k(k)
        check_k(fetch_k, "fetch_k")
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
        """The indexed vectors of chunks, through the store's reader."""
        reader = self._open_reader()
        return {} if reader is None else reader.vectors(chunk_ids)


def _cosine_to_relevance(cosine: float) -> float:
    """Map a cosine similarity in [-1, 1] to a relevance score in [0, 1]."""
    return min(1.0, max(0.0, (cosine + 1.0) / 2.0))
