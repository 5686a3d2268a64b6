r"""What every generator backend shares: argument checks, stop sequences, token estimates.

Backends check ``generate``/``stream`` arguments with :func:`check_generation_args`, cut
whole answers with :func:`cut_at_stop` and streamed ones with :class:`StopSequenceFilter`
(a stop sequence may span several pieces), and remote backends estimate token counts
with :func:`estimate_tokens`.

Example::

    messages, max_new, stops = check_generation_args(messages, None, ["\n\n"])
    cut_at_stop("Answer: 42\n\nQuestion:", stops)   # "Answer: 42"
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.records import ChatMessage
from rag.text.language import WIDE_CHAR


def check_generation_args(
    messages: Sequence[ChatMessage], max_new_tokens: int | None, stop: Sequence[str]
) -> tuple[list[ChatMessage], int | None, tuple[str, ...]]:
    """Validate the arguments of ``generate``/``stream`` at the boundary.

    Returns:
        The messages as a list, ``max_new_tokens`` unchanged, and ``stop`` as a tuple.

    Raises:
        TypeError: ``messages`` is not a sequence of :class:`ChatMessage`, or ``stop`` is
            a single string or holds a non-string.
        ValueError: ``messages`` is empty, ``max_new_tokens`` is not a positive integer,
            or a stop sequence is empty.
    """
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise TypeError(
            f"messages must be a sequence of ChatMessage, got {type(messages).__name__}"
        )
    if not messages:
        raise ValueError("messages must hold at least one ChatMessage, got an empty sequence")
    for i, message in enumerate(messages):
        if not isinstance(message, ChatMessage):
            raise TypeError(f"messages[{i}] must be a ChatMessage, got {type(message).__name__}")
    if max_new_tokens is not None and (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise ValueError(
            f"max_new_tokens must be a positive integer or None, got {max_new_tokens!r}"
        )
    if isinstance(stop, str):
        raise TypeError(f"stop must be a sequence of strings, not a single string ({stop!r})")
    stops = tuple(stop)
    for i, sequence in enumerate(stops):
        if not isinstance(sequence, str):
            raise TypeError(f"stop[{i}] must be a string, got {type(sequence).__name__}")
        if not sequence:
            raise ValueError(f"stop[{i}] must be a non-empty string")
    return list(messages), max_new_tokens, stops


def check_sampling_args(max_new_tokens: int, temperature: float) -> None:
    """Validate a backend's default generation length and temperature.

    Raises:
        ValueError: ``max_new_tokens`` is not a positive integer or ``temperature`` is
            not a number in [0, 2].
    """
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0.0 <= temperature <= 2.0
    ):
        raise ValueError(f"temperature must be a number in [0, 2], got {temperature!r}")


def first_stop_index(text: str, stop: Sequence[str]) -> int | None:
    """Where the earliest stop sequence starts in ``text``, or None when none occurs."""
    found = [index for index in (text.find(s) for s in stop) if index >= 0]
    return min(found) if found else None


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    r"""``text`` up to (not including) the first stop sequence in it.

    Example::

        cut_at_stop("Answer: 42\n\nQuestion:", ["\n\n"])   # "Answer: 42"
    """
    index = first_stop_index(text, stop)
    return text if index is None else text[:index]


class StopSequenceFilter:
    """Cuts streamed text at the first stop sequence, which may span several pieces.

    Only the last ``len(longest stop) - 1`` characters are held back: any stop sequence
    that starts earlier would already lie whole inside the text seen so far. So the
    pieces joined equal :func:`cut_at_stop` of the whole text.

    Example::

        stops = StopSequenceFilter(["END"])
        out = [stops.feed(p) for p in ["The answer E", "ND ignored"]] + [stops.flush()]
        "".join(out)      # "The answer "
        stops.stopped     # True: the producer can stop generating
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = tuple(stop)
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self._buffer = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add the next piece; returns the text that is now safe to pass on (maybe "")."""
        if self.stopped:
            return ""
        self._buffer += piece
        index = first_stop_index(self._buffer, self._stop)
        if index is not None:
            self.stopped = True
            released, self._buffer = self._buffer[:index], ""
            return released
        keep_from = len(self._buffer) - self._hold
        if keep_from <= 0:
            return ""
        released, self._buffer = self._buffer[:keep_from], self._buffer[keep_from:]
        return released

    def flush(self) -> str:
        """The held-back tail once the stream has ended ("" after a stop sequence)."""
        released, self._buffer = ("" if self.stopped else self._buffer), ""
        return released


def estimate_tokens(text: str) -> int:
    """Estimate how many tokens ``text`` takes without the model's tokenizer.

    One token per CJK character and one per three other characters (rounded up), which
    is close for English BPE vocabularies and errs on the high side for Chinese, so a
    prompt budgeted with it fits.

    Example::

        estimate_tokens("The signing key")   # 5
        estimate_tokens("签名密钥")           # 4
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    cjk = len(WIDE_CHAR.findall(text))
    return cjk + (len(text) - cjk + 2) // 3
