"""The RAG chain: condense → retrieve → prompt → generate → cite, as one Answer.

Example::

    chain = RagChain.for_knowledge_base(settings, kbs, "handbook")
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
from rag.embed.factory import build_embedder
from rag.embed.protocol import Embedder
from rag.generate.factory import build_generator
from rag.generate.protocol import Generator
from rag.prompt import BuiltPrompt, PromptBuilder, PromptTemplates, detect_language
from rag.records import Answer, ChatMessage, RetrievedChunk
from rag.retrieve import RetrievalFilter, Retriever, build_retriever
from rag.store.catalog import Catalog
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.reader import KnowledgeBaseReader

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


class RagChain:
    """Answers questions from one knowledge base with checked citations.

    Args:
        reader: the knowledge base to answer from.
        embedder: embeds queries (the base's own model).
        generator: writes answers; None allows retrieval-only use.
        settings: retrieval mode, k, score floor, rerank model, max_new_tokens.
        retriever_factory: builds the retriever for a mode (tests pass fakes).
    """

    def __init__(
        self,
        *,
        reader: KnowledgeBaseReader,
        embedder: Embedder,
        generator: Generator | None,
        settings: Settings,
        retriever_factory: Callable[[RetrievalMode], Retriever] | None = None,
    ) -> None:
        self.reader = reader
        self.embedder = embedder
        self.generator = generator
        self.settings = settings
        self._retrievers: dict[str, Retriever] = {}
        self._retriever_factory = retriever_factory or self._default_retriever
        self.citer = Citer()

    @classmethod
    def for_knowledge_base(
        cls,
        settings: Settings,
        kbs: KnowledgeBases | None,
        name: str,
        *,
        generator: Generator | None = None,
        with_generator: bool = True,
    ) -> RagChain:
        """Wire a chain for ``name``: its reader, its embedding model, the configured generator."""
        kbs = kbs or KnowledgeBases(settings, Catalog(settings.catalog_url))
        reader = KnowledgeBaseReader(kbs, name)
        embedder = build_embedder(reader.info.embedding_model, device=settings.device)
        if generator is None and with_generator:
            generator = build_generator(settings)
        return cls(reader=reader, embedder=embedder, generator=generator, settings=settings)

    def _default_retriever(self, mode: RetrievalMode) -> Retriever:
        return build_retriever(
            mode,
            self.reader,
            self.embedder,
            score_floor=self.settings.score_floor,
            rerank_model=self.settings.rerank_model,
        )

    def retriever(self, mode: RetrievalMode | None = None) -> Retriever:
        """The (cached) retriever of a mode; the settings' mode by default."""
        chosen = mode or self.settings.retrieval_mode
        if chosen not in ("dense", "bm25", "hybrid"):
            raise ValueError(f"mode must be dense, bm25 or hybrid, got {chosen!r}")
        if chosen not in self._retrievers:
            self._retrievers[chosen] = self._retriever_factory(chosen)
        return self._retrievers[chosen]

    # -- stages ----------------------------------------------------------------------------

    def condense(self, question: str, history: Sequence[ChatMessage]) -> str:
        """Rewrite a follow-up question to stand alone, using the chat history.

        Without history (or generator) the question is returned as is. A rewrite that
        comes back empty or rambling is replaced by the previous question plus this one,
        which still carries the topic into retrieval.
        """
        if not history or self.generator is None:
            return question
        builder = PromptBuilder(PromptTemplates.load(detect_language(question)))
        rewritten = self.generator.generate(
            builder.condense_messages(question, history), max_new_tokens=64, stop=("\n",)
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

    def build_prompt(self, question: str, chunks: Sequence[RetrievedChunk]) -> BuiltPrompt:
        """Pack the chunks into the generator's window for this question."""
        if self.generator is None:
            raise ValueError("this chain has no generator; build it with with_generator=True")
        templates = PromptTemplates.load(detect_language(question))
        budget = self.generator.context_window - self.settings.max_new_tokens - _WINDOW_MARGIN
        limit = self.settings.max_sources
        if limit is None and self._small_generator():
            limit = SMALL_MODEL_MAX_SOURCES
        return PromptBuilder(templates).build(
            question,
            chunks[:limit] if limit is not None else chunks,
            count_tokens=self.generator.count_tokens,
            budget_tokens=max(budget, 64),
        )

    def _small_generator(self) -> bool:
        """Whether the generator is a small local model (it gets fewer sources)."""
        if self.generator is None:
            return False
        parameters = self.generator.parameter_count
        return parameters is not None and parameters < SMALL_MODEL_PARAMETERS

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
        generator_info = self.generator.info if self.generator is not None else {}

        started = time.perf_counter()
        query = self.condense(question, history) if generate else question
        timer.add("condense", started)

        started = time.perf_counter()
        retrieved = self.retrieve(query, k=k, mode=mode, filters=filters)
        timer.add("retrieve", started)

        def finish(result: CitationResult) -> Answer:
            timer.timings["total"] = round(time.perf_counter() - started_total, 4)
            return Answer(
                question=question,
                answer=result.text,
                refused=result.refused,
                supported=result.supported,
                citations=result.citations,
                retrieved=tuple(retrieved),
                timings=dict(timer.timings),
                generator=dict(generator_info),
                invalid_markers=result.invalid_markers,
                language=language,
            )

        if not generate:
            yield finish(CitationResult("", (), (), refused=False))
            return
        if not retrieved:
            # Nothing cleared the score floor: refuse without asking the generator to
            # invent something.
            yield templates.refusal
            yield finish(CitationResult(templates.refusal, (), (), refused=True))
            return
        if self.generator is None:
            raise ValueError("this chain has no generator; pass generate=False")

        started = time.perf_counter()
        prompt = self.build_prompt(question, retrieved)
        timer.add("prompt", started)

        started = time.perf_counter()
        first_token: float | None = None
        pieces: list[str] = []
        for piece in self.generator.stream(
            prompt.messages, max_new_tokens=self.settings.max_new_tokens, stop=_STOP
        ):
            if first_token is None:
                first_token = time.perf_counter()
                timer.timings["first_token"] = round(first_token - started_total, 4)
            pieces.append(piece)
            yield piece
        timer.add("generate", started)

        started = time.perf_counter()
        result = self.citer.cite("".join(pieces), prompt.sources, refusal=templates.refusal)
        timer.add("cite", started)
        if result.invalid_markers:
            logger.info("dropped citation markers with no source: %s", result.invalid_markers)
        yield finish(result)
