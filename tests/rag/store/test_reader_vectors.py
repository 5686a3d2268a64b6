"""KnowledgeBaseReader.vectors: the committed vectors, read without the ORM outside."""

from __future__ import annotations

import numpy as np

from rag.records import ChunkDraft, DocumentToIndex
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.reader import KnowledgeBaseReader
from rag.text.tokens import bm25_tokens
from tests.fakes import HashEmbedder


def test_vectors_are_the_committed_ones(kbs: KnowledgeBases) -> None:
    embedder = HashEmbedder(dimension=16)
    kbs.create("vectors", embedding_model=embedder.model_name, embedding_dim=16)
    texts = ["The signing key is rotated.", "Backups are kept for 35 days."]
    vectors = embedder.embed_documents(texts)
    document = DocumentToIndex(
        source="/notes.txt",
        sha256="a" * 64,
        mime="text/plain",
        size_bytes=60,
        chunks=tuple(
            ChunkDraft(i, text, None, None, 0, len(text), len(text.split()))
            for i, text in enumerate(texts)
        ),
        vectors=vectors,
        bm25_tokens=tuple(tuple(bm25_tokens(text)) for text in texts),
    )
    with kbs.writer("vectors") as writer:
        writer.commit(indexed=[document], failed=[])
    reader = KnowledgeBaseReader(kbs, "vectors")
    _scores, ids = reader.snapshot().faiss.search(vectors[:1], 2)
    chunk_ids = sorted(int(i) for i in ids[0])
    stored = reader.vectors([*chunk_ids, 10**9])  # an unknown id is left out
    assert sorted(stored) == chunk_ids
    by_text = reader.chunks(chunk_ids)
    for chunk_id, vector in stored.items():
        assert vector.dtype == np.float32
        expected = vectors[texts.index(by_text[chunk_id].text)]
        np.testing.assert_array_equal(vector, expected)
    assert reader.vectors([]) == {}
