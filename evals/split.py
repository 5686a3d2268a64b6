"""Train/test split by question.

Fine-tuning sees the documents and the train questions, evaluation only the test
questions, and no question text is on both sides.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from evals.datasets import QAExample
from evals.errors import DatasetError


@dataclass(frozen=True)
class Split:
    """Train questions (few-shot examples, fine-tuning) and test questions (scored)."""

    train: tuple[QAExample, ...]
    test: tuple[QAExample, ...]


def question_key(question: str) -> str:
    """What makes two questions the same: case, width, spaces and punctuation ignored."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return re.sub(r"[\W_]+", " ", text).strip()


def split_by_question(
    examples: Sequence[QAExample], *, test_fraction: float, seed: int = 13
) -> Split:
    """Split answerable questions into train and test; unanswerable ones are test only.

    Questions with the same text (after :func:`question_key`) stay on one side, so a
    model is never scored on a question it was trained on.

    Raises:
        ValueError: ``test_fraction`` is outside (0, 1].
        DatasetError: too few questions to give both sides one.
    """
    if not 0.0 < test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in (0, 1], got {test_fraction!r}")
    groups: dict[str, list[QAExample]] = {}
    for example in examples:
        if example.answerable:
            groups.setdefault(question_key(example.question), []).append(example)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_test = round(len(keys) * test_fraction)
    if test_fraction < 1.0 and (n_test == 0 or n_test == len(keys)):
        raise DatasetError(
            f"{len(keys)} distinct answerable questions cannot be split {test_fraction:.0%} "
            "test; ask for more questions"
        )
    test_keys = set(keys[:n_test])
    train = tuple(e for k in keys[n_test:] for e in groups[k])
    test = tuple(e for k in keys if k in test_keys for e in groups[k])
    test += tuple(e for e in examples if not e.answerable)
    return Split(train=train, test=test)
