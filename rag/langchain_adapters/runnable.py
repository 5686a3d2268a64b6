"""The RAG chain as an LCEL ``Runnable``: a question in, the answer as a dict out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, get_args

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import run_in_executor

from rag.config import RetrievalMode
from rag.langchain_adapters.checks import check_k, reject_unknown_kwargs
from rag.records import Answer, ChatMessage

_RETRIEVAL_MODES: tuple[str, ...] = get_args(RetrievalMode)

#: What :class:`RagChainRunnable` takes: a question, or {"question": ..., "history": [...]}.
RagChainInput = str | Mapping[str, Any]
#: What it returns: :func:`answer_to_dict` of the chain's ``Answer``.
RagChainOutput = dict[str, Any]


class AnswerChain(Protocol):
    """What :class:`RagChainRunnable` wraps: ``rag.chain.RagChain`` or a test double."""

    def answer(
        self,
        question: str,
        *,
        history: Sequence[ChatMessage] = (),
        k: int | None = None,
        mode: RetrievalMode | None = None,
    ) -> Answer:
        """Answer a question."""
        ...

    def stream(
        self,
        question: str,
        *,
        history: Sequence[ChatMessage] = (),
        k: int | None = None,
        mode: RetrievalMode | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the answer's text pieces, then the final ``Answer``."""
        ...


def answer_to_dict(answer: Answer) -> RagChainOutput:
    """An ``Answer`` as plain JSON types (``dataclasses.asdict``, tuples as lists)."""
    converted = _jsonable(asdict(answer))
    if not isinstance(converted, dict):  # pragma: no cover - asdict returns a dict
        raise TypeError("answer did not convert to a dict")
    return converted


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class _Question:
    text: str
    history: tuple[ChatMessage, ...]


_LANGCHAIN_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


def _history_message(item: Any, index: int) -> ChatMessage:
    if isinstance(item, ChatMessage):
        return item
    if isinstance(item, BaseMessage):
        role = _LANGCHAIN_ROLES.get(item.type)
        if role is None:
            raise ValueError(
                f"history[{index}] is a {item.type!r} message; only human, ai and system "
                "messages can be history"
            )
        return ChatMessage(role=role, content=item.text)
    if isinstance(item, Mapping):
        unknown = set(item) - {"role", "content"}
        if unknown or not isinstance(item.get("content"), str):
            raise ValueError(
                f"history[{index}] must be {{'role': ..., 'content': str}}, got {dict(item)!r}"
            )
        return ChatMessage(role=str(item.get("role")), content=item["content"])
    raise TypeError(
        f"history[{index}] must be a ChatMessage, a LangChain message or a "
        f"{{'role', 'content'}} dict, got {type(item).__name__}"
    )


def _parse_input(value: RagChainInput) -> _Question:
    history_value: Any
    if isinstance(value, str):
        question, history_value = value, ()
    elif isinstance(value, Mapping):
        unknown = set(value) - {"question", "history"}
        if unknown:
            raise ValueError(
                f"input has unknown keys {sorted(unknown)}; use 'question' and 'history'"
            )
        if "question" not in value:
            raise ValueError("input must have a 'question'")
        question = value["question"]
        history_value = value.get("history") or ()
    else:
        raise TypeError(
            f"input must be a question string or a dict with 'question', got {type(value).__name__}"
        )
    if not isinstance(question, str):
        raise TypeError(f"question must be a string, got {type(question).__name__}")
    if not question.strip():
        raise ValueError("question must not be empty")
    if isinstance(history_value, str | bytes) or not isinstance(history_value, Sequence):
        raise TypeError(f"history must be a list of messages, got {type(history_value).__name__}")
    history = tuple(_history_message(m, i) for i, m in enumerate(history_value))
    return _Question(question, history)


