"""The local Hugging Face generator: any causal LM folder or GGUF file.

:class:`HuggingFaceGenerator` runs a chat model with ``transformers`` in the precision
:func:`rag.device.generation_dtype` picks (bfloat16 or float16 on CUDA, float32 on the
CPU). Nothing is downloaded: models come from a local folder, a ``.gguf`` file (its
converted copy is cached, see :mod:`rag.generate.gguf_cache`) or the Hugging Face cache.
The embedded default model is a subclass (:mod:`rag.generate.embedded`).

Example::

    generator = HuggingFaceGenerator("/models/Qwen2.5-0.5B-Instruct", device="auto")
    generator.warm_up()
    generator.generate([ChatMessage("user", "Say hi")], max_new_tokens=8)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

# Generation must never reach a model hub; the environment variable covers libraries
# that read it when first imported, ``local_files_only`` below covers the rest.
os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from transformers import (
    GenerationConfig,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from rag.device import generation_dtype, resolve_device
from rag.errors import GenerationError, GeneratorUnavailableError
from rag.generate.hf_decoding import (
    BatchStopCriteria,
    StopCriteria,
    chat_text,
    generation_config,
)
from rag.generate.hf_loading import LoadedModel, load_gguf, load_pretrained, make_loaded
from rag.generate.stops import (
    StopSequenceFilter,
    check_generation_args,
    check_sampling_args,
    cut_at_stop,
)
from rag.records import ChatMessage

logger = logging.getLogger(__name__)


class HuggingFaceGenerator:
    r"""A :class:`~rag.generate.protocol.Generator` running a local causal LM with ``transformers``.

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
        for piece in generator.stream(messages, stop=["\n"]):
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
        self._loaded: LoadedModel | None = None
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
            [StopCriteria(loaded.tokenizer, prompt_length, stops, threading.Event())]
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
        texts = [chat_text(loaded.tokenizer, m, self._model_spec) for m, _, _ in checked]
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
        config = self._config(loaded, prompt_length, checked[0][1])
        criteria = StoppingCriteriaList()
        if stops:
            criteria.append(BatchStopCriteria(tokenizer, prompt_length, stops))
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

    @property
    def is_loaded(self) -> bool:
        """Whether the model is in memory already (nothing is loaded to answer this)."""
        return self._loaded is not None

    @property
    def cache_dir(self) -> Path | None:
        """Where a ``.gguf`` model's converted copy is kept; None when none is."""
        return self._cache_dir

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
            max_new_tokens: default answer length in tokens.
            temperature: 0 for greedy decoding, else the sampling temperature (up to 2).

        Returns:
            A generator that is already warm; :meth:`warm_up` loads nothing.
        """
        device = str(next(model.parameters()).device)
        generator = cls(name, device="cpu", max_new_tokens=max_new_tokens, temperature=temperature)
        generator._device_setting = device
        model.eval()
        generator._loaded = make_loaded(model, tokenizer, device)
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
            self._loaded = make_loaded(model, tokenizer, device)
            logger.info(
                "loaded generator %s from %s on %s in %.1f s",
                self._model_spec,
                origin,
                device,
                time.perf_counter() - started,
            )

    def _ready(self) -> LoadedModel:
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
        dtype = generation_dtype(device)
        gguf = self._gguf_path()
        if gguf is None:
            local = Path(self._model_spec).expanduser()
            source = str(local.resolve()) if local.is_dir() else self._model_spec
            model, tokenizer = load_pretrained(source, dtype, self._model_spec)
            return model.to(device), tokenizer, source
        if not gguf.is_file():
            raise GeneratorUnavailableError(
                f"generator model file {str(gguf)!r} does not exist; give the path of a "
                ".gguf file or of a local Hugging Face model folder"
            )
        model, tokenizer, origin = load_gguf(gguf, self._cache_dir, self._model_spec)
        # Converted and cached in float32 on the CPU; only now moved and cast, so the
        # cached copy is the same whichever device loaded it first.
        return model.to(device=device, dtype=dtype), tokenizer, origin

    # -- generation --

    def _prepare(
        self, loaded: LoadedModel, messages: list[ChatMessage], max_new_tokens: int | None
    ) -> tuple[dict[str, torch.Tensor], GenerationConfig]:
        """Tokenize the chat prompt and build the generation settings for one call."""
        text = chat_text(loaded.tokenizer, messages, self._model_spec)
        encoded = loaded.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        inputs = {
            "input_ids": encoded["input_ids"].to(loaded.device),
            "attention_mask": encoded["attention_mask"].to(loaded.device),
        }
        prompt_tokens = int(inputs["input_ids"].shape[1])
        return inputs, self._config(loaded, prompt_tokens, max_new_tokens)

    def _config(
        self, loaded: LoadedModel, prompt_tokens: int, max_new_tokens: int | None
    ) -> GenerationConfig:
        wanted = self._max_new_tokens if max_new_tokens is None else max_new_tokens
        return generation_config(loaded, prompt_tokens, wanted, self._temperature, self._model_spec)

    def _stream(
        self,
        loaded: LoadedModel,
        inputs: dict[str, torch.Tensor],
        config: GenerationConfig,
        stop: tuple[str, ...],
    ) -> Generator[str, None, None]:
        streamer = TextIteratorStreamer(
            loaded.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        cancel = threading.Event()
        criteria = StoppingCriteriaList(
            [StopCriteria(loaded.tokenizer, int(inputs["input_ids"].shape[1]), stop, cancel)]
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
                    streamer.end()  # type: ignore[no-untyped-call]  # unannotated upstream

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
