"""Synthesize a question set from a knowledge base, for users who have none.

Random chunks are shown to the generator, which writes one question and a short answer
copied from the passage. A pair is kept only when the answer occurs verbatim in the
chunk (so it is checkable) and the question does not give it away; the chunk becomes the
question's gold evidence. The output is the JSONL format ``rag eval run`` reads.

Example::

    result = synthesize(reader, generator, n=200, seed=13)
    write_jsonl(result.rows, Path("my-qa.jsonl"))
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.errors import EvalError
from evals.metrics.answer import STOPWORDS
from rag.generate.protocol import BatchGenerator, Generator
from rag.records import ChatMessage, StoredChunk
from rag.store.reader import KnowledgeBaseReader
from rag.text.language import detect_language

_PROMPT = {
    "en": (
        "Read the passage and write a quiz question about one fact in it, then the answer "
        "copied exactly from the passage.\n\nPassage:\n{text}\n\nReply in exactly this "
        "format:\nQuestion: <question>\nAnswer: <short answer copied from the passage>"
    ),
    "zh": (
        "阅读段落，针对其中一个事实写一个问题，并给出从段落中原文照抄的答案。\n\n段落：\n{text}"
        "\n\n严格按以下格式回答：\n问题：<问题>\n答案：<从段落中照抄的简短答案>"
    ),
}
# Second step, for a question that came without a usable answer: small models often stop
# after the question, or answer in a whole sentence that is then aligned to the passage.
_ANSWER_PROMPT = {
    "en": (
        "Passage:\n{text}\n\nQuestion: {question}\nAnswer with the shortest phrase from "
        "the passage, copied word for word."
    ),
    "zh": "段落：\n{text}\n\n问题：{question}\n请用段落中最短的原文短语回答。",
}
_ANSWER = re.compile(r"(?:^|\n)\s*(?:Answer|答案)\s*[:：]\s*(.+)", re.IGNORECASE)
_QUESTION = re.compile(r"^\s*(?:Question|问题)?\s*[:：]?\s*(.+?[?？])", re.IGNORECASE)
_WORD = re.compile(r"\w+(?:[-'’.]\w+)*")
_MAX_ANSWER_WORDS = 12
# Words that never start or end an answer phrase.
_FILLER = STOPWORDS


@dataclass(frozen=True)
class SynthResult:
    """The kept question rows and how many candidates it took."""

    rows: list[dict[str, Any]]
    attempted: int

    @property
    def acceptance(self) -> float:
        """Share of attempted questions that were kept (0 when none were attempted)."""
        return len(self.rows) / self.attempted if self.attempted else 0.0


def synthesize(
    reader: KnowledgeBaseReader,
    generator: Generator,
    *,
    n: int,
    seed: int = 13,
    batch_size: int = 8,
    min_chunk_chars: int = 200,
    on_batch: Callable[[int, int], None] | None = None,
) -> SynthResult:
    """Up to ``n`` checked question/answer pairs from ``reader``'s knowledge base.

    Each chunk is tried once; candidates run out at three per wanted question.

    Raises:
        ValueError: ``n`` below 1.
        EvalError: the knowledge base has no chunk long enough to ask about.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    sources = reader.sources()
    ids = sorted(reader.chunk_ids_where(sources=sources)) if sources else []
    rng = random.Random(seed)
    rng.shuffle(ids)
    rows: list[dict[str, Any]] = []
    attempted = 0
    budget = ids[: n * 3]
    for start in range(0, len(budget), batch_size * 2):
        if len(rows) >= n:
            break
        looked_up = reader.chunks(budget[start : start + batch_size * 2])
        chunks = [c for c in looked_up.values() if len(c.text) >= min_chunk_chars][:batch_size]
        if not chunks:
            continue
        attempted += len(chunks)
        outputs = _generate(generator, [_messages(c) for c in chunks])
        pairs: list[tuple[StoredChunk, str, str]] = []
        unanswered: list[tuple[StoredChunk, str]] = []
        for chunk, raw in zip(chunks, outputs, strict=True):
            pair = parse_pair(raw)
            if pair is not None and is_checkable(pair[0], pair[1], chunk.text):
                pairs.append((chunk, *pair))
                continue
            question = pair[0] if pair is not None else parse_question(raw)
            if question:
                unanswered.append((chunk, question))
        if unanswered:
            answers = _generate(generator, [_answer_messages(c, q) for c, q in unanswered])
            for (chunk, question), raw in zip(unanswered, answers, strict=True):
                answer = align_answer(raw, chunk.text, question)
                if answer and is_checkable(question, answer, chunk.text):
                    pairs.append((chunk, question, answer))
        for chunk, question, answer in pairs:
            rows.append(
                {
                    "id": f"synth-{chunk.chunk_id}",
                    "question": question,
                    "answers": [answer],
                    "evidence": chunk.text,
                    "source": chunk.source,
                    "chunk_id": chunk.chunk_id,
                }
            )
        if on_batch is not None:
            on_batch(len(rows), attempted)
    if attempted == 0:
        raise EvalError(
            f"knowledge base {reader.name!r} has no chunk of at least {min_chunk_chars} "
            "characters to write questions about"
        )
    return SynthResult(rows[:n], attempted)


