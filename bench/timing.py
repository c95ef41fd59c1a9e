"""Wall-clock timing of repeated calls and percentiles of the samples."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence


def time_calls(
    fn: Callable[[], object],
    *,
    warmup: int,
    repeats: int,
    sync: Callable[[], None] | None = None,
) -> list[float]:
    """Seconds per call of `fn` over `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    samples: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync is not None:  # CUDA work is asynchronous: wait for it inside the timed span
            sync()
        samples.append(time.perf_counter() - start)
    return samples


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `samples` by linear interpolation (nan when empty)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(samples: Sequence[float]) -> float:
    """The median of `samples` (nan when empty)."""
    return percentile(samples, 50.0)
