"""Student -> teacher feature adapters and the pairing of pyramid levels by stride."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from core.structures import LevelSpec

ADAPTER_SEED = 0


def pair_levels(
    student_shape: Mapping[str, LevelSpec], teacher_shape: Mapping[str, LevelSpec]
) -> list[tuple[str, str]]:
    """(student level, teacher level) pairs with equal strides, finest first."""
    by_stride = {spec.stride: name for name, spec in teacher_shape.items()}
    pairs = [
        (name, by_stride[spec.stride])
        for name, spec in student_shape.items()
        if spec.stride in by_stride
    ]
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
    """One adapter per student level that has a teacher level of the same stride.

    Keyed by the student's level name; `only` restricts the student levels. The adapters are
    initialised from their own seeded generator so that building them never shifts the global
    random stream (a student seeded identically trains identically with or without KD).
    """
    wanted = None if only is None else set(only)
    adapters = nn.ModuleDict()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ADAPTER_SEED)
        for student_name, teacher_name in pair_levels(student_levels, teacher_levels):
            if wanted is not None and student_name not in wanted:
                continue
            adapters[student_name] = FeatureAdapter(
                student_levels[student_name].channels, teacher_levels[teacher_name].channels
            )
    return adapters
