"""Percentiles used by the benchmarks' latency figures."""

from __future__ import annotations

import math

import pytest

from bench.timing import median, percentile


def test_percentile_interpolates() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 99) == pytest.approx(4.96)
    assert median([5.0]) == 5.0
    assert math.isnan(percentile([], 50))
