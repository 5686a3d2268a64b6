"""Fine-tune a copy of the generator on a dataset: peft LoRA or full fine-tuning.

The training mix is what a user would fine-tune on to teach a model their documents:
passages of the documents (plain language modelling) and the train split's question and
answer pairs in the very chat format the closed-book strategy asks in (loss on the answer
only). Test questions are never seen. Defaults are sized for a 2-core CPU (a few
minutes); on a GPU the same code runs bigger settings.

Example::

    tuned, result = fine_tune(base, documents, split.train, FineTuneConfig(method="lora"),
                              prompt=closed_book_messages)
    tuned.generate(closed_book_messages("Who founded the Internet Archive?"))
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from evals.datasets import EvalDocument, QAExample
from evals.errors import StrategyError
from rag.device import is_cuda
from rag.generate.huggingface import HuggingFaceGenerator
from rag.records import ChatMessage

logger = logging.getLogger(__name__)

Method = Literal["lora", "full"]
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class FineTuneConfig:
    """How to train. ``learning_rate`` None picks 1e-3 for LoRA and 5e-5 for full."""

    method: Method = "lora"
    steps: int = 40
    batch_size: int = 4
    seq_len: int = 160
    learning_rate: float | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    qa_share: float = 0.5
    seed: int = 13

    def __post_init__(self) -> None:
        if self.method not in ("lora", "full"):
            raise ValueError(f"method must be 'lora' or 'full', got {self.method!r}")
        for name in ("steps", "batch_size", "seq_len", "lora_r", "lora_alpha"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if not 0.0 <= self.qa_share <= 1.0:
            raise ValueError(f"qa_share must be in [0, 1], got {self.qa_share!r}")

    @property
    def lr(self) -> float:
        """The learning rate in use: the given one, else the method's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-3 if self.method == "lora" else 5e-5


@dataclass(frozen=True)
class FineTuneResult:
    """What training cost and how it went, for the report's cost columns."""

    method: str
    device: str
    steps: int
    examples_seen: int
    trainable_params: int
    total_params: int
    train_seconds: float
    peak_memory_mb: float
    first_loss: float
    final_loss: float
    losses: list[float] = field(default_factory=list)
    adapter_dir: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The record as report.json's ``training`` object."""
        return asdict(self)


@dataclass(frozen=True)
class _Sample:
    input_ids: list[int]
    labels: list[int]


PromptBuilder = Callable[[str], list[ChatMessage]]


