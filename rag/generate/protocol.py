"""The interfaces every text generator shares.

:class:`Generator` is what the chain, the evaluations and the entry points need:
``generate`` and ``stream`` a chat prompt, count tokens, and ``warm_up`` the model before
the first question. :class:`BatchGenerator` is the optional extra of backends that can
answer several prompts at once; callers test for it with ``isinstance``.

Example::

    if isinstance(generator, BatchGenerator):
        answers = generator.generate_batch(prompts, max_new_tokens=64)
    else:
        answers = [generator.generate(p, max_new_tokens=64) for p in prompts]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from rag.records import ChatMessage


@runtime_checkable
class Generator(Protocol):
    """Turns a chat prompt into text, whole or as a stream of pieces.

    Under greedy decoding (temperature 0) ``"".join(stream(m)) == generate(m)``.
    """

    @property
    def info(self) -> dict[str, str]:
        """What produced the text: at least ``backend`` and ``model``."""
        ...

    @property
    def context_window(self) -> int:
        """Tokens the model accepts, prompt and generated text together."""
        ...

    @property
    def parameter_count(self) -> int | None:
        """Number of model weights for local models (may load the model); None for remote."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in the model's prompt (estimated for remote models)."""
        ...

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> str:
        """The whole answer to ``messages``, cut before the first stop sequence."""
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        """The answer as text pieces in order, as the model produces them."""
        ...

    def warm_up(self) -> None:
        """Load what the first call would load (idempotent); later calls return at once."""
        ...


@runtime_checkable
class BatchGenerator(Protocol):
    """A generator that answers several prompts in one pass (local Hugging Face models).

    Kept apart from :class:`Generator` so ``isinstance(g, BatchGenerator)`` only looks
    for the method and never touches properties that load a model.
    """

    def generate_batch(
        self,
        prompts: Sequence[Sequence[ChatMessage]],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> list[str]:
        """One answer per prompt, in order, each cut before the first stop sequence."""
        ...
