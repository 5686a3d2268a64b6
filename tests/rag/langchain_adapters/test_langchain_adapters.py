"""LangChain adapters: the standard LangChain suites, plus our own contracts on top.

The standard suites (``langchain-tests``) hold the vector store and the retriever to
LangChain's published behaviour; the tests after them check what is ours: every write
leaves the knowledge base consistent, metadata and ids survive the catalog, and the
chain composes in LCEL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from rag.config import DEFAULT_EMBEDDING_MODEL, RetrievalMode, Settings
from rag.embed import SentenceTransformerEmbedder
from rag.errors import ConfigError
from rag.langchain_adapters import (
    KnowledgeBaseRetriever,
    KnowledgeBaseVectorStore,
    LangChainEmbedder,
    RagChainRunnable,
    answer_to_dict,
    retrieved_to_document,
)
from rag.records import Answer, ChatMessage, ChunkDraft, Citation, DocumentToIndex, RetrievedChunk
from rag.retrieve import RetrievalFilter, build_retriever
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.reader import KnowledgeBaseReader
from rag.text.tokens import bm25_tokens

KB = "lc"


def assert_consistent(kbs: KnowledgeBases, name: str = KB) -> None:
    """Catalog, FAISS and BM25 agree (the store's writes all went through commits)."""
    if kbs.exists(name):
        report = kbs.check(name)
        assert report.ok, report.problems


# -- the standard LangChain suites ----------------------------------------------------------


class TestKnowledgeBaseVectorStoreStandard(VectorStoreIntegrationTests):
    """LangChain's full VectorStore suite, sync and async, on a fresh knowledge base."""

    @pytest.fixture
    def vectorstore(self, kbs: KnowledgeBases) -> Iterator[KnowledgeBaseVectorStore]:
        store = KnowledgeBaseVectorStore(kbs, KB, self.get_embeddings())
        yield store
        # Whatever the test did through LangChain, the base must still check clean.
        assert_consistent(kbs)


RETRIEVAL_TEXTS = [
    "Retrieval augmented generation grounds answers in retrieved documents.",
    "FAISS stores dense vectors for retrieval by cosine similarity.",
    "BM25 ranks documents for retrieval by matching words.",
    "Hybrid retrieval fuses dense and sparse rankings with reciprocal rank fusion.",
    "A cross-encoder reranks retrieved documents for better precision.",
    "Citations map answer sentences back to the retrieved chunks.",
]


class TestKnowledgeBaseRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's retriever suite over a small filled knowledge base, in every mode."""

    @pytest.fixture(autouse=True, params=["dense", "bm25", "hybrid"])
    def _filled_kb(self, request: pytest.FixtureRequest, kbs: KnowledgeBases) -> None:
        embeddings = DeterministicFakeEmbedding(size=8)
        KnowledgeBaseVectorStore.from_texts(RETRIEVAL_TEXTS, embeddings, kbs=kbs, name=KB)
        # The fake embeddings are random directions, so no cosine floor is meaningful;
        # every text shares the stem "retriev" with the query, so BM25 finds them all.
        self._inner = build_retriever(
            request.param,
            KnowledgeBaseReader(kbs, KB),
            LangChainEmbedder(embeddings),
            score_floor=None,
        )

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return KnowledgeBaseRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": self._inner, "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "how does retrieval work?"


# -- the vector store: our own contracts ----------------------------------------------------


@pytest.fixture
def embeddings() -> Embeddings:
    return DeterministicFakeEmbedding(size=6)


@pytest.fixture
def store(kbs: KnowledgeBases, embeddings: Embeddings) -> KnowledgeBaseVectorStore:
    return KnowledgeBaseVectorStore(kbs, KB, embeddings)


def test_from_texts_creates_the_base_recording_the_embeddings(
    kbs: KnowledgeBases, embeddings: Embeddings
) -> None:
    store = KnowledgeBaseVectorStore.from_texts(
        ["alpha", "beta"], embeddings, [{"n": 1}, {"n": 2}], ids=["a", "b"], kbs=kbs, name=KB
    )
    info = kbs.get(KB)
    assert info.embedding_model == "langchain:DeterministicFakeEmbedding"
    assert info.embedding_dim == 6
    assert [d.source for d in kbs.documents(KB)] == ["langchain://a", "langchain://b"]
    assert store.get_by_ids(["b", "a"]) == [
        Document(id="b", page_content="beta", metadata={"n": 2}),
        Document(id="a", page_content="alpha", metadata={"n": 1}),
    ]
    assert_consistent(kbs)


def test_from_texts_without_texts_creates_an_empty_base(
    kbs: KnowledgeBases, embeddings: Embeddings
) -> None:
    store = KnowledgeBaseVectorStore.from_texts([], embeddings, kbs=kbs, name=KB)
    assert kbs.get(KB).embedding_dim == 6
    assert store.similarity_search("anything") == []


def test_from_texts_needs_kbs_and_name(embeddings: Embeddings) -> None:
    with pytest.raises(ValueError, match="kbs"):
        KnowledgeBaseVectorStore.from_texts(["x"], embeddings)


def test_overwrite_and_delete_keep_the_base_consistent(
    kbs: KnowledgeBases, store: KnowledgeBaseVectorStore
) -> None:
    store.add_texts(["one", "two", "three"], ids=["1", "2", "3"])
    store.add_texts(["one again"], [{"v": 2}], ids=["1"])
    assert_consistent(kbs)
    assert kbs.get(KB).chunks == 3
    assert store.get_by_ids(["1"]) == [
        Document(id="1", page_content="one again", metadata={"v": 2})
    ]
    assert store.delete(["2", "missing"]) is True
    assert_consistent(kbs)
    assert sorted(d.id or "" for d in store.get_by_ids(["1", "2", "3"])) == ["1", "3"]
    generation = kbs.get(KB).generation
    store.delete(["missing"])
    assert kbs.get(KB).generation == generation  # nothing to delete: no new generation


def test_delete_before_anything_was_added_does_nothing(
    kbs: KnowledgeBases, store: KnowledgeBaseVectorStore
) -> None:
    assert store.delete(["x"]) is True
    assert not kbs.exists(KB)


def test_delete_without_ids_refuses(store: KnowledgeBaseVectorStore) -> None:
    with pytest.raises(ValueError, match="ids"):
        store.delete()


def test_scores_are_cosines_and_relevance_maps_them_to_0_1(
    store: KnowledgeBaseVectorStore,
) -> None:
    store.add_texts(["apple", "banana", "cherry", "damson"])
    scored = store.similarity_search_with_score("banana", k=4)
    assert scored[0][0].page_content == "banana"
    assert scored[0][1] == pytest.approx(1.0, abs=1e-5)
    cosines = [score for _, score in scored]
    assert cosines == sorted(cosines, reverse=True)
    assert all(-1.0 - 1e-6 <= c <= 1.0 + 1e-6 for c in cosines)
    relevance = store.similarity_search_with_relevance_scores("banana", k=4)
    assert [r for _, r in relevance] == pytest.approx([(c + 1) / 2 for c in cosines])
    assert all(0.0 <= r <= 1.0 for _, r in relevance)


def test_search_by_vector_matches_search_by_text(
    store: KnowledgeBaseVectorStore, embeddings: Embeddings
) -> None:
    store.add_texts(["apple", "banana", "cherry"])
    vector = embeddings.embed_query("cherry")
    assert store.similarity_search_by_vector(vector, k=3) == store.similarity_search("cherry", k=3)


def test_filter_keeps_documents_with_equal_metadata(store: KnowledgeBaseVectorStore) -> None:
    texts = [f"text {i}" for i in range(60)]
    metadatas = [{"parity": "even" if i % 2 == 0 else "odd", "i": i} for i in range(60)]
    store.add_texts(texts, metadatas)
    # More matches are wanted than the first fetch returns, so the search must widen.
    odd = store.similarity_search("text 3", k=30, filter={"parity": "odd"})
    assert len(odd) == 30
    assert all(doc.metadata["parity"] == "odd" for doc in odd)
    exact = store.similarity_search("text 3", k=5, filter={"parity": "odd", "i": 7})
    assert [doc.page_content for doc in exact] == ["text 7"]
    assert store.similarity_search("text 3", k=5, filter={"missing": 1}) == []
    retriever = store.as_retriever(search_kwargs={"k": 2, "filter": {"parity": "even"}})
    assert [doc.metadata["parity"] for doc in retriever.invoke("text 4")] == ["even", "even"]


def test_max_marginal_relevance(store: KnowledgeBaseVectorStore) -> None:
    store.add_texts(["apple", "apple", "banana", "cherry"], ids=["a1", "a2", "b", "c"])
    relevance_only = store.max_marginal_relevance_search("apple", k=2, fetch_k=4, lambda_mult=1.0)
    assert [d.page_content for d in relevance_only] == ["apple", "apple"]
    diverse = store.max_marginal_relevance_search("apple", k=2, fetch_k=4, lambda_mult=0.0)
    assert len({d.page_content for d in diverse}) == 2
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 4})
    assert len(mmr.invoke("apple")) == 3


