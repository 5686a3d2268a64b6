"""Bootstrap confidence intervals and latency percentiles.

Per-question scores are resampled with replacement (percentile bootstrap). Comparing two
strategies resamples the *same* questions for both (paired), so the interval of their
difference reflects only how they differ, not how hard the questions are.

"Not measurable" is explicit: with no scores there is no mean and no interval, and the
functions return None rather than NaN (a NaN would poison every average it enters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap confidence interval (all three finite numbers)."""

    mean: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        """``{"mean", "low", "high"}``, as report.json stores an interval."""
        return {"mean": self.mean, "low": self.low, "high": self.high}


def bootstrap_ci(
    scores: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval | None:
    """The mean of ``scores`` and its percentile-bootstrap interval.

    Args:
        scores: per-question scores.
        resamples: how many bootstrap resamples.
        confidence: the interval's coverage (0.95: the 2.5th to 97.5th percentile).
        seed: the resampling seed (the same seed gives the same interval).

    Returns:
        The interval, or None when there are no scores (not measurable).
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return Interval(
        float(values.mean()),
        float(np.quantile(means, tail)),
        float(np.quantile(means, 1.0 - tail)),
    )


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval | None:
    """Mean of ``a - b`` over the same questions, with its paired bootstrap interval.

    An interval that contains 0 means the two cannot be told apart on these questions.

    Returns:
        The interval of the difference, or None when there are no questions.

    Raises:
        ValueError: ``a`` and ``b`` differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return bootstrap_ci(diff.tolist(), resamples=resamples, confidence=confidence, seed=seed)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50 and p95 (and the mean) of a list of timings; empty when there are none."""
    if not values:
        return {}
    array = np.asarray(values, dtype=np.float64)
    return {
        "p50": float(np.percentile(array, 50)),
        "p95": float(np.percentile(array, 95)),
        "mean": float(array.mean()),
    }
