"""Fine-tuning a copy of the generator: argument checks, and LoRA and full training of a
random-weight 2-layer Llama (seconds on a CPU) through the public entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evals.datasets import EvalDocument, QAExample
from evals.errors import StrategyError
from evals.finetune import FineTuneConfig, fine_tune
from rag.records import ChatMessage
from tests.rag.generate.test_generate import build_tiny_llama

DOCUMENTS = (
    EvalDocument(
        "keys",
        "Signing keys",
        "The signing key is rotated every 90 days. How often is the signing key rotated? "
        "You answer briefly from the sources. " * 3,
    ),
)
TRAIN = (
    QAExample("q1", "How often is the signing key rotated?", ("every 90 days",)),
    QAExample("q2", "What is rotated?", ("The signing key",)),
    QAExample("q3", "What is on Mars?", (), answerable=False),  # no answer: not a target
)


def _prompt(question: str) -> list[ChatMessage]:
    return [ChatMessage("system", "You answer briefly."), ChatMessage("user", question)]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from rag.generate.huggingface import HuggingFaceGenerator

    folder = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-ft"))
    generator = HuggingFaceGenerator(folder, device="cpu", max_new_tokens=8)
    generator.warm_up()
    return generator


def _weights(generator: Any) -> list[Any]:
    model, _tokenizer = generator.loaded_model()
    return [p.detach().clone() for p in model.parameters()]


def test_config_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="method must be 'lora' or 'full', got 'qlora'"):
        FineTuneConfig(method="qlora")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        FineTuneConfig(steps=0)
    with pytest.raises(ValueError, match="seq_len must be at least 1"):
        FineTuneConfig(seq_len=0)
    with pytest.raises(ValueError, match=r"qa_share must be in \[0, 1\], got 1.5"):
        FineTuneConfig(qa_share=1.5)
    assert FineTuneConfig(method="lora").lr == 1e-3
    assert FineTuneConfig(method="full").lr == 5e-5
    assert FineTuneConfig(method="full", learning_rate=0.1).lr == 0.1


def test_lora_trains_an_adapter_and_leaves_the_base_unchanged(
    tiny_base: Any, tmp_path: Path
) -> None:
    import torch

    before = _weights(tiny_base)
    steps_seen: list[int] = []
    tuned, result = fine_tune(
        tiny_base,
        DOCUMENTS,
        TRAIN,
        FineTuneConfig(method="lora", steps=3, batch_size=2, seq_len=32, lora_r=4, lora_alpha=8),
        prompt=_prompt,
        save_adapter=tmp_path / "adapter",
        on_step=lambda step, _loss: steps_seen.append(step),
    )
    assert steps_seen == [1, 2, 3]
    assert result.method == "lora" and result.device == "cpu"
    assert result.steps == 3 and result.examples_seen == 6 and len(result.losses) == 3
    assert 0 < result.trainable_params < result.total_params
    assert result.first_loss == result.losses[0] and result.final_loss > 0
    assert result.adapter_dir == str(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert result.as_dict()["method"] == "lora"
    # The base model answers as before; the tuned copy is a separate model that answers.
    after = _weights(tiny_base)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert tuned is not tiny_base and tuned.info["model"].endswith("+lora")
    assert isinstance(tuned.generate(_prompt("What is rotated?"), max_new_tokens=4), str)


def test_full_fine_tuning_trains_every_parameter(tiny_base: Any) -> None:
    _tuned, result = fine_tune(
        tiny_base,
        (),
        TRAIN,
        FineTuneConfig(method="full", steps=2, batch_size=2, seq_len=48, qa_share=1.0),
        prompt=_prompt,
    )
    assert result.trainable_params == result.total_params
    assert result.adapter_dir is None and len(result.losses) == 2


def test_nothing_to_train_on_is_a_strategy_error(tiny_base: Any) -> None:
    unanswerable = (QAExample("q", "What is on Mars?", (), answerable=False),)
    with pytest.raises(StrategyError, match="needs documents or train questions"):
        fine_tune(tiny_base, (), unanswerable, FineTuneConfig(steps=1), prompt=_prompt)
