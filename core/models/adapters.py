"""Student -> teacher feature adapters and the pairing of pyramid levels by stride."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from core.structures import LevelSpec

ADAPTER_SEED = 0


def pair_levels(
    student_shape: Mapping[str, LevelSpec],
    teacher_shape: Mapping[str, LevelSpec],
    *,
    nearest: bool = False,
) -> list[tuple[str, str]]:
    """(student level, teacher level) pairs with equal strides, finest first.

    With `nearest`, a student level without an equal-stride teacher level is paired with the
    teacher level nearest in log-stride (the finer on a tie): P2 from a P3-P7 teacher's P3.
    """
    by_stride = {spec.stride: name for name, spec in teacher_shape.items()}
    pairs = []
    for name, spec in student_shape.items():
        if spec.stride in by_stride:
            pairs.append((name, by_stride[spec.stride]))
        elif nearest and by_stride:
            distance = {s: (abs(math.log2(s / spec.stride)), s) for s in by_stride}
            pairs.append((name, by_stride[min(by_stride, key=distance.__getitem__)]))
    return sorted(pairs, key=lambda pair: student_shape[pair[0]].stride)


class FeatureAdapter(nn.Module):
    """A 1x1 conv from student to teacher channels, resized to the teacher's map when needed."""

    def __init__(self, student_channels: int, teacher_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Adapted features, bilinearly resized to `size` (H, W) if given and different."""
        out = self.proj(x)
        if size is not None and tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out


def build_adapters(
    student_levels: Mapping[str, LevelSpec],
    teacher_levels: Mapping[str, LevelSpec],
    *,
    only: Iterable[str] | None = None,
) -> nn.ModuleDict:
    """One adapter per student level, to its teacher level (equal stride, else the nearest).

    Keyed by the student's level name; `only` restricts the student levels. The adapters are
    initialised from their own seeded generator so that building them never shifts the global
    random stream (a student seeded identically trains identically with or without KD).
    """
    wanted = None if only is None else set(only)
    adapters = nn.ModuleDict()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ADAPTER_SEED)
        for student_name, teacher_name in pair_levels(student_levels, teacher_levels, nearest=True):
            if wanted is not None and student_name not in wanted:
                continue
            adapters[student_name] = FeatureAdapter(
                student_levels[student_name].channels, teacher_levels[teacher_name].channels
            )
    return adapters
