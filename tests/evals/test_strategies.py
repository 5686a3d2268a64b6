"""Evaluation strategies: RAG runs the product's own chain; prompt-only and ranking basics."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from evals.datasets import QAExample
from evals.strategies import (
    ORACLE_CHUNK_ID,
    OracleStrategy,
    PromptStrategy,
    RagStrategy,
    RetrievalStrategy,
    oracle_source,
)
from rag.chain import RagChain
from rag.config import Settings
from rag.records import Answer, ChatMessage, RetrievedChunk
from rag.retrieve.protocol import RetrievalFilter
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.reader import KnowledgeBaseReader
from tests.fakes import HashEmbedder, ScriptedGenerator

KEYS = RetrievedChunk(
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
)
BACKUP = RetrievedChunk(
    12, "/d/backup.md", "Backups are kept for 35 days.", None, None, 0, 29, 0.5, 2, 0.5, None
)
ZH = RetrievedChunk(
    13, "/d/密钥.md", "签名密钥每90天轮换一次。", None, None, 0, 12, 0.7, 1, 0.7, None
)
CHUNKS = {
    "How often is the signing key rotated?": [KEYS, BACKUP],
    "How long are backups kept?": [BACKUP, KEYS],
    "签名密钥多久轮换一次？": [ZH],
}


@dataclass(frozen=True)
class Call:
    """One request a generator received."""

    method: str
    messages: tuple[ChatMessage, ...]
    max_new_tokens: int | None
    stop: tuple[str, ...]


class RecordingGenerator(ScriptedGenerator):
    """A scripted generator that records every request with its stop sequences."""

    def __init__(self, *replies: str) -> None:
        super().__init__(*replies)
        self.calls: list[Call] = []

    def generate(
        self,
        messages: Sequence[object],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> str:
        self.calls.append(Call("generate", _messages(messages), max_new_tokens, tuple(stop)))
        return super().generate(messages, max_new_tokens=max_new_tokens, stop=stop)

    def stream(
        self,
        messages: Sequence[object],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        self.calls.append(Call("stream", _messages(messages), max_new_tokens, tuple(stop)))
        return super().stream(messages, max_new_tokens=max_new_tokens, stop=stop)


class BatchRecordingGenerator(RecordingGenerator):
    """Also answers several prompts in one ``generate_batch`` call."""

    def __init__(self, *replies: str) -> None:
        super().__init__(*replies)
        self.batches: list[list[Call]] = []

    def generate_batch(
        self,
        prompts: Sequence[Sequence[ChatMessage]],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> list[str]:
        self.batches.append(
            [Call("batch", _messages(p), max_new_tokens, tuple(stop)) for p in prompts]
        )
        return [self._next() for _ in prompts]


def _messages(messages: Sequence[object]) -> tuple[ChatMessage, ...]:
    kept = tuple(m for m in messages if isinstance(m, ChatMessage))
    assert len(kept) == len(messages)
    return kept


class TableRetriever:
    """Returns the chunks listed for a question; nothing for any other."""

    def retrieve(
        self, query: str, *, k: int, filters: RetrievalFilter | None = None
    ) -> list[RetrievedChunk]:
        return CHUNKS.get(query, [])[:k]


def make_chain(
    settings: Settings, kbs: KnowledgeBases, generator: ScriptedGenerator | None
) -> RagChain:
    if not kbs.exists("kb"):
        kbs.create("kb", embedding_model="fake-hash", embedding_dim=16)
    return RagChain(
        reader=KnowledgeBaseReader(kbs, "kb"),
        embedder=HashEmbedder(16),
        generator=generator,
        settings=settings,
        retriever_factory=lambda mode: TableRetriever(),
    )


def example(qid: str, question: str, *answers: str) -> QAExample:
    return QAExample(qid=qid, question=question, answers=tuple(answers))


@pytest.mark.parametrize(
    "question", ["How often is the signing key rotated?", "签名密钥多久轮换一次？"]
)
@pytest.mark.parametrize("batching", [False, True])
def test_rag_strategy_sends_the_products_prompt_and_stops(
    settings: Settings, kbs: KnowledgeBases, question: str, batching: bool
) -> None:
    reply = "Every 90 days [1]."
    product = RecordingGenerator(reply)
    answer = make_chain(settings, kbs, product).answer(question)
    kind = BatchRecordingGenerator if batching else RecordingGenerator
    evaluated = kind(reply)
    strategy = RagStrategy("rag", make_chain(settings, kbs, evaluated), max_new_tokens=64)

    [prediction] = strategy.answer([example("q1", question, "90 days")])

    [shown] = product.calls
    sent = evaluated.batches[0] if isinstance(evaluated, BatchRecordingGenerator) else []
    [call] = sent or evaluated.calls
    assert call.messages == shown.messages
    assert call.stop == shown.stop
    assert "\n问题：" in call.stop and "\nQuestion:" in call.stop
    assert call.max_new_tokens == 64
    assert prediction.answer == answer.answer and prediction.refused == answer.refused
    assert prediction.raw == reply


def test_rag_strategy_batches_only_questions_with_sources(
    settings: Settings, kbs: KnowledgeBases
) -> None:
    generator = BatchRecordingGenerator("Every 90 days [1].", "For 35 days [1][7].")
    chain = make_chain(settings, kbs, generator)
    batch = [
        example("a", "How often is the signing key rotated?", "90 days"),
        example("b", "What is the capital of Mars?"),
        example("c", "How long are backups kept?", "35 days"),
    ]

    keys, mars, backups = RagStrategy("rag", chain).answer(batch)

    assert len(generator.batches) == 1 and generator.calls == []
    assert [len(generator.batches[0])] == [2]
    assert [p.qid for p in (keys, mars, backups)] == ["a", "b", "c"]
    # Nothing retrieved: the template's refusal, not sent to the generator.
    assert mars.refused and "do not contain" in mars.answer and mars.raw == mars.answer
    assert mars.citations == () and mars.retrieved == ()
    assert (mars.prompt_tokens, mars.output_tokens) == (0, 0)
    assert set(mars.timings) == {"retrieve", "prompt", "total"}
    # Answered: citations with the cited chunk's text, the trace, tokens and timings.
    assert not keys.refused and keys.raw == "Every 90 days [1]."
    [citation] = keys.citations
    assert set(citation) == {"chunk_id", "source", "text", "chunk_text", "score"}
    assert citation["chunk_id"] == 11 and citation["chunk_text"] == KEYS.text
    assert keys.retrieved == (
        {"chunk_id": 11, "source": "/d/keys.md", "score": 0.8, "text": KEYS.text},
        {"chunk_id": 12, "source": "/d/backup.md", "score": 0.5, "text": BACKUP.text},
    )
    assert set(keys.timings) == {"retrieve", "prompt", "generate", "cite", "total"}
    assert keys.timings["generate"] == backups.timings["generate"]
    [sent_keys, _] = generator.batches[0]
    assert keys.prompt_tokens == sum(generator.count_tokens(m.content) for m in sent_keys.messages)
    assert keys.output_tokens == generator.count_tokens("Every 90 days [1].")
    assert backups.raw == "For 35 days [1][7]." and "[7]" not in backups.answer


def test_rag_strategy_needs_a_generator(settings: Settings, kbs: KnowledgeBases) -> None:
    with pytest.raises(ValueError, match="generator"):
        RagStrategy("rag", make_chain(settings, kbs, None))


class CountingRetriever(TableRetriever):
    def __init__(self) -> None:
        self.queries: list[str] = []

    def retrieve(
        self, query: str, *, k: int, filters: RetrievalFilter | None = None
    ) -> list[RetrievedChunk]:
        self.queries.append(query)
        return super().retrieve(query, k=k, filters=filters)


def test_oracle_gives_the_gold_passage_as_the_only_source(
    settings: Settings, kbs: KnowledgeBases
) -> None:
    generator = BatchRecordingGenerator("Every 90 days [1].")
    retriever = CountingRetriever()
    chain = make_chain(settings, kbs, generator)
    chain = RagChain(
        reader=chain.reader,
        embedder=chain.embedder,
        generator=generator,
        settings=settings,
        retriever_factory=lambda mode: retriever,
    )
    gold = "Keys are rotated every 90 days by the security team."
    keys = QAExample(
        "k", "How often is the signing key rotated?", ("every 90 days",), "handbook", gold
    )
    mars = QAExample("m", "What is the capital of Mars?", (), answerable=False)

    answered, refused = OracleStrategy("oracle", chain, max_new_tokens=48).answer([keys, mars])

    assert retriever.queries == []  # nothing retrieved, for either question
    [[call]] = generator.batches
    [user] = call.messages
    # The product's own prompt with the passage as [1] and no other source.
    rag_prompt = chain.build_prompt(keys.question, [oracle_source(keys)])  # type: ignore[list-item]
    assert call.messages == rag_prompt.messages
    assert user.content.startswith(f"[1] (handbook) {gold}\n\nAnswer the question")
    assert "[2]" not in user.content and KEYS.text not in user.content
    assert user.content.endswith("Question: How often is the signing key rotated?")
    assert "\nQuestion:" in call.stop and call.max_new_tokens == 48
    assert answered.sources == (ORACLE_CHUNK_ID,) and not answered.refused
    assert answered.retrieved == (
        {"chunk_id": ORACLE_CHUNK_ID, "source": "handbook", "score": 1.0, "text": gold},
    )
    assert answered.citations[0]["chunk_id"] == ORACLE_CHUNK_ID
    assert answered.timings["retrieve"] == 0.0
    # No evidence: no source, so the product's refusal without the generator.
    assert refused.refused and "do not contain" in refused.answer and refused.sources == ()
    assert oracle_source(mars) is None
    with pytest.raises(ValueError, match="generator"):
        OracleStrategy("oracle", make_chain(settings, kbs, None))


def test_rag_prediction_carries_the_packed_sources(settings: Settings, kbs: KnowledgeBases) -> None:
    chain = make_chain(settings, kbs, RecordingGenerator("Every 90 days [1]."))
    [prediction] = RagStrategy("rag", chain, k=1).answer(
        [example("q", "How often is the signing key rotated?", "90 days")]
    )
    assert prediction.sources == (11,)


def test_prompt_strategy_closed_few_shot_and_cot() -> None:
    generator = RecordingGenerator("Paris\nQuestion: next", "I don't know.")
    closed = PromptStrategy("closed-book", "closed", generator, language="en")
    paris, unknown = closed.answer(
        [example("1", "Capital of France?", "Paris"), example("2", "Capital of Mars?")]
    )
    assert (paris.answer, paris.refused, paris.raw) == ("Paris", False, "Paris\nQuestion: next")
    assert unknown.refused and unknown.citations == ()
    assert all(c.stop == ("\n",) and c.max_new_tokens == 32 for c in generator.calls)
    assert "Capital of France?" in generator.calls[0].messages[-1].content

    shots = [example("s", "Capital of Italy?", "Rome")]
    few = PromptStrategy("few-shot", "few", generator, language="en", shots=shots)
    roles = [m.role for m in few.messages("Capital of Spain?")]
    assert roles == ["user", "assistant", "user"]
    assert few.messages("Capital of Spain?")[1].content == "Rome"

    cot_generator = RecordingGenerator("It is in France.\nAnswer: Paris")
    cot = PromptStrategy("cot", "cot", cot_generator, language="en", max_new_tokens=16)
    [reasoned] = cot.answer([example("3", "Capital of France?", "Paris")])
    assert reasoned.answer == "Paris"
    assert cot_generator.calls[0].stop == () and cot_generator.calls[0].max_new_tokens == 64

    with pytest.raises(ValueError, match="style"):
        PromptStrategy("x", "long", generator, language="en")
    with pytest.raises(ValueError, match="few-shot"):
        PromptStrategy("few-shot", "few", generator, language="en")


def test_prompt_strategy_batches_when_the_generator_can() -> None:
    generator = BatchRecordingGenerator("北京", "不知道")
    strategy = PromptStrategy("closed-book", "closed", generator, language="zh")
    beijing, unknown = strategy.answer([example("1", "中国的首都？"), example("2", "火星的首都？")])
    assert len(generator.batches) == 1 and generator.calls == []
    assert "问题：中国的首都？" in generator.batches[0][0].messages[0].content
    assert not beijing.refused and unknown.refused


def test_retrieval_strategy_ranks_without_generating(
    settings: Settings, kbs: KnowledgeBases
) -> None:
    strategy = RetrievalStrategy("hybrid", make_chain(settings, kbs, None), depth=1)
    found, missing = strategy.answer(
        [example("a", "How long are backups kept?"), example("b", "Unrelated?")]
    )
    assert found.retrieved == ({"chunk_id": 12, "source": "/d/backup.md", "score": 0.5},)
    assert not found.refused and found.answer == ""
    assert missing.refused and missing.retrieved == ()
    assert set(found.timings) == {"retrieve", "total"}
    with pytest.raises(ValueError, match="retrieval strategy"):
        RetrievalStrategy("rag", make_chain(settings, kbs, None))


def test_answer_batch_answers_match_stream(settings: Settings, kbs: KnowledgeBases) -> None:
    reply = "Backups are kept for 35 days [1]."
    streamed = make_chain(settings, kbs, RecordingGenerator(reply)).answer(
        "How long are backups kept?"
    )
    [batched] = make_chain(settings, kbs, RecordingGenerator(reply)).answer_batch(
        ["How long are backups kept?"]
    )
    assert isinstance(batched, Answer)
    for name in ("answer", "refused", "supported", "citations", "retrieved", "language"):
        assert getattr(batched, name) == getattr(streamed, name), name
    assert (batched.raw, batched.prompt_tokens, batched.output_tokens) == (
        streamed.raw,
        streamed.prompt_tokens,
        streamed.output_tokens,
    )
    assert streamed.raw == reply and streamed.prompt_tokens > 0 and streamed.output_tokens == 7
