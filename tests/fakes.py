"""Deterministic, typed fakes for tests (the product is also tested on real models)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt


class HashEmbedder:
    """Embeds text as a normalised vector seeded by its hash: equal texts, equal vectors."""

    def __init__(self, dimension: int = 16, model_name: str = "fake-hash") -> None:
        self._dimension = dimension
        self._model_name = model_name
        self.calls = 0

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dimension(self) -> int:
        return self._dimension

    def _one(self, text: str) -> npt.NDArray[np.float32]:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
        vector = np.random.default_rng(seed).standard_normal(self._dimension).astype(np.float32)
        return vector / np.linalg.norm(vector)

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return np.stack([self._one(t) for t in texts])

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self._one(text)


class ScriptedGenerator:
    """Replies with scripted texts in order (the last one repeats); records what it saw."""

    def __init__(self, *replies: str, context_window: int = 2048) -> None:
        self.replies = list(replies) or [""]
        self.seen: list[list[object]] = []
        self._context_window = context_window

    @property
    def info(self) -> dict[str, str]:
        return {"backend": "scripted", "model": "script"}

    @property
    def parameter_count(self) -> int | None:
        return None

    def warm_up(self) -> None:
        """Nothing to load."""

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, text: str) -> int:
        return max(1, len(text.split()))

    def _next(self) -> str:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def generate(
        self,
        messages: Sequence[object],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> str:
        self.seen.append(list(messages))
        return self._next()

    def stream(
        self,
        messages: Sequence[object],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        self.seen.append(list(messages))
        text = self._next()
        for start in range(0, len(text), 7):
            yield text[start : start + 7]


class LookupGenerator:
    """A deterministic reader that is right whenever it can be.

    Given the RAG prompt it answers a known question with its reference answer and the
    number of the first source that holds it, and refuses (with the template's sentence)
    when no source does; without sources (closed-book) it says it does not know. It
    records every prompt it saw.
    """

    REFUSAL = "The sources do not contain the answer to this question."

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.seen: list[list[object]] = []

    @property
    def info(self) -> dict[str, str]:
        return {"backend": "lookup", "model": "oracle"}

    @property
    def parameter_count(self) -> int | None:
        return None

    def warm_up(self) -> None:
        """Nothing to load."""

    @property
    def context_window(self) -> int:
        return 4096

    def count_tokens(self, text: str) -> int:
        return max(1, len(text.split()))

    def generate(
        self,
        messages: Sequence[object],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> str:
        self.seen.append(list(messages))
        content = str(getattr(messages[-1], "content", ""))
        question = next((q for q in self.answers if q in content), None)
        blocks = re.split(r"^\[(\d+)\] ", content, flags=re.MULTILINE)
        sources = dict(zip(blocks[1::2], blocks[2::2], strict=True))
        if not sources:
            return "I don't know."
        if question is None:
            return self.REFUSAL
        answer = self.answers[question]
        for number, text in sources.items():
            if answer in text:
                return f"{answer} [{number}]"
        return self.REFUSAL

    def stream(
        self,
        messages: Sequence[object],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        yield self.generate(messages, max_new_tokens=max_new_tokens, stop=stop)
