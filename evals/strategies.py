"""The strategies a run compares, all answering through the same generator interface.

* ``closed-book``: the question alone, zero-shot.
* ``few-shot``: k worked examples from the train split, then the question.
* ``cot``: asked to reason step by step; the answer is taken from the final
  ``Answer:`` line.
* ``rag``: the product's chain (retrieval, numbered sources, checked citations).
* ``oracle``: the same chain given the gold passage as its only source [1] instead of
  retrieval: the reader's ceiling, so a report separates retrieval loss from reading loss.
* ``lora`` / ``full-ft``: closed-book with a fine-tuned copy of the generator.
* ``lora+rag`` / ``full-ft+rag``: the fine-tuned copy inside the RAG chain.
* ``bm25`` / ``dense`` / ``hybrid``: retrieval only, scored on rankings.

Strategies answer in batches: :meth:`HuggingFaceGenerator.generate_batch` decodes
several prompts per forward pass, which on a CPU is several times the throughput of one
at a time. Per-question generation time is the batch's time divided by its size.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from evals.datasets import QAExample
from rag.chain import RagChain
from rag.cite import is_refusal
from rag.generate.protocol import BatchGenerator, Generator
from rag.prompt import PromptTemplates
from rag.records import Answer, ChatMessage, RetrievedChunk

PROMPT_STRATEGIES = ("closed-book", "few-shot", "cot")
FINETUNE_STRATEGIES = ("lora", "full-ft", "lora+rag", "full-ft+rag")
#: Strategies that answer through the product's chain (scored on citations too).
RAG_STRATEGIES = ("rag", "oracle", "lora+rag", "full-ft+rag")
RETRIEVAL_STRATEGIES = ("bm25", "dense", "hybrid")
ALL_STRATEGIES = (
    *PROMPT_STRATEGIES,
    "rag",
    "oracle",
    *FINETUNE_STRATEGIES,
    *RETRIEVAL_STRATEGIES,
)
#: The chunk id of the oracle's gold passage (no catalog id is negative).
ORACLE_CHUNK_ID = -1
#: Chunks a retrieval strategy ranks per query (recall@100 needs 100).
RANKING_DEPTH = 100


@dataclass(frozen=True)
class _PromptTexts:
    closed: str
    cot: str
    answer_tag: str
    dont_know: tuple[str, ...]


_PROMPTS = {
    "en": _PromptTexts(
        closed=(
            "Answer the question with a short phrase of a few words. If you do not know, "
            "say: I don't know.\nQuestion: {question}\nAnswer:"
        ),
        cot=(
            "Question: {question}\nThink step by step in at most three short sentences, "
            "then write the final line as 'Answer: ' followed by a short phrase."
        ),
        answer_tag="Answer:",
        dont_know=("i don't know", "i do not know", "i'm not sure", "unknown"),
    ),
    "zh": _PromptTexts(
        closed=(
            "请用几个词的简短短语回答问题。如果不知道，请说：我不知道。\n问题：{question}\n答案："
        ),
        cot="问题：{question}\n请一步一步思考，最多写三句话，最后一行写“答案：”加简短短语。",
        answer_tag="答案：",
        dont_know=("我不知道", "不知道", "不清楚"),
    ),
}


@dataclass(frozen=True)
class Prediction:
    """One strategy's answer to one question, with what it cost.

    ``citations`` and ``retrieved`` hold ``{"chunk_id", "source", "text", "score"}``
    dicts and ``sources`` the chunk ids packed into the prompt (RAG strategies only);
    ``timings`` are seconds per stage.
    """

    qid: str
    answer: str
    refused: bool
    citations: tuple[dict[str, Any], ...] = ()
    retrieved: tuple[dict[str, Any], ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    output_tokens: int = 0
    raw: str = ""
    sources: tuple[int, ...] = ()


class Strategy(Protocol):
    """Answers a batch of test questions."""

    name: str

    def answer(self, batch: Sequence[QAExample]) -> list[Prediction]:
        """One prediction per question, in order."""
        ...


def _generate_batch(
    generator: Generator,
    prompts: Sequence[list[ChatMessage]],
    max_new_tokens: int,
    stop: Sequence[str],
) -> list[str]:
    """Batched when the backend can (local HF models), one by one otherwise."""
    if isinstance(generator, BatchGenerator) and len(prompts) > 1:
        return generator.generate_batch(prompts, max_new_tokens=max_new_tokens, stop=stop)
    return [generator.generate(p, max_new_tokens=max_new_tokens, stop=stop) for p in prompts]


def _prompt_tokens(generator: Generator, messages: Sequence[ChatMessage]) -> int:
    return sum(generator.count_tokens(m.content) for m in messages)


class PromptStrategy:
    """closed-book, few-shot or cot with any generator (also the fine-tuned ones).

    Args:
        name: as the run names it (``closed-book``, ``lora``, ...).
        style: ``closed``, ``few`` or ``cot``.
        generator: answers.
        language: ``en`` or ``zh`` prompts.
        shots: worked examples for ``few``.
        max_new_tokens: answer budget (``cot`` gets four times as much to reason).
    """

    def __init__(
        self,
        name: str,
        style: str,
        generator: Generator,
        *,
        language: str,
        shots: Sequence[QAExample] = (),
        max_new_tokens: int = 32,
    ) -> None:
        if style not in ("closed", "few", "cot"):
            raise ValueError(f"style must be closed, few or cot, got {style!r}")
        if style == "few" and not shots:
            raise ValueError("few-shot needs at least one worked example from the train split")
        self.name = name
        self.style = style
        self.generator = generator
        self.texts = _PROMPTS["zh" if language == "zh" else "en"]
        self.shots = tuple(shots)
        self.max_new_tokens = max_new_tokens * 4 if style == "cot" else max_new_tokens

    def messages(self, question: str) -> list[ChatMessage]:
        """The chat prompt for one question."""
        texts = self.texts
        if self.style == "cot":
            return [ChatMessage("user", texts.cot.format(question=question))]
        closed = texts.closed.format(question=question)
        if self.style == "closed":
            return [ChatMessage("user", closed)]
        # Worked examples as earlier turns of the chat, in the very format of the last
        # question: with the examples pasted into one message, SmolLM2 went on to write
        # the next "Question:" line instead of answering (measured on SQuAD).
        messages: list[ChatMessage] = []
        for shot in self.shots:
            messages.append(ChatMessage("user", texts.closed.format(question=shot.question)))
            messages.append(ChatMessage("assistant", shot.answers[0]))
        messages.append(ChatMessage("user", closed))
        return messages

    def answer(self, batch: Sequence[QAExample]) -> list[Prediction]:
        """Answer a batch of questions with this prompt style, one prediction each."""
        prompts = [self.messages(e.question) for e in batch]
        stop = () if self.style == "cot" else ("\n",)
        started = time.perf_counter()
        outputs = _generate_batch(self.generator, prompts, self.max_new_tokens, stop)
        per_question = (time.perf_counter() - started) / max(1, len(batch))
        predictions = []
        for example, messages, raw in zip(batch, prompts, outputs, strict=True):
            text = self._final_answer(raw)
            lowered = text.strip().lower()
            refused = not lowered or any(lowered.startswith(d) for d in self.texts.dont_know)
            predictions.append(
                Prediction(
                    qid=example.qid,
                    answer=text,
                    refused=refused,
                    timings={"generate": per_question, "total": per_question},
                    prompt_tokens=_prompt_tokens(self.generator, messages),
                    output_tokens=self.generator.count_tokens(raw),
                    raw=raw,
                )
            )
        return predictions

    def _final_answer(self, raw: str) -> str:
        text = raw.strip()
        if self.style != "cot":
            return text.splitlines()[0].strip() if text else ""
        tag = self.texts.answer_tag
        pattern = re.compile(re.escape(tag.rstrip(":：")) + r"\s*[:：]\s*(.+)", re.IGNORECASE)
        found = pattern.findall(text)
        if found:
            return str(found[-1]).strip()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else ""


class RagStrategy:
    """The product's chain itself: :meth:`RagChain.answer_batch`, batched at generation.

    Args:
        name: ``rag``, ``lora+rag``, ...
        chain: a chain over the evaluation knowledge base, with its generator.
        k: sources to retrieve (None: the settings' top_k).
        mode: ``dense``, ``bm25`` or ``hybrid`` (None: the settings' mode).
        max_new_tokens: the answer budget (the prompt is packed as the product packs it).

    Raises:
        ValueError: the chain has no generator.
    """

    def __init__(
        self,
        name: str,
        chain: RagChain,
        *,
        k: int | None = None,
        mode: str | None = None,
        max_new_tokens: int = 64,
    ) -> None:
        if chain.generator is None:
            raise ValueError("a RAG strategy needs a chain with a generator")
        self.name = name
        self.chain = chain
        self.generator: Generator = chain.generator
        self.k = k
        self.mode = mode
        self.max_new_tokens = max_new_tokens

    def warm_up(self) -> None:
        """Load the query embedder and the indexes before the first timed question."""
        _warm_chain(self.chain, self.mode)

    def answer(self, batch: Sequence[QAExample]) -> list[Prediction]:
        """One prediction per question, through :meth:`RagChain.answer_batch`."""
        answers = self.chain.answer_batch(
            [e.question for e in batch],
            k=self.k,
            mode=self.mode,  # type: ignore[arg-type]
            max_new_tokens=self.max_new_tokens,
        )
        return [_rag_prediction(e.qid, a) for e, a in zip(batch, answers, strict=True)]


def oracle_source(example: QAExample) -> RetrievedChunk | None:
    """The gold passage of a question as the chain's source [1]; None without evidence.

    Its ``chunk_id`` is :data:`ORACLE_CHUNK_ID` (no catalog chunk has it) and its
    ``source`` the gold document's id, so the run's grounding checks recognise it.
    """
    if not example.evidence:
        return None
    return RetrievedChunk(
        chunk_id=ORACLE_CHUNK_ID,
        source=example.doc_id or f"gold:{example.qid}",
        text=example.evidence,
        page=None,
        heading=None,
        char_start=0,
        char_end=len(example.evidence),
        score=1.0,
        rank=1,
    )


class OracleStrategy:
    """The product's chain with the gold passage as the only source: the reader's ceiling.

    Every question goes through :meth:`RagChain.answer_batch` with ``sources`` set, so
    the prompt, packing, generator, stop sequences and citation check are the ``rag``
    strategy's; only retrieval is skipped. A question without evidence (unanswerable,
    or a dataset without passages) gets no source and meets the product's refusal.

    Args:
        name: ``oracle``.
        chain: a chain with the run's generator.
        max_new_tokens: the answer budget, as for ``rag``.

    Raises:
        ValueError: the chain has no generator.

    Example::

        oracle = OracleStrategy("oracle", chain, max_new_tokens=64)
        oracle.answer(test_examples)[0].sources   # (ORACLE_CHUNK_ID,)
    """

    def __init__(self, name: str, chain: RagChain, *, max_new_tokens: int = 64) -> None:
        if chain.generator is None:
            raise ValueError("the oracle strategy needs a chain with a generator")
        self.name = name
        self.chain = chain
        self.generator: Generator = chain.generator
        self.max_new_tokens = max_new_tokens

    def answer(self, batch: Sequence[QAExample]) -> list[Prediction]:
        """One prediction per question, each answered from its gold passage alone."""
        sources = []
        for example in batch:
            gold = oracle_source(example)
            sources.append([gold] if gold is not None else [])
        answers = self.chain.answer_batch(
            [e.question for e in batch], max_new_tokens=self.max_new_tokens, sources=sources
        )
        return [_rag_prediction(e.qid, a) for e, a in zip(batch, answers, strict=True)]


def _rag_prediction(qid: str, answer: Answer) -> Prediction:
    """A chain's Answer in the shape the run's metrics and reports read."""
    texts = {c.chunk_id: c.text for c in answer.retrieved}
    return Prediction(
        qid=qid,
        answer=answer.answer,
        refused=answer.refused,
        citations=tuple(
            {
                "chunk_id": c.chunk_id,
                "source": c.source,
                "text": c.text,
                "chunk_text": texts.get(c.chunk_id, c.text),
                "score": c.score,
            }
            for c in answer.citations
        ),
        retrieved=tuple(_chunk_dict(c) for c in answer.retrieved),
        timings=dict(answer.timings),
        prompt_tokens=answer.prompt_tokens,
        output_tokens=answer.output_tokens,
        # Nothing retrieved: the refusal was written without the generator; the run
        # records it as the raw text, as it always has.
        raw=answer.raw if answer.retrieved else answer.answer,
        sources=answer.sources,
    )


class RetrievalStrategy:
    """Ranking only (bm25, dense or hybrid) for retrieval datasets and retrieval metrics."""

    def __init__(self, name: str, chain: RagChain, *, depth: int = RANKING_DEPTH) -> None:
        if name not in RETRIEVAL_STRATEGIES:
            raise ValueError(f"retrieval strategy must be one of {RETRIEVAL_STRATEGIES}")
        self.name = name
        self.chain = chain
        self.depth = depth

    def warm_up(self) -> None:
        """Load the query embedder and the indexes before the first timed query."""
        _warm_chain(self.chain, self.name)

    def answer(self, batch: Sequence[QAExample]) -> list[Prediction]:
        """Rank chunks for each question; the prediction carries the ranking only."""
        predictions = []
        for example in batch:
            started = time.perf_counter()
            retrieved = self.chain.retrieve(example.question, k=self.depth, mode=self.name)  # type: ignore[arg-type]
            seconds = time.perf_counter() - started
            predictions.append(
                Prediction(
                    qid=example.qid,
                    answer="",
                    refused=not retrieved,
                    retrieved=tuple(_chunk_dict(c, with_text=False) for c in retrieved),
                    timings={"retrieve": seconds, "total": seconds},
                )
            )
        return predictions


def _warm_chain(chain: RagChain, mode: str | None) -> None:
    # One throwaway query loads the embedding model, the FAISS and BM25 indexes (and a
    # reranker) exactly as a real one would.
    chain.retrieve("warm up", k=1, mode=mode)  # type: ignore[arg-type]


def _chunk_dict(chunk: RetrievedChunk, *, with_text: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "chunk_id": chunk.chunk_id,
        "source": chunk.source,
        "score": round(float(chunk.score), 6),
    }
    if with_text:
        data["text"] = chunk.text
    return data


def refused_text(answer: str, language: str) -> bool:
    """Whether a free-text answer is a refusal (the RAG template's or "I don't know")."""
    refusal = PromptTemplates.load(language).refusal
    lowered = answer.strip().lower()
    texts = _PROMPTS["zh" if language == "zh" else "en"]
    return is_refusal(answer, refusal) or any(lowered.startswith(d) for d in texts.dont_know)
