"""A reference multi-level FitNets + attention-transfer step, as torchdistill builds one.

torchdistill (Matsubara, 2021; `torchdistill/losses/mid_level.py`) wraps the models with
forward hooks, runs the teacher without autograd, and sums per level a FitNets hint
(the MSE between a 1x1-conv regressor of the student's map and the teacher's map; Romero et
al., 2015) and attention transfer (the squared distance of L2-normalised maps of the channel
mean of |F|^2; Zagoruyko & Komodakis, 2017). This module is that step with the same models,
levels and teacher work as our distiller (the same frozen forward: inference mode,
channels-last, bf16 where the device computes it natively), written here so that the benchmark
needs no extra dependency: it is a speed reference, not a method of the product.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from core.distill.distiller import frozen_forward, teacher_dtype
from core.models.adapters import pair_levels
from core.models.detectors import Detector
from core.structures import Target


def attention_map(features: Tensor) -> Tensor:
    """(N, H*W) L2-normalised channel mean of |F|^2 (attention transfer)."""
    return F.normalize(features.pow(2).mean(dim=1).flatten(1), dim=1)


class FitNetsAttention(nn.Module):
    """Student detection losses + per level FitNets MSE (1x1 regressor) and AT."""

    accepts_views = False

    def __init__(self, teacher: Detector, student: Detector, *, at_weight: float = 1.0) -> None:
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.teacher.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.student = student
        self.at_weight = at_weight
        student_shape, teacher_shape = student.output_shape(), teacher.output_shape()
        self.pairs = dict(pair_levels(student_shape, teacher_shape, nearest=True))
        self.regressors = nn.ModuleDict(
            {
                level: nn.Conv2d(student_shape[level].channels, teacher_shape[t].channels, 1)
                for level, t in self.pairs.items()
            }
        )

    def trainable_modules(self) -> dict[str, nn.Module]:
        """What the optimiser updates: the student and the regressors."""
        return {"student": self.student, "regressors": self.regressors}

    def train(self, mode: bool = True) -> FitNetsAttention:
        """Train the student and regressors; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(
        self, images: Tensor, targets: list[Target] | None = None, *, step: int = 0
    ) -> dict[str, Tensor]:
        """Detection losses, `kd/fitnets/<level>` and `kd/at/<level>`."""
        output = self.student(images, targets)
        losses = dict(output.losses)
        dtype = teacher_dtype("auto", images.device)
        teacher, _ = frozen_forward(self.teacher, images, dtype=dtype)
        for level, teacher_level in self.pairs.items():
            student_map = output.features[level]
            teacher_map = teacher[teacher_level]
            if teacher_map.shape[-2:] != student_map.shape[-2:]:
                teacher_map = F.interpolate(
                    teacher_map, size=student_map.shape[-2:], mode="bilinear", align_corners=False
                )
            losses[f"kd/fitnets/{level}"] = F.mse_loss(
                self.regressors[level](student_map), teacher_map
            )
            diff = attention_map(student_map) - attention_map(teacher_map)
            losses[f"kd/at/{level}"] = self.at_weight * diff.pow(2).sum(dim=1).mean()
        return losses
