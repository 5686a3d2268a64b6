"""The RAG chain: condense → retrieve → prompt → generate → cite, as one Answer.

The language of a question is detected once and decides every template the question
meets (condense, prompt, refusal). :meth:`RagChain.stream` answers one question as the
product shows it; :meth:`RagChain.answer_batch` runs the very same stages for many
questions with one batched generation (evaluations use it).

Example::

    chain = Platform(settings).chain("handbook")
    answer = chain.answer("How do I rotate the signing key?")
    for piece in chain.stream("和部署有关吗？"):   # text pieces, then the final Answer
        ...
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from rag.cite import CitationResult, Citer
from rag.config import RetrievalMode, Settings
from rag.embed.protocol import Embedder
from rag.generate.protocol import BatchGenerator, Generator
from rag.prompt import BuiltPrompt, PromptBuilder, PromptTemplates
from rag.records import Answer, ChatMessage, RetrievedChunk
from rag.retrieve.protocol import RetrievalFilter, Retriever
from rag.store.reader import KnowledgeBaseReader
from rag.text.language import detect_language

logger = logging.getLogger(__name__)

#: Tokens kept free in the window besides the answer (chat template, rounding).
_WINDOW_MARGIN = 32
#: Sources a small model is given: with more, SmolLM2-135M stopped answering and
#: Qwen2.5-0.5B refused questions whose answer was in source [1] (measured on CMRC 2018).
SMALL_MODEL_MAX_SOURCES = 3
EMBEDDED_MAX_SOURCES = SMALL_MODEL_MAX_SOURCES
#: Local models below this many weights count as small.
SMALL_MODEL_PARAMETERS = 1_000_000_000
#: Small models go on to invent the next question; cut there.
_STOP = ("\nQuestion:", "\n问题：")


@dataclass
class _Timer:
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, started: float) -> None:
        self.timings[stage] = round(self.timings.get(stage, 0.0) + time.perf_counter() - started, 4)


@dataclass(frozen=True)
class _Staged:
    """One question after retrieval and prompting (``prompt`` None: nothing retrieved)."""

    question: str
    language: str
    retrieved: tuple[RetrievedChunk, ...]
    prompt: BuiltPrompt | None
    timings: dict[str, float]


class RagChain:
    """Answers questions from one knowledge base with checked citations.

    Args:
        reader: the knowledge base to answer from.
        embedder: embeds queries (the base's own model).
        generator: writes answers; None allows retrieval-only use.
        settings: retrieval mode, k, score floor, rerank model, max_new_tokens.
        retriever_factory: builds the retriever of a retrieval mode on first use;
            :meth:`rag.platform.Platform.chain` passes the product's (tests pass fakes).
    """

    def __init__(
        self,
        *,
        reader: KnowledgeBaseReader,
        embedder: Embedder,
        generator: Generator | None,
        settings: Settings,
        retriever_factory: Callable[[RetrievalMode], Retriever],
    ) -> None:
        self.reader = reader
        self.embedder = embedder
        self.generator = generator
        self.settings = settings
        self._retrievers: dict[str, Retriever] = {}
        self._retriever_factory = retriever_factory
        self.citer = Citer()

    def retriever(self, mode: RetrievalMode | None = None) -> Retriever:
        """The (cached) retriever of a mode; the settings' mode by default."""
        chosen = mode or self.settings.retrieval_mode
        if chosen not in ("dense", "bm25", "hybrid"):
            raise ValueError(f"mode must be dense, bm25 or hybrid, got {chosen!r}")
        if chosen not in self._retrievers:
            self._retrievers[chosen] = self._retriever_factory(chosen)
        return self._retrievers[chosen]

    # -- stages ----------------------------------------------------------------------------

    def condense(
        self, question: str, history: Sequence[ChatMessage], *, language: str | None = None
    ) -> str:
        """Rewrite a follow-up question to stand alone, using the chat history.

        Without history (or generator) the question is returned as is. A rewrite that
        comes back empty or rambling is replaced by the previous question plus this one,
        which still carries the topic into retrieval.

        Args:
            question: the follow-up question.
            history: the chat so far, oldest first.
            language: the question's language when the caller detected it already.
        """
        if not history or self.generator is None:
            return question
        templates = PromptTemplates.load(language or detect_language(question))
        rewritten = self.generator.generate(
            PromptBuilder(templates).condense_messages(question, history),
            max_new_tokens=64,
            stop=("\n",),
        ).strip()
        previous = [m.content for m in history if m.role == "user"]
        if not rewritten or len(rewritten) > 4 * len(question) + 80:
            return f"{previous[-1]} {question}" if previous else question
        return rewritten

    def retrieve(
        self,
        query: str,
        *,
        k: int | None = None,
        mode: RetrievalMode | None = None,
        filters: RetrievalFilter | None = None,
    ) -> list[RetrievedChunk]:
        """The ranked chunks for a query (nothing when nothing clears the score floor)."""
        return self.retriever(mode).retrieve(query, k=k or self.settings.top_k, filters=filters)

    def build_prompt(
        self,
        question: str,
        chunks: Sequence[RetrievedChunk],
        *,
        language: str | None = None,
    ) -> BuiltPrompt:
        """Pack the chunks into the generator's window for this question.

        Args:
            question: the question as asked.
            chunks: the retrieved chunks, best first.
            language: the question's language when the caller detected it already.

        Raises:
            ValueError: the chain has no generator.
        """
        generator = self._require_generator()
        templates = PromptTemplates.load(language or detect_language(question))
        budget = generator.context_window - self.settings.max_new_tokens - _WINDOW_MARGIN
        limit = self.settings.max_sources
        if limit is None and self._small_generator():
            limit = SMALL_MODEL_MAX_SOURCES
        return PromptBuilder(templates).build(
            question,
            chunks[:limit] if limit is not None else chunks,
            count_tokens=generator.count_tokens,
            budget_tokens=max(budget, 64),
        )

    def _require_generator(self) -> Generator:
        if self.generator is None:
            raise ValueError("this chain has no generator; pass generate=False")
        return self.generator

    def _small_generator(self) -> bool:
        """Whether the generator is a small local model (it gets fewer sources)."""
        if self.generator is None:
            return False
        parameters = self.generator.parameter_count
        return parameters is not None and parameters < SMALL_MODEL_PARAMETERS

    def _cite(self, raw: str, prompt: BuiltPrompt, refusal: str) -> CitationResult:
        result = self.citer.cite(raw, prompt.sources, refusal=refusal)
        if result.invalid_markers:
            logger.info("dropped citation markers with no source: %s", result.invalid_markers)
        return result

    def _prompt_tokens(self, prompt: BuiltPrompt) -> int:
        """Tokens of the prompt's messages by the generator's own count."""
        generator = self._require_generator()
        return sum(generator.count_tokens(m.content) for m in prompt.messages)

    # -- the whole chain --------------------------------------------------------------------

    def answer(
        self,
        question: str,
        *,
        history: Sequence[ChatMessage] = (),
        k: int | None = None,
        mode: RetrievalMode | None = None,
        filters: RetrievalFilter | None = None,
        generate: bool = True,
    ) -> Answer:
        """Answer a question; ``generate=False`` stops after retrieval."""
        final: Answer | None = None
        for item in self.stream(
            question, history=history, k=k, mode=mode, filters=filters, generate=generate
        ):
            if isinstance(item, Answer):
                final = item
        if final is None:  # pragma: no cover - stream always ends with an Answer
            raise RuntimeError("the chain produced no answer")
        return final

    def stream(
        self,
        question: str,
        *,
        history: Sequence[ChatMessage] = (),
        k: int | None = None,
        mode: RetrievalMode | None = None,
        filters: RetrievalFilter | None = None,
        generate: bool = True,
    ) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as they are generated, then the final Answer."""
        question = question.strip()
        if not question:
            raise ValueError("question must not be empty")
        timer = _Timer()
        started_total = time.perf_counter()
        language = detect_language(question)
        templates = PromptTemplates.load(language)

        started = time.perf_counter()
        query = self.condense(question, history, language=language) if generate else question
        timer.add("condense", started)

        started = time.perf_counter()
        retrieved = self.retrieve(query, k=k, mode=mode, filters=filters)
        timer.add("retrieve", started)

        def finish(
            result: CitationResult, prompt: BuiltPrompt | None = None, raw: str = ""
        ) -> Answer:
            timer.timings["total"] = round(time.perf_counter() - started_total, 4)
            staged = _Staged(question, language, tuple(retrieved), prompt, dict(timer.timings))
            return self._make_answer(staged, result, raw)

        if not generate:
            yield finish(CitationResult("", (), (), refused=False))
            return
        if not retrieved:
            # Nothing cleared the score floor: refuse without asking the generator to
            # invent something.
            yield templates.refusal
            yield finish(CitationResult(templates.refusal, (), (), refused=True))
            return
        generator = self._require_generator()

        started = time.perf_counter()
        prompt = self.build_prompt(question, retrieved, language=language)
        timer.add("prompt", started)

        started = time.perf_counter()
        first_token: float | None = None
        pieces: list[str] = []
        for piece in generator.stream(
            prompt.messages, max_new_tokens=self.settings.max_new_tokens, stop=_STOP
        ):
            if first_token is None:
                first_token = time.perf_counter()
                timer.timings["first_token"] = round(first_token - started_total, 4)
            pieces.append(piece)
            yield piece
        timer.add("generate", started)

        raw = "".join(pieces)
        started = time.perf_counter()
        result = self._cite(raw, prompt, templates.refusal)
        timer.add("cite", started)
        yield finish(result, prompt, raw)

    def answer_batch(
        self,
        questions: Sequence[str],
        *,
        k: int | None = None,
        mode: RetrievalMode | None = None,
        filters: RetrievalFilter | None = None,
        max_new_tokens: int | None = None,
        sources: Sequence[Sequence[RetrievedChunk]] | None = None,
    ) -> list[Answer]:
        """Answer many questions with the stages of :meth:`stream`, generating in one batch.

        Each question is retrieved and prompted exactly as :meth:`stream` does it (no
        history, so no condensing), with the same templates, packing, stop sequences,
        citation check and refusal when nothing is retrieved. The prompts that have
        sources go to the generator's ``generate_batch`` in one call when it has one,
        else to ``generate`` one at a time.

        Args:
            questions: the questions, each answered on its own.
            k: chunks to retrieve per question; the settings' ``top_k`` by default.
            mode: the retrieval mode; the settings' by default.
            filters: restrict retrieval to some documents.
            max_new_tokens: the answer budget; the settings' ``max_new_tokens`` by
                default (the prompt is packed for the settings' budget either way).
            sources: given sources per question, best first, used instead of retrieval
                (the evaluation's ``oracle`` strategy passes the gold passage); every
                other stage is the same, and a question given no source is refused as
                when nothing is retrieved. ``k``, ``mode`` and ``filters`` are then
                unused and the ``retrieve`` timing is 0.

        Returns:
            One Answer per question, in order. Timings are seconds per stage
            (``retrieve``, ``prompt``, ``generate`` = the batch's time divided by its
            size, ``cite``) and ``total``, their sum.

        Raises:
            ValueError: a question is empty, the chain has no generator, or ``sources``
                does not hold one sequence per question.
        """
        generator = self._require_generator()
        if sources is not None and len(sources) != len(questions):
            raise ValueError(
                f"sources must hold one sequence per question ({len(questions)}); "
                f"got {len(sources)}"
            )
        staged = [
            self._stage(
                question,
                k=k,
                mode=mode,
                filters=filters,
                given=None if sources is None else sources[index],
            )
            for index, question in enumerate(questions)
        ]
        prompts = [s.prompt.messages for s in staged if s.prompt is not None]
        started = time.perf_counter()
        outputs = iter(
            self._generate_all(generator, prompts, max_new_tokens or self.settings.max_new_tokens)
        )
        per_prompt = (time.perf_counter() - started) / max(1, len(prompts))
        answers: list[Answer] = []
        for item in staged:
            refusal = PromptTemplates.load(item.language).refusal
            raw = ""
            if item.prompt is None:
                result = CitationResult(refusal, (), (), refused=True)
            else:
                raw = next(outputs)
                item.timings["generate"] = round(per_prompt, 4)
                started = time.perf_counter()
                result = self._cite(raw, item.prompt, refusal)
                item.timings["cite"] = round(time.perf_counter() - started, 4)
            item.timings["total"] = round(sum(item.timings.values()), 4)
            answers.append(self._make_answer(item, result, raw))
        return answers

    def _make_answer(self, staged: _Staged, result: CitationResult, raw: str) -> Answer:
        """The Answer of a question; token counts only where the generator was asked."""
        generator = self.generator
        prompt_tokens = output_tokens = 0
        if generator is not None and staged.prompt is not None:
            prompt_tokens = self._prompt_tokens(staged.prompt)
            output_tokens = generator.count_tokens(raw)
        return Answer(
            question=staged.question,
            answer=result.text,
            refused=result.refused,
            supported=result.supported,
            citations=result.citations,
            retrieved=staged.retrieved,
            timings=dict(staged.timings),
            generator=dict(generator.info) if generator is not None else {},
            invalid_markers=result.invalid_markers,
            language=staged.language,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            raw=raw,
            sources=(tuple(c.chunk_id for c in staged.prompt.sources) if staged.prompt else ()),
        )

    def _stage(
        self,
        question: str,
        *,
        k: int | None,
        mode: RetrievalMode | None,
        filters: RetrievalFilter | None,
        given: Sequence[RetrievedChunk] | None = None,
    ) -> _Staged:
        """Retrieve (or take the ``given`` sources) and prompt one question of a batch."""
        question = question.strip()
        if not question:
            raise ValueError("question must not be empty")
        language = detect_language(question)
        timer = _Timer()
        if given is None:
            started = time.perf_counter()
            retrieved = self.retrieve(question, k=k, mode=mode, filters=filters)
            timer.add("retrieve", started)
        else:
            retrieved = list(given)
            timer.timings["retrieve"] = 0.0
        started = time.perf_counter()
        prompt = self.build_prompt(question, retrieved, language=language) if retrieved else None
        timer.add("prompt", started)
        return _Staged(question, language, tuple(retrieved), prompt, timer.timings)

    @staticmethod
    def _generate_all(
        generator: Generator, prompts: Sequence[Sequence[ChatMessage]], max_new_tokens: int
    ) -> list[str]:
        """One call to ``generate_batch`` when the generator has it, else one each."""
        if not prompts:
            return []
        if isinstance(generator, BatchGenerator):
            outputs = generator.generate_batch(prompts, max_new_tokens=max_new_tokens, stop=_STOP)
            if len(outputs) != len(prompts):
                raise ValueError(
                    f"generate_batch returned {len(outputs)} answers for {len(prompts)} prompts"
                )
            return outputs
        return [generator.generate(p, max_new_tokens=max_new_tokens, stop=_STOP) for p in prompts]
