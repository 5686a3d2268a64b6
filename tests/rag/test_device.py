"""The device rules shared by embeddings, reranking and generation."""

from __future__ import annotations

import pytest
import torch

from rag.device import check_device_setting, generation_dtype, is_cuda, resolve_device


@pytest.mark.parametrize("device", ["auto", "cpu", "mps", "cuda", "cuda:0", "cuda:12"])
def test_valid_settings_pass_the_form_check(device: str) -> None:
    check_device_setting(device)


@pytest.mark.parametrize("device", ["", "gpu", "CUDA", "cuda:", "cuda:x", "cpu ", None, 0])
def test_bad_settings_name_the_parameter_and_value(device: object) -> None:
    with pytest.raises(ValueError, match="device must be"):
        check_device_setting(device)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device must be"):
        resolve_device(device)  # type: ignore[arg-type]


def test_auto_picks_cuda_only_when_torch_sees_it() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_naming_a_missing_gpu_fails_with_advice() -> None:
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda:0")


def test_cuda_detection_and_generation_precision() -> None:
    assert is_cuda("cuda") and is_cuda("cuda:1")
    assert not is_cuda("cpu") and not is_cuda("mps")
    assert generation_dtype("cpu") is torch.float32
    if torch.cuda.is_available():
        assert generation_dtype("cuda") in (torch.bfloat16, torch.float16)
