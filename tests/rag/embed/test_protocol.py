"""The embedder contract's shared checks: text arguments and unit-length rows."""

from __future__ import annotations

import numpy as np
import pytest

from rag.embed.protocol import check_texts, unit_rows


def test_check_texts_rejects_a_single_string_and_non_strings() -> None:
    check_texts(["a", "b"])
    check_texts([])
    with pytest.raises(TypeError, match="single string"):
        check_texts("abc")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a string, got int"):
        check_texts(["a", 3])  # type: ignore[list-item]


def test_unit_rows_scales_to_length_one_and_keeps_zero_rows_zero() -> None:
    matrix = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]], dtype=np.float32)
    rows = unit_rows(matrix)
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]], atol=1e-7)
    assert not np.isnan(rows).any()
