"""Spatial (feature imitation) loss: per-channel normalised maps, fg/bg weighted L2."""

from __future__ import annotations

from torch import Tensor

from core.distill.masks import LevelMasks

EPS = 1e-6


def standardize_channels(features: Tensor) -> Tensor:
    """Each channel of (N, C, H, W) standardised over H, W (PKD): magnitudes stop dominating."""
    mean = features.mean(dim=(2, 3), keepdim=True)
    std = features.std(dim=(2, 3), keepdim=True, unbiased=False)
    return (features - mean) / (std + EPS)


def spatial_loss(
    student: Tensor,
    teacher: Tensor,
    masks: LevelMasks | None = None,
    *,
    fg_weight: float = 1.0,
    bg_weight: float = 0.5,
    normalize: bool = True,
) -> Tensor:
    """Masked L2 between adapted student and teacher maps (N, C, H, W), mean over images.

    Without masks every position weighs the same (plain mean squared error).
    """
    if student.shape != teacher.shape:
        raise ValueError(
            f"spatial loss: student {tuple(student.shape)} != teacher {tuple(teacher.shape)}"
        )
    # float32: per-channel statistics and squares are fragile in half precision.
    student, teacher = student.float(), teacher.detach().float()
    if normalize:
        student, teacher = standardize_channels(student), standardize_channels(teacher)
    error = (student - teacher).pow(2).mean(dim=1, keepdim=True)  # (N, 1, H, W)
    if masks is None:
        return error.mean()
    fg, bg = masks.fg.float(), masks.bg.float()
    per_image = fg_weight * (fg * error).sum(dim=(1, 2, 3)) + bg_weight * (bg * error).sum(
        dim=(1, 2, 3)
    )
    return per_image.mean()