def _messages(chunk: StoredChunk) -> list[ChatMessage]:
    language = detect_language(chunk.text)
    return [ChatMessage("user", _PROMPT[language].format(text=chunk.text))]


def _answer_messages(chunk: StoredChunk, question: str) -> list[ChatMessage]:
    language = detect_language(chunk.text)
    template = _ANSWER_PROMPT[language]
    return [ChatMessage("user", template.format(text=chunk.text, question=question))]


def parse_question(raw: str) -> str | None:
    """The first question (a line ending in ``?``) of the generator's text, if any."""
    for line in raw.strip().splitlines():
        found = _QUESTION.match(line)
        if found:
            return found.group(1).strip()
    return None


def align_answer(raw: str, passage: str, question: str) -> str | None:
    """The part of a free-text answer that is copied from the passage, as a short phrase.

    Takes the longest run of the answer's words that occurs in the passage, then the
    longest stretch of it that the question does not already say, without filler words
    at its ends ("Restoring a database takes about 40 minutes" -> "about 40 minutes" for
    "How long does it take to restore a database?"). Chinese answers are kept whole when
    they occur in the passage.
    """
    text = raw.strip().splitlines()[0].strip() if raw.strip() else ""
    text = re.sub(r"^(?:Answer|答案)\s*[:：]\s*", "", text, flags=re.IGNORECASE)
    text = text.strip().strip("\"'“”").rstrip(".。")
    if not text:
        return None
    if detect_language(text) == "zh":
        return text if text in passage else None
    words = _WORD.findall(text)
    passage_words = [w.lower() for w in _WORD.findall(passage)]
    joined = f" {' '.join(passage_words)} "
    best: list[str] = []
    for i in range(len(words)):
        for j in range(len(words), i, -1):
            if j - i <= len(best):
                break
            if f" {' '.join(w.lower() for w in words[i:j])} " in joined:
                best = words[i:j]
                break
    asked = {_stem(w) for w in _WORD.findall(question)}
    # The answer is the longest stretch of it that the question does not already say.
    segments: list[list[str]] = [[]]
    for word in best:
        if _stem(word) in asked:
            segments.append([])
        else:
            segments[-1].append(word)
    trimmed = []
    for segment in segments:
        while segment and segment[0].lower() in _FILLER:
            segment = segment[1:]
        while segment and segment[-1].lower() in _FILLER:
            segment = segment[:-1]
        trimmed.append(segment)
    best = max(trimmed, key=len)
    if not best or len(best) > _MAX_ANSWER_WORDS:
        return None
    # Report the phrase as the passage writes it (case, punctuation between words).
    pattern = r"\W+".join(re.escape(w) for w in best)
    found = re.search(pattern, passage, flags=re.IGNORECASE)
    return found.group(0) if found else None


def _stem(word: str) -> str:
    """A crude English stem, enough to see that "signs" is what "sign" asked about."""
    word = word.lower()
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    # "restore" and "restoring" (or "take" and "takes") meet at "restor" ("tak").
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def _generate(generator: Generator, prompts: Sequence[list[ChatMessage]]) -> list[str]:
    if isinstance(generator, BatchGenerator):
        return generator.generate_batch(prompts, max_new_tokens=64)
    return [generator.generate(p, max_new_tokens=64) for p in prompts]


def parse_pair(raw: str) -> tuple[str, str] | None:
    """``(question, answer)`` from the generator's text, or None if it is not in shape.

    The prompt ends with ``Question:``, so the text starts with the question and carries
    ``Answer:`` (or ``答案：``) on a later line.
    """
    found = _ANSWER.search(raw)
    if found is None:
        return None
    question = raw[: found.start()].strip()
    question = re.sub(r"^(?:Question|问题)\s*[:：]\s*", "", question, flags=re.IGNORECASE)
    question = question.splitlines()[0].strip() if question else ""
    answer = found.group(1).strip().splitlines()[0].strip().strip("\"'“”").rstrip(".。")
    if not question or not answer:
        return None
    return question, answer


def is_checkable(question: str, answer: str, passage: str) -> bool:
    """The answer is copied from the passage and the question does not contain it."""
    squash = " ".join(answer.split()).lower()
    if len(squash) < 2 or len(squash) > 120:
        return False
    if squash not in " ".join(passage.split()).lower():
        return False
    return squash not in question.lower() and (question.endswith("?") or question.endswith("？"))


def write_jsonl(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write question rows, one JSON object a line (UTF-8, Chinese kept readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
