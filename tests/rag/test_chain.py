"""The chain on scripted parts: refusal, citations, timings, history, streaming."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rag.chain import RagChain
from rag.config import Settings
from rag.records import Answer, ChatMessage, RetrievedChunk
from rag.retrieve.protocol import RetrievalFilter
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.reader import KnowledgeBaseReader
from tests.fakes import HashEmbedder, ScriptedGenerator

CHUNKS = [
    RetrievedChunk(
        11,
        "/d/keys.md",
        "The signing key is rotated every 90 days.",
        1,
        "Keys",
        0,
        41,
        0.8,
        1,
        0.8,
        None,
    ),
    RetrievedChunk(
        12, "/d/backup.md", "Backups are kept for 35 days.", None, None, 0, 29, 0.5, 2, 0.5, None
    ),
]


class FixedRetriever:
    def __init__(self, chunks: Sequence[RetrievedChunk]) -> None:
        self.chunks = list(chunks)
        self.queries: list[str] = []

    def retrieve(
        self, query: str, *, k: int, filters: RetrievalFilter | None = None
    ) -> list[RetrievedChunk]:
        self.queries.append(query)
        return self.chunks[:k]


def make_chain(
    settings: Settings,
    kbs: KnowledgeBases,
    generator: ScriptedGenerator,
    chunks: Sequence[RetrievedChunk] = CHUNKS,
) -> tuple[RagChain, FixedRetriever]:
    kbs.create("kb", embedding_model="fake-hash", embedding_dim=16)
    retriever = FixedRetriever(chunks)
    chain = RagChain(
        reader=KnowledgeBaseReader(kbs, "kb"),
        embedder=HashEmbedder(16),
        generator=generator,
        settings=settings,
        retriever_factory=lambda mode: retriever,
    )
    return chain, retriever


def test_answer_with_valid_and_invalid_citations(settings: Settings, kbs: KnowledgeBases) -> None:
    generator = ScriptedGenerator("The key is rotated every 90 days [1][9].")
    chain, _ = make_chain(settings, kbs, generator)
    answer = chain.answer("How often is the signing key rotated?")
    assert not answer.refused and answer.supported
    assert [c.chunk_id for c in answer.citations] == [11]
    assert answer.citations[0].text == "The signing key is rotated every 90 days."
    assert answer.invalid_markers == (9,)
    assert [c.chunk_id for c in answer.retrieved] == [11, 12]
    assert {"retrieve", "prompt", "generate", "cite", "total"} <= set(answer.timings)
    assert answer.generator == {"backend": "scripted", "model": "script"}
    [user] = generator.seen[0]
    assert "[1] (keys.md, page 1, Keys)" in user.content  # type: ignore[attr-defined]


def test_nothing_retrieved_is_refused_without_generating(
    settings: Settings, kbs: KnowledgeBases
) -> None:
    generator = ScriptedGenerator("made up")
    chain, _ = make_chain(settings, kbs, generator, chunks=[])
    answer = chain.answer("What is the capital of Mars?")
    assert answer.refused and answer.citations == () and generator.seen == []
    assert "do not contain" in answer.answer


def test_model_refusal_in_chinese(settings: Settings, kbs: KnowledgeBases) -> None:
    chain, _ = make_chain(settings, kbs, ScriptedGenerator("资料中没有这个问题的答案。"))
    answer = chain.answer("火星的首都是哪里？")
    assert answer.refused and answer.language == "zh" and answer.citations == ()


def test_stream_yields_pieces_then_the_answer(settings: Settings, kbs: KnowledgeBases) -> None:
    chain, _ = make_chain(settings, kbs, ScriptedGenerator("Backups are kept for 35 days [2]."))
    items = list(chain.stream("How long are backups kept?"))
    assert isinstance(items[-1], Answer)
    assert "".join(p for p in items[:-1] if isinstance(p, str)) == (
        "Backups are kept for 35 days [2]."
    )
    assert items[-1].citations[0].source == "/d/backup.md"
    assert "first_token" in items[-1].timings


def test_follow_up_is_condensed_with_history(settings: Settings, kbs: KnowledgeBases) -> None:
    generator = ScriptedGenerator("How long are backups kept?", "35 days [2].")
    chain, retriever = make_chain(settings, kbs, generator)
    history = [ChatMessage("user", "Tell me about backups."), ChatMessage("assistant", "Nightly.")]
    answer = chain.answer("And how long are they kept?", history=history)
    assert retriever.queries == ["How long are backups kept?"]
    assert "Tell me about backups." in generator.seen[0][0].content  # type: ignore[attr-defined]
    assert answer.question == "And how long are they kept?"


def test_rambling_condense_falls_back_to_previous_question(
    settings: Settings, kbs: KnowledgeBases
) -> None:
    generator = ScriptedGenerator("x " * 400, "35 days [2].")
    chain, retriever = make_chain(settings, kbs, generator)
    chain.answer("How long?", history=[ChatMessage("user", "Backups?")])
    assert retriever.queries == ["Backups? How long?"]


def test_retrieval_only_and_bad_input(settings: Settings, kbs: KnowledgeBases) -> None:
    generator = ScriptedGenerator("unused")
    chain, _ = make_chain(settings, kbs, generator)
    answer = chain.answer("anything", generate=False, k=1)
    assert [c.chunk_id for c in answer.retrieved] == [11] and answer.answer == ""
    assert generator.seen == []
    with pytest.raises(ValueError, match="empty"):
        chain.answer("   ")
    with pytest.raises(ValueError, match="mode"):
        chain.retriever("sparse")  # type: ignore[arg-type]


class SizedGenerator(ScriptedGenerator):
    """A scripted local model with a known number of weights."""

    def __init__(self, parameters: int) -> None:
        super().__init__("unused")
        self._parameters = parameters

    @property
    def parameter_count(self) -> int:
        return self._parameters


@pytest.mark.parametrize(("parameters", "sources"), [(135_000_000, 3), (7_000_000_000, 5)])
def test_small_local_models_get_three_sources(
    settings: Settings, kbs: KnowledgeBases, parameters: int, sources: int
) -> None:
    five = [
        RetrievedChunk(20 + i, f"/d/{i}.md", f"Fact number {i}.", None, None, 0, 14, 0.9, i + 1)
        for i in range(5)
    ]
    chain, _ = make_chain(settings, kbs, SizedGenerator(parameters), chunks=five)
    assert len(chain.build_prompt("Which facts?", five).sources) == sources


def test_language_is_detected_once_per_question(
    settings: Settings, kbs: KnowledgeBases, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.chain

    seen: list[str] = []

    def counting(text: str) -> str:
        seen.append(text)
        return "en"

    monkeypatch.setattr(rag.chain, "detect_language", counting)
    generator = ScriptedGenerator("How long are backups kept?", "35 days [2].")
    chain, _ = make_chain(settings, kbs, generator)
    history = [ChatMessage("user", "Tell me about backups."), ChatMessage("assistant", "Nightly.")]
    chain.answer("And how long are they kept?", history=history)
    assert seen == ["And how long are they kept?"]
    seen.clear()
    chain.answer_batch(["How long are backups kept?", "How often is the key rotated?"])
    assert seen == ["How long are backups kept?", "How often is the key rotated?"]


def test_answer_batch_refuses_without_sources_and_checks_input(
    settings: Settings, kbs: KnowledgeBases
) -> None:
    generator = ScriptedGenerator("The key is rotated every 90 days [1].")
    chain, _ = make_chain(settings, kbs, generator)
    (answered,) = chain.answer_batch(["How often is the signing key rotated?"], k=1)
    assert [c.chunk_id for c in answered.retrieved] == [11]
    assert answered.raw == "The key is rotated every 90 days [1]." and answered.output_tokens == 8
    assert set(answered.timings) == {"retrieve", "prompt", "generate", "cite", "total"}
    assert answered.timings["total"] == pytest.approx(
        sum(v for key, v in answered.timings.items() if key != "total"), abs=1e-3
    )
    assert chain.answer_batch([]) == []
    with pytest.raises(ValueError, match="empty"):
        chain.answer_batch(["fine", "  "])

    retrieval_only = RagChain(
        reader=chain.reader,
        embedder=chain.embedder,
        generator=None,
        settings=settings,
        retriever_factory=lambda mode: FixedRetriever([]),
    )
    with pytest.raises(ValueError, match="generator"):
        retrieval_only.answer_batch(["anything"])
    refusing = RagChain(
        reader=chain.reader,
        embedder=chain.embedder,
        generator=generator,
        settings=settings,
        retriever_factory=lambda mode: FixedRetriever([]),
    )
    before = len(generator.seen)
    [refused] = refusing.answer_batch(["火星的首都是哪里？"])
    assert refused.refused and refused.language == "zh" and refused.raw == ""
    assert len(generator.seen) == before
    assert set(refused.timings) == {"retrieve", "prompt", "total"}


def test_answer_records_the_packed_sources(settings: Settings, kbs: KnowledgeBases) -> None:
    chain, _ = make_chain(settings, kbs, ScriptedGenerator("Backups are kept for 35 days [2]."))
    assert chain.answer("How long are backups kept?").sources == (11, 12)
    [batched] = chain.answer_batch(["How long are backups kept?"], k=1)
    assert batched.sources == (11,)
    assert chain.answer("anything", generate=False).sources == ()


def test_answer_batch_with_given_sources_skips_retrieval(
    settings: Settings, kbs: KnowledgeBases
) -> None:
    generator = ScriptedGenerator("Backups are kept for 35 days [1].")
    chain, retriever = make_chain(settings, kbs, generator)
    gold = RetrievedChunk(-1, "doc-7", "Backups are kept for 35 days.", None, None, 0, 29, 1.0, 1)
    answered, unanswerable = chain.answer_batch(
        ["How long are backups kept?", "What is the capital of Mars?"], sources=[[gold], []]
    )
    assert retriever.queries == []
    [[user]] = generator.seen
    content = user.content  # type: ignore[attr-defined]
    assert content.startswith("[1] (doc-7) Backups are kept for 35 days.\n\nAnswer the question")
    assert "[2]" not in content and "signing key" not in content
    assert answered.sources == (-1,) and answered.retrieved == (gold,)
    assert [c.chunk_id for c in answered.citations] == [-1] and not answered.refused
    assert answered.timings["retrieve"] == 0.0
    assert unanswerable.refused and unanswerable.sources == () and unanswerable.raw == ""
    with pytest.raises(ValueError, match="one sequence per question"):
        chain.answer_batch(["How long are backups kept?"], sources=[])
