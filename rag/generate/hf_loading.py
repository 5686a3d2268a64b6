"""Loading a causal LM for :class:`~rag.generate.huggingface.HuggingFaceGenerator`.

From a local folder or the Hugging Face cache (never downloading), or from a GGUF file
through its converted copy (:mod:`rag.generate.gguf_cache`); and collecting what
generation needs from the loaded model: context window, end and padding tokens.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rag.errors import GeneratorUnavailableError
from rag.generate.gguf_cache import cache_matches, write_converted_copy

logger = logging.getLogger(__name__)

#: Used when a model's config states no context length.
FALLBACK_CONTEXT_WINDOW = 2048


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """Everything ``warm_up`` loads, set in one assignment so readers see all or nothing."""

    # Any, not Any: transformers' annotations make mypy reject generate() and
    # to() calls that are correct at run time.
    model: Any
    tokenizer: Any
    device: str
    context_window: int
    eos_token_ids: tuple[int, ...]
    pad_token_id: int


def load_pretrained(source: str, dtype: torch.dtype, name: str) -> tuple[Any, Any]:
    """Load a tokenizer and causal LM from a folder or the HF cache, never downloading."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        # OSError covers "not in the HF cache" (LocalEntryNotFoundError) and bad files.
        raise GeneratorUnavailableError(
            f"cannot load generator model {name!r} (looked for {source!r}) without a "
            f"download: {exc}. Give a local Hugging Face model folder or .gguf file, or "
            "download the model into the Hugging Face cache first"
        ) from exc
    return model, tokenizer


def make_loaded(model: Any, tokenizer: Any, device: str) -> LoadedModel:
    """Collect what generation needs from a loaded model: window, end and pad tokens."""
    config = model.config
    window = getattr(config, "max_position_embeddings", None)
    if not isinstance(window, int) or window < 1:
        # Tokenizers without a limit report a huge sentinel (1e30).
        tokenizer_max = getattr(tokenizer, "model_max_length", None)
        window = (
            tokenizer_max
            if isinstance(tokenizer_max, int) and 0 < tokenizer_max < 1_000_000
            else FALLBACK_CONTEXT_WINDOW
        )
    eos: list[int] = []
    # Chat models often end a turn with a token (<|im_end|>) other than the
    # generation config's end-of-text: either one ends the answer.
    for candidate in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        values = candidate if isinstance(candidate, list) else [candidate]
        eos.extend(v for v in values if isinstance(v, int) and v not in eos)
    pad = tokenizer.pad_token_id
    if not isinstance(pad, int):
        pad = model.generation_config.pad_token_id
    if not isinstance(pad, int):
        if not eos:
            raise GeneratorUnavailableError(
                "the generator model defines neither an end-of-sequence nor a padding token"
            )
        pad = eos[0]
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=device,
        context_window=window,
        eos_token_ids=tuple(eos),
        pad_token_id=pad,
    )


def load_gguf(gguf: Path, cache: Path | None, name: str) -> tuple[Any, Any, str]:
    """Load a GGUF model in float32 on the CPU, from its converted copy when it matches.

    Args:
        gguf: the ``.gguf`` file.
        cache: the folder of its converted copy (written after a conversion), or None.
        name: the model as the user gave it, for messages.

    Returns:
        The model, its tokenizer, and where they came from (for the log).

    Raises:
        GeneratorUnavailableError: the gguf package is missing or transformers cannot
            read this GGUF file.
    """
    if cache is not None and cache_matches(cache, gguf):
        try:
            model, tokenizer = load_pretrained(str(cache), torch.float32, name)
        except GeneratorUnavailableError as exc:
            # A damaged copy (disk full, edited by hand) is rebuilt from the GGUF file.
            logger.warning("ignoring the converted copy in %s: %s", cache, exc)
        else:
            return model, tokenizer, f"converted copy {cache}"
    if importlib.util.find_spec("gguf") is None:
        raise GeneratorUnavailableError(
            f"loading {gguf.name} needs the gguf package, which is not installed; "
            "install it with `pip install gguf`"
        )
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, local_files_only=True
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, local_files_only=True, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise GeneratorUnavailableError(
            f"cannot load GGUF model {str(gguf)!r}: {exc}. transformers reads only some "
            "architectures and quantizations from GGUF; convert it to a Hugging Face "
            "folder or serve it with llama.cpp and use the openai backend"
        ) from exc
    logger.info("converted %s in %.1f s", gguf, time.perf_counter() - started)
    if cache is not None:
        write_converted_copy(model, tokenizer, cache, gguf)
    return model, tokenizer, str(gguf)