class RagChainRunnable(Runnable[RagChainInput, RagChainOutput]):
    """The RAG chain as an LCEL runnable: composes with ``|``, batches, streams.

    Input is a question string or ``{"question": str, "history": [...]}`` where history
    items are :class:`~rag.records.ChatMessage`, LangChain messages or
    ``{"role", "content"}`` dicts. ``invoke`` returns :func:`answer_to_dict` of the
    ``Answer``. ``stream`` yields the answer's text pieces as they are generated, then
    that dict; composed in a sequence, the next step receives the final dict (LCEL adds
    up the text pieces and lets the dict, which cannot be added to them, replace them).

    Args:
        chain: a :class:`rag.chain.RagChain` (or anything with its ``answer``/``stream``).
        k: chunks to retrieve per question; None uses the chain's settings.
        mode: ``dense``, ``bm25`` or ``hybrid``; None uses the chain's settings.

    Example::

        runnable = RagChainRunnable(Platform(settings).chain("handbook"))
        answer = runnable.invoke({"question": "And on GPU?", "history": history})
        text = (runnable | (lambda a: a["answer"])).invoke("How are vectors stored?")
        for item in runnable.stream("How are vectors stored?"):
            print(item if isinstance(item, str) else item["citations"])
    """

    def __init__(
        self, chain: AnswerChain, *, k: int | None = None, mode: RetrievalMode | None = None
    ) -> None:
        if k is not None:
            check_k(k)
        if mode is not None and mode not in _RETRIEVAL_MODES:
            raise ValueError(f"mode must be one of {list(_RETRIEVAL_MODES)} or None, got {mode!r}")
        self.chain = chain
        self.k = k
        self.mode = mode

    def invoke(
        self, input: RagChainInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> RagChainOutput:
        """Answer one question; returns the ``Answer`` as a dict."""
        reject_unknown_kwargs(kwargs, "RagChainRunnable.invoke")
        return self._call_with_config(self._answer, input, config)

    def _answer(self, value: RagChainInput) -> RagChainOutput:
        question = _parse_input(value)
        answer = self.chain.answer(
            question.text, history=question.history, k=self.k, mode=self.mode
        )
        return answer_to_dict(answer)

    # The stream deliberately yields text pieces before the final dict, so its item type
    # is wider than invoke's output; LCEL's accumulation makes downstream steps (and the
    # traced run output) see only the final dict.
    def stream(  # type: ignore[override]
        self, input: RagChainInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[str | RagChainOutput]:
        """Yield the answer's text pieces, then the ``Answer`` as a dict."""
        reject_unknown_kwargs(kwargs, "RagChainRunnable.stream")
        yield from self.transform(iter([input]), config)

    def transform(  # type: ignore[override]
        self,
        input: Iterator[RagChainInput],
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Iterator[str | RagChainOutput]:
        """Stream the answer to the question an upstream step produced."""
        reject_unknown_kwargs(kwargs, "RagChainRunnable.transform")
        outputs: Iterator[Any] = self._transform_stream_with_config(
            input, self._stream_answer, config
        )
        yield from outputs

    def _stream_answer(self, inputs: Iterator[RagChainInput]) -> Iterator[Any]:
        question = _parse_input(_gather(inputs))
        for item in self.chain.stream(
            question.text, history=question.history, k=self.k, mode=self.mode
        ):
            yield answer_to_dict(item) if isinstance(item, Answer) else item

    async def astream(  # type: ignore[override]
        self, input: RagChainInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[str | RagChainOutput]:
        """:meth:`stream` without blocking the event loop (the chain runs in a thread)."""
        reject_unknown_kwargs(kwargs, "RagChainRunnable.astream")
        iterator = self.stream(input, config)
        while True:
            # Each step runs in a worker thread: generation is synchronous and slow. The
            # stream never yields None, so None marks its end.
            item: str | RagChainOutput | None = await run_in_executor(config, next, iterator, None)
            if item is None:
                return
            yield item


def _gather(inputs: Iterator[RagChainInput]) -> RagChainInput:
    """One question from a streamed input: string pieces join, a dict is taken whole."""
    items = list(inputs)
    if not items:
        raise ValueError("RagChainRunnable received no input")
    if all(isinstance(item, str) for item in items):
        return "".join(str(item) for item in items)
    return items[-1]
