"""Statistics over seeds, the share of the teacher-student gap closed and the target verdict."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
"""COCO summary metrics (pycocotools, values in [0, 1]; -1 where the split has no such box)."""
GAP_TARGET = 0.5
"""Hierarchical KD must close at least this share of the teacher-student AP_small gap."""


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation of one metric over seeds (None where undefined)."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        """How many seeds gave a value."""
        return len(self.values)

    @property
    def mean(self) -> float | None:
        """The mean, or None without values."""
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """The sample standard deviation (n - 1), or None with fewer than two values."""
        return statistics.stdev(self.values) if self.n >= 2 else None


def metric_stat(per_seed: list[dict[str, Any]], name: str) -> Stat:
    """The Stat of metric `name` over per-seed metric dicts, skipping -1 (not applicable)."""
    values = []
    for metrics in per_seed:
        value = metrics.get(name)
        if value is None or not math.isfinite(float(value)) or float(value) < 0:
            continue
        values.append(float(value))
    return Stat(tuple(values))


def gap_closed(variant: float | None, no_kd: float | None, teacher: float | None) -> float | None:
    """(variant - no KD) / (teacher - no KD); None when there is no positive gap to close."""
    if variant is None or no_kd is None or teacher is None:
        return None
    gap = teacher - no_kd
    if gap <= 0:
        return None
    return (variant - no_kd) / gap


@dataclass
class Verdict:
    """Whether hierarchical KD met the study's target, with the reasons in words."""

    met: bool | None  # None: the numbers cannot decide (too few seeds, missing runs)
    reasons: list[str] = field(default_factory=list)


def judge(ap_small: dict[str, Stat], teacher_small: float | None) -> Verdict:
    """Target: HKD above every other variant on AP_small by more than the seed spread, and
    closing at least half of the teacher-student gap.

    "More than the seed spread" means mean(HKD) - mean(other) > std(HKD) + std(other).
    """
    hkd = ap_small.get("hierarchical")
    if hkd is None or hkd.mean is None:
        return Verdict(None, ["hierarchical KD has no AP_small result"])
    if hkd.n < 2:
        return Verdict(None, ["the seed spread needs at least two seeds per variant"])
    reasons: list[str] = []
    met = True
    for variant, stat in ap_small.items():
        if variant == "hierarchical":
            continue
        if stat.mean is None or stat.std is None:
            reasons.append(f"{variant}: too few seeds to compare")
            met = False
            continue
        margin = hkd.mean - stat.mean
        spread = (hkd.std or 0.0) + stat.std
        beat = margin > spread
        met = met and beat
        reasons.append(
            f"{variant}: HKD {'+' if margin >= 0 else ''}{100 * margin:.2f} AP_small points "
            f"vs a seed spread of {100 * spread:.2f} -> {'beaten' if beat else 'NOT beaten'}"
        )
    no_kd = ap_small.get("no_kd")
    share = gap_closed(hkd.mean, no_kd.mean if no_kd else None, teacher_small)
    if share is None:
        met = False
        reasons.append(
            "gap: the teacher is not above the no-KD student on AP_small, so there is no gap "
            "to close -> target NOT met"
        )
    else:
        closes = share >= GAP_TARGET
        met = met and closes
        reasons.append(
            f"gap: HKD closes {100 * share:.0f}% of the teacher-student AP_small gap "
            f"(target {100 * GAP_TARGET:.0f}%) -> {'met' if closes else 'NOT met'}"
        )
    return Verdict(met, reasons)