def fine_tune(
    base: HuggingFaceGenerator,
    documents: Sequence[EvalDocument],
    train: Sequence[QAExample],
    config: FineTuneConfig,
    *,
    prompt: PromptBuilder,
    save_adapter: Path | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[HuggingFaceGenerator, FineTuneResult]:
    """Train a copy of ``base``'s model; ``base`` itself is left unchanged.

    Args:
        base: the generator whose model is copied and trained.
        documents: passages to learn from (language modelling).
        train: train-split questions; their answers are the targets.
        config: method and sizes.
        prompt: builds the chat messages for a question, as the strategy will ask it.
        save_adapter: LoRA only: save the adapter weights here (a few MB).
        on_step: called after each step with (step, loss), e.g. to move a progress bar.

    Returns:
        A generator answering with the trained model, and the training record.

    Raises:
        StrategyError: nothing to train on, or peft missing for LoRA.
    """
    import torch

    model, tokenizer = base.loaded_model()
    samples = _build_samples(tokenizer, documents, train, config, prompt)
    if not samples:
        raise StrategyError("fine-tuning needs documents or train questions; the dataset has none")
    device = str(next(model.parameters()).device)
    torch.manual_seed(config.seed)
    trainee = copy.deepcopy(model).to(dtype=torch.float32)
    total_params = sum(p.numel() for p in trainee.parameters())
    if config.method == "lora":
        trainee = _with_lora(trainee, config)
    trainable = [p for p in trainee.parameters() if p.requires_grad]
    trainable_params = sum(p.numel() for p in trainable)
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, config.steps // 10))
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rng = random.Random(config.seed)
    order: list[_Sample] = []
    process = psutil.Process()
    peak_rss = process.memory_info().rss
    if is_cuda(device):
        torch.cuda.reset_peak_memory_stats()
    losses: list[float] = []
    trainee.train()
    started = time.perf_counter()
    for step in range(config.steps):
        batch = []
        for _ in range(config.batch_size):
            if not order:
                order = list(samples)
                rng.shuffle(order)
            batch.append(order.pop())
        input_ids, labels, mask = _collate(batch, pad, device)
        loss = trainee(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(float(loss.detach()), 4))
        peak_rss = max(peak_rss, process.memory_info().rss)
        if on_step is not None:
            on_step(step + 1, losses[-1])
    seconds = time.perf_counter() - started
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if is_cuda(device) else peak_rss / 2**20
    adapter_dir = None
    if config.method == "lora":
        if save_adapter is not None:
            # The embeddings are not trained; saving them would copy the whole vocabulary.
            trainee.save_pretrained(str(save_adapter), save_embedding_layers=False)
            adapter_dir = str(save_adapter)
        trainee = trainee.merge_and_unload()
    trainee.eval()
    if is_cuda(device):
        trainee = trainee.to(dtype=next(model.parameters()).dtype)
    name = f"{base.info['model']}+{config.method}"
    tuned = HuggingFaceGenerator.from_model(trainee, tokenizer, name=name)
    result = FineTuneResult(
        method=config.method,
        device=device,
        steps=config.steps,
        examples_seen=config.steps * config.batch_size,
        trainable_params=trainable_params,
        total_params=total_params,
        train_seconds=round(seconds, 2),
        peak_memory_mb=round(peak_mb, 1),
        first_loss=losses[0],
        final_loss=round(sum(losses[-5:]) / len(losses[-5:]), 4),
        losses=losses,
        adapter_dir=adapter_dir,
    )
    logger.info(
        "fine-tuned (%s) %d steps in %.1f s, loss %.3f -> %.3f",
        config.method,
        config.steps,
        seconds,
        result.first_loss,
        result.final_loss,
    )
    return tuned, result


def _with_lora(model: Any, config: FineTuneConfig) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - peft is a dependency
        raise StrategyError("LoRA needs the peft package: pip install peft") from exc
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in LORA_TARGETS if t in names]
    if not targets:
        raise StrategyError(
            f"the generator model has none of the usual projection layers {LORA_TARGETS}; "
            "LoRA does not know where to attach"
        )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.05,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _build_samples(
    tokenizer: Any,
    documents: Sequence[EvalDocument],
    train: Sequence[QAExample],
    config: FineTuneConfig,
    prompt: PromptBuilder,
) -> list[_Sample]:
    """Document windows and chat-formatted QA pairs, mixed to ``qa_share`` QA."""
    passages: list[_Sample] = []
    for document in documents:
        ids = tokenizer.encode(f"{document.title}\n\n{document.text}", add_special_tokens=False)
        step = config.seq_len
        for start in range(0, len(ids), step):
            window = ids[start : start + step]
            if len(window) >= 16:
                passages.append(_Sample(window, list(window)))
    qa: list[_Sample] = []
    for example in train:
        if not example.answers:
            continue
        messages = [{"role": m.role, "content": m.content} for m in prompt(example.question)]
        prefix = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prefix_ids = tokenizer.encode(str(prefix), add_special_tokens=False)
        end = tokenizer.eos_token or ""
        answer_ids = tokenizer.encode(example.answers[0] + end, add_special_tokens=False)
        ids = (prefix_ids + answer_ids)[: config.seq_len]
        labels = ([-100] * len(prefix_ids) + answer_ids)[: config.seq_len]
        if any(label != -100 for label in labels):
            qa.append(_Sample(ids, labels))
    if not passages or not qa:
        return passages or qa
    # Repeat the smaller side so one pass through the mix has the requested QA share.
    want_qa = round(len(passages) * config.qa_share / max(1e-9, 1 - config.qa_share))
    if config.qa_share >= 1.0:
        return qa
    if want_qa > len(qa):
        qa = (qa * (want_qa // len(qa) + 1))[:want_qa]
    return passages + qa


def _collate(batch: Sequence[_Sample], pad: int, device: str) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(s.input_ids) for s in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, sample in enumerate(batch):
        n = len(sample.input_ids)
        ids[row, :n] = torch.tensor(sample.input_ids)
        labels[row, :n] = torch.tensor(sample.labels)
        mask[row, :n] = 1
    return ids.to(device), labels.to(device), mask.to(device)
