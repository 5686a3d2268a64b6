"""Stopping criteria for ``transformers`` generation: stop sequences and cancellation."""

from __future__ import annotations

import threading
from typing import Any

import torch
from transformers import StoppingCriteria


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