def test_metadata_round_trips_through_json(store: KnowledgeBaseVectorStore) -> None:
    metadata = {"title": "检索", "tags": ["a", "b"], "nested": {"x": 1.5}, "none": None}
    store.add_documents([Document(page_content="text", metadata=metadata, id="m")])
    assert store.get_by_ids(["m"])[0].metadata == metadata


def test_bad_input_is_rejected(store: KnowledgeBaseVectorStore) -> None:
    with pytest.raises(TypeError, match="JSON"):
        store.add_texts(["x"], [{"bad": object()}])
    with pytest.raises(ValueError, match="unique"):
        store.add_texts(["x", "y"], ids=["same", "same"])
    with pytest.raises(ValueError, match="ids"):
        store.add_texts(["x", "y"], ids=["only one"])
    with pytest.raises(TypeError, match="unexpected keyword"):
        store.similarity_search("x", filters={"a": 1})
    with pytest.raises(TypeError, match="unexpected keyword"):
        store.add_texts(["x"], batch_size=3)
    store.add_texts(["x"])
    with pytest.raises(ValueError, match="k must be"):
        store.similarity_search("x", k=0)


def test_embeddings_of_another_dimension_fail_loudly(
    kbs: KnowledgeBases, store: KnowledgeBaseVectorStore
) -> None:
    store.add_texts(["six dimensions"])
    other = KnowledgeBaseVectorStore(kbs, KB, DeterministicFakeEmbedding(size=8))
    with pytest.raises(ConfigError, match="dimension"):
        other.add_texts(["eight dimensions"])
    with pytest.raises(ValueError, match="dimensions"):
        other.similarity_search("eight dimensions")
    assert_consistent(kbs)


