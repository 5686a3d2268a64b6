"""What one evaluation run is given: its configuration and the hooks the caller provides.

:class:`RunConfig` is written into report.json as given; :class:`FolderIndexer` and
:class:`Progress` are how the entry point (the CLI) lends the runner the product's ingest
pipeline and a progress bar, so ``evals`` itself depends on ``rag`` only.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evals.errors import StrategyError
from evals.strategies import ALL_STRATEGIES

logger = logging.getLogger(__name__)


class FolderIndexer(Protocol):
    """Ingests a folder of text files into a knowledge base.

    The CLI passes the product's ingest pipeline; evals itself does not depend on
    ``ingest``.
    """

    def __call__(self, folder: Path, kb: str) -> None:
        """Ingest every file under ``folder`` into the knowledge base ``kb``."""
        ...


class Progress(Protocol):
    """Where a run reports its phases (a rich progress bar in the CLI)."""

    def phase(self, name: str, total: int) -> None:
        """A new phase of ``total`` steps (0: unknown) starts."""
        ...

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps of the current phase are done."""
        ...


class SilentProgress:
    """Reports phases to the log only (the default when no progress bar is given)."""

    def phase(self, name: str, total: int) -> None:
        """Log the phase's name and size."""
        logger.info("%s (%d)", name, total)

    def advance(self, steps: int = 1) -> None:
        """Nothing: steps are not logged."""
        return None


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on; written into report.json as given."""

    dataset: str
    out: Path
    strategies: tuple[str, ...] = ("closed-book", "few-shot", "rag")
    kb: str | None = None
    articles: int | None = None
    questions: int | None = None
    unanswerable: int = 10
    test_fraction: float = 2 / 3
    split: str = "test"
    retrieval_mode: str | None = None
    k: int | None = None
    few_shot_k: int = 3
    max_new_tokens: int = 32
    rag_max_new_tokens: int = 64
    batch_size: int = 8
    finetune_steps: int = 40
    finetune_batch_size: int = 4
    finetune_seq_len: int = 160
    finetune_lr: float | None = None
    lora_r: int = 16
    seed: int = 13
    embedding: str | None = None
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in ALL_STRATEGIES]
        if unknown:
            raise StrategyError(
                f"unknown strategies {', '.join(unknown)}; choose from {', '.join(ALL_STRATEGIES)}"
            )
        if not self.strategies:
            raise StrategyError("name at least one strategy (--strategies)")
        if len(set(self.strategies)) != len(self.strategies):
            raise StrategyError("each strategy may be named once")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")

    def as_dict(self) -> dict[str, Any]:
        """The configuration as report.json records it (``out`` as a string)."""
        data = asdict(self)
        data["out"] = str(self.out)
        return data
