"""Decoding pieces for ``transformers`` generation: chat prompt, settings, stopping.

Used by :class:`~rag.generate.huggingface.HuggingFaceGenerator` for single, streamed and
batched generation alike.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import torch
from transformers import GenerationConfig, StoppingCriteria

from rag.errors import GenerationError
from rag.generate.hf_loading import LoadedModel
from rag.records import ChatMessage

logger = logging.getLogger(__name__)


def chat_text(tokenizer: Any, messages: Sequence[ChatMessage], name: str) -> str:
    """The prompt as the model's chat template writes it, ready for the answer.

    Args:
        tokenizer: the model's tokenizer.
        messages: the chat prompt.
        name: the model as the user gave it, for messages.

    Raises:
        GenerationError: the tokenizer has no chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise GenerationError(
            f"model {name!r} has no chat template in its tokenizer, so chat "
            "messages cannot be formatted for it; use an instruct/chat model or add a "
            "chat_template to its tokenizer_config.json"
        )
    text = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        add_generation_prompt=True,
        tokenize=False,
    )
    return str(text)


def generation_config(
    loaded: LoadedModel, prompt_tokens: int, wanted: int, temperature: float, name: str
) -> GenerationConfig:
    """Decoding settings for a prompt of ``prompt_tokens``, checked against the window.

    Args:
        loaded: the loaded model (window, end and padding tokens).
        prompt_tokens: the prompt's length in tokens.
        wanted: new tokens asked for; cut (with a warning) to what the window leaves.
        temperature: 0 decodes greedily, else samples at this temperature.
        name: the model as the user gave it, for messages.

    Raises:
        GenerationError: the prompt alone fills the context window.
    """
    room = loaded.context_window - prompt_tokens
    if room < 1:
        raise GenerationError(
            f"the prompt takes {prompt_tokens} tokens but model {name!r} "
            f"accepts {loaded.context_window} in all; retrieve fewer or shorter sources "
            "(top_k, chunk_size) or shorten the question"
        )
    if wanted > room:
        logger.warning(
            "answer length cut from %d to %d tokens to fit the context window of %s",
            wanted,
            room,
            name,
        )
    sampling = temperature > 0
    # transformers leaves GenerationConfig.__init__ unannotated (it takes **kwargs).
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=min(wanted, room),
        do_sample=sampling,
        eos_token_id=list(loaded.eos_token_ids),
        pad_token_id=loaded.pad_token_id,
    )
    if sampling:
        # Only set when sampling: greedy decoding with a temperature set warns.
        config.temperature = temperature
    return config


class StopCriteria(StoppingCriteria):
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
        """Tell ``generate`` whether to stop (one flag per row, all the same).

        Returns:
            True when the reader cancelled or the new text holds a stop sequence.
        """
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


class BatchStopCriteria(StoppingCriteria):
    """Per-row stop check for batched generation.

    A row is done once its new text holds a stop sequence; rows that are done are padded
    while the others go on.
    """

    def __init__(self, tokenizer: Any, prompt_length: int, stop: tuple[str, ...]) -> None:
        self._tokenizer = tokenizer
        self._prompt_length = prompt_length
        self._stop = stop

    def __call__(
        self, input_ids: torch.LongTensor, scores: Any, **kwargs: object
    ) -> torch.BoolTensor:
        """Tell ``generate`` which rows are done.

        Returns:
            One flag per row: True once that row's new text holds a stop sequence.
        """
        texts = self._tokenizer.batch_decode(
            input_ids[:, self._prompt_length :], skip_special_tokens=True
        )
        flags = [any(s in text for s in self._stop) for text in texts]
        result: torch.BoolTensor = torch.tensor(  # type: ignore[assignment]
            flags, dtype=torch.bool, device=input_ids.device
        )
        return result
