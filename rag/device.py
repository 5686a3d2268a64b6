"""The device rules every model stage shares: which torch device, which precision.

Embeddings, reranking, generation and fine-tuning all take the same device setting
(``Settings.device``): ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu``,
``cuda``, ``cuda:N`` or ``mps``. torch is imported only when a setting is resolved, so
importing this module stays cheap.

Example::

    check_device_setting(settings.device)        # at construction: typos fail early
    device = resolve_device(settings.device)     # at load time: "cuda" or "cpu"
    dtype = generation_dtype(device)             # torch.bfloat16 on most GPUs
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_DEVICE_PATTERN = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
_DEVICE_FORMS = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def check_device_setting(device: str) -> None:
    """Validate the form of a device setting without importing torch.

    Args:
        device: the setting to check.

    Raises:
        ValueError: ``device`` is not ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    """
    if not isinstance(device, str) or (device != "auto" and not _DEVICE_PATTERN.match(device)):
        raise ValueError(f"device must be {_DEVICE_FORMS}, got {device!r}")


def resolve_device(device: str) -> str:
    """Turn a device setting into a torch device string.

    Args:
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N``
            or ``mps``.

    Returns:
        The device to use.

    Raises:
        ValueError: ``device`` is not one of the forms above, or names CUDA when
            torch sees no CUDA device.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    check_device_setting(device)
    if is_cuda(device) and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but torch sees no CUDA device; use device='auto' or 'cpu'"
        )
    return device


def is_cuda(device: str) -> bool:
    """Whether a resolved device string names a CUDA GPU (``cuda`` or ``cuda:N``)."""
    return device.startswith("cuda")


def generation_dtype(device: str) -> torch.dtype:
    """The precision a causal LM runs in on a resolved device.

    Half precision on CUDA (bfloat16 where the GPU supports it: no float16 overflow),
    float32 elsewhere.
    """
    import torch

    if is_cuda(device):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
