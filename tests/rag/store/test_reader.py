"""The read side of a knowledge base: new generations without restart, lookups by id."""

from __future__ import annotations

import numpy as np
import pytest

from rag.errors import KnowledgeBaseNotFoundError
from rag.records import ChunkDraft, DocumentToIndex
from rag.store.knowledge_bases import KnowledgeBases, remove_document
from rag.store.reader import KnowledgeBaseReader
from rag.text.tokens import bm25_tokens
from tests.fakes import HashEmbedder

EMBEDDER = HashEmbedder(dimension=16)


def make_doc(source: str, paragraphs: list[str], *, meta: bool = False) -> DocumentToIndex:
    chunks = []
    offset = 0
    for i, para in enumerate(paragraphs):
        chunks.append(ChunkDraft(i, para, i + 1, "Intro", offset, offset + len(para), 3))
        offset += len(para) + 2
    return DocumentToIndex(
        source=source,
        sha256="b" * 64,
        mime="text/plain",
        size_bytes=offset,
        chunks=tuple(chunks),
        vectors=EMBEDDER.embed_documents(paragraphs),
        bm25_tokens=tuple(tuple(bm25_tokens(p)) for p in paragraphs),
        parse_seconds=0.25,
        chunk_metadata=tuple({"lang": "en"} for _ in paragraphs) if meta else None,
    )


@pytest.fixture
def base(kbs: KnowledgeBases) -> KnowledgeBases:
    kbs.create("handbook", embedding_model="fake-hash", embedding_dim=16)
    return kbs


def commit(kbs: KnowledgeBases, *docs: DocumentToIndex) -> None:
    with kbs.writer("handbook") as writer:
        writer.commit(indexed=list(docs), failed=[])


def test_reader_picks_up_a_new_generation_without_restart(base: KnowledgeBases) -> None:
    commit(base, make_doc("/docs/a.txt", ["alpha one", "alpha two"]))
    reader = KnowledgeBaseReader(base, "handbook")
    first = reader.snapshot()
    assert first.generation == 1 and len(first.faiss) == 2 and reader.info.chunks == 2
    assert reader.refresh() is False  # nothing new: the same snapshot stays

    commit(base, make_doc("/docs/b.txt", ["beta one"]))
    assert reader.current_generation() == 2
    second = reader.snapshot()
    assert second.generation == 2 and len(second.faiss) == 3 and len(second.bm25) == 3
    assert reader.info.generation == 2 and reader.info.chunks == 3
    assert reader.sources() == ["/docs/a.txt", "/docs/b.txt"]

    remove_document(base, "handbook", "/docs/a.txt")
    third = reader.snapshot()
    assert third.generation == 3 and len(third.faiss) == 1
    assert reader.sources() == ["/docs/b.txt"]


def test_stored_chunks_and_vectors_by_id(base: KnowledgeBases) -> None:
    commit(base, make_doc("/docs/a.txt", ["alpha one", "alpha two"], meta=True))
    reader = KnowledgeBaseReader(base, "handbook")
    ids = sorted(int(i) for i in reader.snapshot().faiss.ids())
    chunks = reader.chunks([*ids, 10_000])  # an unknown id is left out
    assert sorted(chunks) == ids
    first = chunks[ids[0]]
    assert (first.source, first.ordinal, first.text) == ("/docs/a.txt", 0, "alpha one")
    assert (first.page, first.heading, first.char_start, first.char_end) == (1, "Intro", 0, 9)
    assert first.token_count == 3 and first.metadata == {"lang": "en"}
    assert reader.chunks([]) == {}

    vectors = reader.vectors([*ids, 10_000])
    assert sorted(vectors) == ids
    expected = EMBEDDER.embed_documents(["alpha one", "alpha two"])
    np.testing.assert_array_equal(vectors[ids[0]], expected[0])
    np.testing.assert_array_equal(vectors[ids[1]], expected[1])
    assert vectors[ids[0]].dtype == np.float32
    assert reader.vectors([]) == {}

    assert reader.chunk_ids_where(sources=["/docs/a.txt"]) == set(ids)
    assert reader.chunk_ids_where(sources=["/docs/none.txt"]) == set()


def test_indexed_chunks_in_source_then_ordinal_order(base: KnowledgeBases) -> None:
    commit(base, make_doc("/docs/b.txt", ["beta one", "beta two"]))
    commit(base, make_doc("/docs/a.txt", ["alpha one"]))
    entries = KnowledgeBaseReader(base, "handbook").indexed_chunks()
    assert [(e.chunk.source, e.chunk.ordinal) for e in entries] == [
        ("/docs/a.txt", 0),
        ("/docs/b.txt", 0),
        ("/docs/b.txt", 1),
    ]
    assert entries[1].bm25_tokens == tuple(bm25_tokens("beta one"))
    np.testing.assert_array_equal(entries[0].vector, EMBEDDER.embed_documents(["alpha one"])[0])


def test_missing_base_raises_not_found(kbs: KnowledgeBases) -> None:
    reader = KnowledgeBaseReader(kbs, "nowhere")
    with pytest.raises(KnowledgeBaseNotFoundError):
        reader.snapshot()
    with pytest.raises(KnowledgeBaseNotFoundError):
        reader.current_generation()
    with pytest.raises(KnowledgeBaseNotFoundError):
        _ = reader.info
    with pytest.raises(KnowledgeBaseNotFoundError):
        reader.chunk_ids_where(sources=["/x"])
    with pytest.raises(KnowledgeBaseNotFoundError):
        reader.indexed_chunks()


def test_reader_of_a_deleted_base_raises_not_found(base: KnowledgeBases) -> None:
    commit(base, make_doc("/docs/a.txt", ["alpha one"]))
    reader = KnowledgeBaseReader(base, "handbook")
    reader.snapshot()
    base.delete("handbook")
    with pytest.raises(KnowledgeBaseNotFoundError):
        reader.snapshot()
