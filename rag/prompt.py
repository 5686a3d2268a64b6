"""Prompts with numbered sources, packed to the generator's window by token count.

Templates live in ``rag/prompts/<language>/`` (one set per language: English and
Chinese), so wording is edited without touching code.

Example::

    templates = PromptTemplates.load("en")
    built = PromptBuilder(templates).build("How is the key rotated?", chunks,
                                           count_tokens=generator.count_tokens,
                                           budget_tokens=2048)
    generator.generate(built.messages)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePath

from rag.records import ChatMessage, RetrievedChunk

# The one language rule lives in rag.text.language; re-exported for existing importers.

_TEMPLATES_DIR = Path(__file__).resolve().parent / "prompts"
LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class PromptTemplates:
    """The template set of one language."""

    language: str
    user: str
    source: str
    refusal: str
    condense: str

    @classmethod
    def load(cls, language: str) -> PromptTemplates:
        """Read the templates of ``language`` (``en`` or ``zh``) from ``rag/prompts``."""
        return _load_templates(language)


@cache
def _load_templates(language: str) -> PromptTemplates:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    folder = _TEMPLATES_DIR / language

    def read(name: str) -> str:
        return (folder / f"{name}.txt").read_text(encoding="utf-8").strip()

    return PromptTemplates(
        language=language,
        user=read("user"),
        source=read("source"),
        refusal=read("refusal"),
        condense=read("condense"),
    )


@dataclass(frozen=True)
class BuiltPrompt:
    """Messages for the generator and the chunks they number: ``sources[n-1]`` is ``[n]``."""

    messages: tuple[ChatMessage, ...]
    sources: tuple[RetrievedChunk, ...]
    prompt_tokens: int
    dropped: int


class PromptBuilder:
    """Builds the answer prompt: numbered sources (best first), the rules, the question.

    Everything goes in one user message with the instruction after the sources and
    right before the question: measured on the embedded SmolLM2-135M, a separate
    system message made it list the sources instead of answering.

    Sources are added in rank order while they fit ``budget_tokens`` (counted with the
    generator's tokenizer); a source that does not fit whole is cut at a line or
    sentence end if at least a useful part fits, so the best source always gets in.
    """

    def __init__(self, templates: PromptTemplates) -> None:
        self.templates = templates

    def source_block(self, n: int, chunk: RetrievedChunk, text: str | None = None) -> str:
        """One numbered source: ``[n] title (page, heading)`` then its text."""
        location_parts = []
        if chunk.page is not None:
            location_parts.append(
                ("第 %d 页" if self.templates.language == "zh" else "page %d") % chunk.page
            )
        if chunk.heading:
            location_parts.append(chunk.heading)
        location = f", {', '.join(location_parts)}" if location_parts else ""
        return self.templates.source.format(
            n=n, title=source_title(chunk.source), location=location, text=text or chunk.text
        )

    def build(
        self,
        question: str,
        chunks: Sequence[RetrievedChunk],
        *,
        count_tokens: Callable[[str], int],
        budget_tokens: int,
    ) -> BuiltPrompt:
        """Pack sources into the budget and return the chat messages."""
        if budget_tokens <= 0:
            raise ValueError(f"budget_tokens must be positive, got {budget_tokens}")
        refusal = self.templates.refusal
        empty_user = self.templates.user.format(sources="", question=question, refusal=refusal)
        used = count_tokens(empty_user) + 16  # chat-template overhead
        blocks: list[str] = []
        kept: list[RetrievedChunk] = []
        for chunk in chunks:
            n = len(kept) + 1
            block = self.source_block(n, chunk)
            cost = count_tokens(block) + 2
            if used + cost > budget_tokens:
                room = budget_tokens - used - count_tokens(self.source_block(n, chunk, " ")) - 2
                if kept or room < 32:
                    break
                block = self.source_block(n, chunk, _truncate(chunk.text, room, count_tokens))
                cost = count_tokens(block) + 2
            blocks.append(block)
            kept.append(chunk)
            used += cost
        user = self.templates.user.format(
            sources="\n\n".join(blocks), question=question, refusal=refusal
        )
        messages = (ChatMessage("user", user),)
        return BuiltPrompt(
            messages=messages,
            sources=tuple(kept),
            prompt_tokens=used,
            dropped=len(chunks) - len(kept),
        )

    def condense_messages(
        self, question: str, history: Sequence[ChatMessage]
    ) -> tuple[ChatMessage, ...]:
        """Messages asking the generator to make a follow-up question stand alone."""
        lines = []
        for message in history[-6:]:
            who = {"user": "User", "assistant": "Assistant"}.get(message.role)
            if who is None:
                continue
            if self.templates.language == "zh":
                who = "用户" if message.role == "user" else "助手"
            lines.append(f"{who}: {message.content.strip()[:600]}")
        prompt = self.templates.condense.format(history="\n".join(lines), question=question)
        return (ChatMessage("user", prompt),)


def source_title(source: str) -> str:
    """A readable title for a source path or URI: the file name without its folder."""
    if "://" in source:
        return source.split("://", 1)[1] or source
    return PurePath(source).name or source


def _truncate(text: str, tokens: int, count_tokens: Callable[[str], int]) -> str:
    """The longest prefix of ``text`` within ``tokens``, cut at a sentence or line end."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(text[:middle]) <= tokens:
            low = middle
        else:
            high = middle - 1
    prefix = text[:low]
    cut = max(prefix.rfind(mark) for mark in ("\n", ". ", "。", "！", "？", "! ", "? "))
    if cut > len(prefix) // 2:
        prefix = prefix[: cut + 1]
    return prefix.rstrip() + " …"
