"""Bootstrap intervals and latency percentiles."""

from __future__ import annotations

import pytest

from evals.stats import bootstrap_ci, paired_difference, percentiles


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_data() -> None:
    small = bootstrap_ci([0.0, 1.0] * 10)
    large = bootstrap_ci([0.0, 1.0] * 500)
    assert small is not None and large is not None
    assert small.mean == pytest.approx(0.5) and large.mean == pytest.approx(0.5)
    assert small.low < 0.5 < small.high
    assert (large.high - large.low) < (small.high - small.low) / 3
    # A constant has no spread.
    constant = bootstrap_ci([0.7] * 30)
    assert constant is not None
    assert constant.low == pytest.approx(0.7) and constant.high == pytest.approx(0.7)


def test_empty_scores_are_not_measurable_none_not_nan_or_zero() -> None:
    assert bootstrap_ci([]) is None
    assert paired_difference([], []) is None
    assert percentiles([]) == {}


def test_paired_difference_tells_noise_from_a_real_gap() -> None:
    same_questions_hard = [0.0] * 25 + [1.0] * 25
    better = [0.0] * 5 + [1.0] * 45
    real = paired_difference(better, same_questions_hard)
    assert real is not None
    assert real.mean == pytest.approx(0.4) and real.low > 0
    # One question apart out of 50: the interval contains 0.
    one_off = [1.0, *same_questions_hard[1:]]
    noise = paired_difference(one_off, same_questions_hard)
    assert noise is not None
    assert noise.low <= 0.0 <= noise.high
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0], [1.0, 0.0])


def test_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    got = percentiles(values)
    assert got["p50"] == pytest.approx(50.5) and got["p95"] == pytest.approx(95.05)
    assert got["mean"] == pytest.approx(50.5)
    assert percentiles([]) == {}
