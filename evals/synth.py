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
from rag.generate import Generator
from rag.prompt import detect_language
from rag.reader import KnowledgeBaseReader
from rag.records import ChatMessage, StoredChunk

_PROMPT = {
    "en": (
        "Passage:\n{text}\n\nWrite one question that the passage answers, and its answer: "
        "a short phrase copied word for word from the passage.\n"
        "Question:"
    ),
    "zh": "段落：\n{text}\n\n根据段落写一个问题，并给出答案：从段落中原文照抄的简短短语。\n问题：",
}
_ANSWER = re.compile(r"(?:^|\n)\s*(?:Answer|答案)\s*[:：]\s*(.+)", re.IGNORECASE)


@dataclass(frozen=True)
class SynthResult:
    """The kept question rows and how many candidates it took."""

    rows: list[dict[str, Any]]
    attempted: int

    @property
    def acceptance(self) -> float:
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
        for chunk, raw in zip(chunks, outputs, strict=True):
            pair = parse_pair(raw)
            if pair is not None and is_checkable(pair[0], pair[1], chunk.text):
                rows.append(
                    {
                        "id": f"synth-{chunk.chunk_id}",
                        "question": pair[0],
                        "answers": [pair[1]],
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


def _generate(generator: Generator, prompts: Sequence[list[ChatMessage]]) -> list[str]:
    batch = getattr(generator, "generate_batch", None)
    if batch is not None:
        return list(batch(prompts, max_new_tokens=64))
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