def test_ingested_chunks_are_searchable_with_their_provenance(
    kbs: KnowledgeBases, store: KnowledgeBaseVectorStore
) -> None:
    store.add_texts(["from langchain"], ids=["lc-1"])
    text = "a chunk ingested from a PDF"
    vector = store.embedder.embed_documents([text])
    ingested = DocumentToIndex(
        source="/docs/manual.pdf",
        sha256="b" * 64,
        mime="application/pdf",
        size_bytes=100,
        chunks=(ChunkDraft(0, text, 3, "Setup", 0, len(text), 6),),
        vectors=vector,
        bm25_tokens=(tuple(bm25_tokens(text)),),
    )
    with kbs.writer(KB) as writer:
        writer.commit(indexed=[ingested], failed=[])
    found = store.similarity_search(text, k=1)[0]
    assert found.id is None
    assert found.page_content == text
    assert found.metadata["source"] == "/docs/manual.pdf"
    assert (found.metadata["page"], found.metadata["heading"]) == (3, "Setup")
    assert isinstance(found.metadata["chunk_id"], int)
    # Deleting by LangChain id cannot touch documents that have none.
    store.delete(["lc-1"])
    assert [d.source for d in kbs.documents(KB)] == ["/docs/manual.pdf"]
    assert_consistent(kbs)


def test_langchain_embedder_normalises_and_checks() -> None:
    embedder = LangChainEmbedder(DeterministicFakeEmbedding(size=5))
    assert embedder.model_name == "langchain:DeterministicFakeEmbedding"
    assert embedder.dimension == 5
    matrix = embedder.embed_documents(["a", "b", "c"])
    assert matrix.shape == (3, 5) and matrix.dtype == np.float32
    assert np.linalg.norm(matrix, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    assert np.linalg.norm(embedder.embed_query("a")) == pytest.approx(1.0, abs=1e-6)
    assert embedder.embed_documents([]).shape == (0, 5)
    with pytest.raises(TypeError):
        embedder.embed_documents("not a list")
    with pytest.raises(TypeError):
        LangChainEmbedder(object())  # type: ignore[arg-type]


# -- the retriever --------------------------------------------------------------------------


def _retrieved(n: int, source: str = "/docs/a.md") -> RetrievedChunk:
    return RetrievedChunk(
        chunk_id=10 + n,
        source=source,
        text=f"chunk {n}",
        page=n,
        heading="H",
        char_start=0,
        char_end=7,
        score=1.0 / n,
        rank=n,
        dense_score=0.5,
        sparse_score=None,
    )


class _ScriptedRetriever:
    """Returns ``k`` scripted chunks and records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, RetrievalFilter | None]] = []

    def retrieve(
        self, query: str, *, k: int, filters: RetrievalFilter | None = None
    ) -> list[RetrievedChunk]:
        self.calls.append((query, k, filters))
        return [_retrieved(n) for n in range(1, k + 1)]


def test_retriever_documents_carry_provenance() -> None:
    inner = _ScriptedRetriever()
    docs = KnowledgeBaseRetriever(retriever=inner, k=2).invoke("q")
    assert inner.calls == [("q", 2, None)]
    assert docs[0] == Document(
        page_content="chunk 1",
        metadata={
            "source": "/docs/a.md",
            "page": 1,
            "heading": "H",
            "chunk_id": 11,
            "score": 1.0,
            "rank": 1,
            "dense_score": 0.5,
            "sparse_score": None,
            "char_start": 0,
            "char_end": 7,
        },
    )
    assert retrieved_to_document(_retrieved(1, source="langchain://abc")).id == "abc"


async def test_retriever_k_per_call_sync_and_async() -> None:
    inner = _ScriptedRetriever()
    retriever = KnowledgeBaseRetriever(retriever=inner)
    assert len(retriever.invoke("q", k=3)) == 3
    assert len(await retriever.ainvoke("q", k=1)) == 1
    assert [k for _, k, _ in inner.calls] == [3, 1]
    with pytest.raises(TypeError):
        retriever.invoke("q", top_k=2)
    with pytest.raises(ValueError, match="k must be"):
        retriever.invoke("q", k=0)


def test_retriever_passes_filters_and_per_call_overrides() -> None:
    inner = _ScriptedRetriever()
    manuals = RetrievalFilter(path_glob="*/manuals/*")
    handbook = RetrievalFilter(sources=("/docs/handbook.md",))
    retriever = KnowledgeBaseRetriever(retriever=inner, k=1, filters=manuals)
    retriever.invoke("q")
    retriever.invoke("q", filters=handbook)
    assert [f for _, _, f in inner.calls] == [manuals, handbook]


def test_retriever_filters_a_real_knowledge_base(kbs: KnowledgeBases) -> None:
    embeddings = DeterministicFakeEmbedding(size=8)
    KnowledgeBaseVectorStore.from_texts(
        RETRIEVAL_TEXTS, embeddings, ids=[f"t{i}" for i in range(6)], kbs=kbs, name=KB
    )
    inner = build_retriever(
        "hybrid", KnowledgeBaseReader(kbs, KB), LangChainEmbedder(embeddings), score_floor=None
    )
    only = RetrievalFilter(sources=("langchain://t2", "langchain://t4"))
    docs = KnowledgeBaseRetriever(retriever=inner, k=4, filters=only).invoke("retrieval")
    assert sorted(d.id or "" for d in docs) == ["t2", "t4"]
    assert [d.metadata["rank"] for d in docs] == [1, 2]
    assert all(d.metadata["source"] == f"langchain://{d.id}" for d in docs)


def test_retriever_rejects_non_retrievers() -> None:
    with pytest.raises(ValueError):
        KnowledgeBaseRetriever(retriever=object())  # type: ignore[arg-type]


# -- the chain as a runnable ----------------------------------------------------------------


class _ScriptedChain:
    """A chain that answers by echoing the question, in two streamed pieces."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def _answer(self, question: str) -> Answer:
        citation = Citation(
            n=1, chunk_id=7, source="/docs/a.md", page=2, heading=None, text="t", score=0.9
        )
        return Answer(
            question=question,
            answer=f"Answer to {question} [1]",
            refused=False,
            supported=True,
            citations=(citation,),
            retrieved=(_retrieved(1),),
            timings={"total": 0.01},
            generator={"backend": "scripted"},
        )

    def answer(
        self,
        question: str,
        *,
        history: Sequence[ChatMessage] = (),
        k: int | None = None,
        mode: RetrievalMode | None = None,
    ) -> Answer:
        self.calls.append({"question": question, "history": tuple(history), "k": k, "mode": mode})
        return self._answer(question)

    def stream(
        self,
        question: str,
        *,
        history: Sequence[ChatMessage] = (),
        k: int | None = None,
        mode: RetrievalMode | None = None,
    ) -> Iterator[str | Answer]:
        self.calls.append({"question": question, "history": tuple(history), "k": k, "mode": mode})
        final = self._answer(question)
        yield "Answer to "
        yield f"{question} [1]"
        yield final


def test_runnable_invoke_returns_the_answer_as_json_friendly_dict() -> None:
    chain = _ScriptedChain()
    result = RagChainRunnable(chain, k=3, mode="bm25").invoke("What is RAG?")
    assert result["answer"] == "Answer to What is RAG? [1]"
    assert result["citations"][0]["chunk_id"] == 7
    assert isinstance(result["citations"], list)
    assert json.loads(json.dumps(result)) == result
    assert chain.calls[0]["k"] == 3 and chain.calls[0]["mode"] == "bm25"


def test_runnable_accepts_history_in_several_forms() -> None:
    chain = _ScriptedChain()
    RagChainRunnable(chain).invoke(
        {
            "question": "And then?",
            "history": [
                HumanMessage(content="What is RAG?"),
                AIMessage(content="Retrieval first."),
                {"role": "user", "content": "ok"},
                ChatMessage(role="assistant", content="fine"),
            ],
        }
    )
    assert chain.calls[0]["history"] == (
        ChatMessage("user", "What is RAG?"),
        ChatMessage("assistant", "Retrieval first."),
        ChatMessage("user", "ok"),
        ChatMessage("assistant", "fine"),
    )


def test_runnable_rejects_bad_input() -> None:
    runnable = RagChainRunnable(_ScriptedChain())
    with pytest.raises(ValueError, match="unknown keys"):
        runnable.invoke({"question": "q", "histroy": []})
    with pytest.raises(ValueError, match="empty"):
        runnable.invoke("  ")
    with pytest.raises(TypeError):
        runnable.invoke(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        RagChainRunnable(_ScriptedChain(), mode="sparse")  # type: ignore[arg-type]


def test_runnable_streams_text_pieces_then_the_dict() -> None:
    items = list(RagChainRunnable(_ScriptedChain()).stream("Why?"))
    assert items[:2] == ["Answer to ", "Why? [1]"]
    assert isinstance(items[2], dict) and items[2]["answer"] == "Answer to Why? [1]"
    assert len(items) == 3


async def test_runnable_streams_asynchronously() -> None:
    items = [item async for item in RagChainRunnable(_ScriptedChain()).astream("Why?")]
    assert items[:2] == ["Answer to ", "Why? [1]"]
    assert isinstance(items[2], dict)
    result = await RagChainRunnable(_ScriptedChain()).ainvoke("Why?")
    assert result["question"] == "Why?"


def test_runnable_composes_in_lcel() -> None:
    chain = _ScriptedChain()

    def ask(topic: str) -> str:
        return f"What is {topic}?"

    def summarize(answer: dict[str, Any]) -> tuple[str, int]:
        return answer["answer"], len(answer["citations"])

    pipeline: Runnable[str, tuple[str, int]] = (
        RunnableLambda(ask) | RagChainRunnable(chain) | RunnableLambda(summarize)
    )
    assert pipeline.invoke("RAG") == ("Answer to What is RAG? [1]", 1)
    assert pipeline.batch(["A", "B"]) == [
        ("Answer to What is A? [1]", 1),
        ("Answer to What is B? [1]", 1),
    ]
    # Streamed through a sequence, the next step receives the final dict.
    assert list(pipeline.stream("RAG")) == [("Answer to What is RAG? [1]", 1)]
    # Streaming the runnable last passes its text pieces through.
    streamed = list((RunnableLambda(lambda q: q) | RagChainRunnable(chain)).stream("Q"))
    assert streamed[:2] == ["Answer to ", "Q [1]"]
    assert streamed[-1]["answer"] == "Answer to Q [1]"


def test_answer_to_dict_is_asdict_with_lists() -> None:
    answer = _ScriptedChain()._answer("q")
    result = answer_to_dict(answer)
    assert result["retrieved"][0]["chunk_id"] == 11
    assert result["invalid_markers"] == []
    assert set(result) == set(Answer.__dataclass_fields__)


HANDBOOK = [
    "The signing key is rotated every 90 days by the security team.",
    "Backups of the catalog are kept for 35 days in a second region.",
    "New employees receive a laptop on their first day.",
]


@pytest.mark.slow  # loads all-MiniLM-L6-v2 and the embedded SmolLM2 generator
def test_real_chain_composes_in_lcel(settings: Settings, kbs: KnowledgeBases) -> None:
    pytest.importorskip("rag.retrieve", reason="rag/retrieve.py is not written yet")
    from rag.platform import Platform

    embedder = SentenceTransformerEmbedder(DEFAULT_EMBEDDING_MODEL, device="cpu")
    kbs.create("handbook", embedding_model=embedder.model_name, embedding_dim=embedder.dimension)
    documents = [
        DocumentToIndex(
            source=f"/handbook/{i}.md",
            sha256=f"{i}" * 64,
            mime="text/markdown",
            size_bytes=len(text),
            chunks=(ChunkDraft(0, text, None, None, 0, len(text), len(text.split())),),
            vectors=embedder.embed_documents([text]),
            bm25_tokens=(tuple(bm25_tokens(text)),),
        )
        for i, text in enumerate(HANDBOOK)
    ]
    with kbs.writer("handbook") as writer:
        writer.commit(indexed=documents, failed=[])
    # Short answers keep the three CPU generations quick; the shape is what is tested.
    short = settings.model_copy(update={"max_new_tokens": 24, "device": "cpu"})
    chain = Platform(short, catalog=kbs.catalog).chain("handbook")
    runnable = RagChainRunnable(chain, k=2)

    result = runnable.invoke("How often is the signing key rotated?")
    assert result["question"] == "How often is the signing key rotated?"
    assert result["retrieved"][0]["source"] == "/handbook/0.md"
    assert json.loads(json.dumps(result)) == result

    items = list(runnable.stream({"question": "How long are backups kept?", "history": []}))
    assert all(isinstance(item, str) for item in items[:-1])
    final = items[-1]
    assert isinstance(final, dict)
    assert "".join(str(item) for item in items[:-1]).strip() != ""
    assert final["retrieved"][0]["source"] == "/handbook/1.md"

    pipeline = runnable | RunnableLambda(lambda answer: answer["retrieved"][0]["source"])
    assert pipeline.invoke("Who rotates the signing key?") == "/handbook/0.md"
