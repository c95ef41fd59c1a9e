"""Semantic loss: spatial (and optionally channel) attention transfer (Zagoruyko & Komodakis)."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def spatial_attention(features: Tensor, p: float = 2.0) -> Tensor:
    """(N, H*W) L2-normalised map of the channel mean of |F|^p."""
    attention = features.abs().pow(p).mean(dim=1).flatten(1)  # (N, H*W)
    return F.normalize(attention, dim=1)


def channel_attention(features: Tensor, p: float = 2.0) -> Tensor:
    """(N, C) L2-normalised spatial mean of |F|^p per channel."""
    attention = features.abs().pow(p).mean(dim=(2, 3))  # (N, C)
    return F.normalize(attention, dim=1)


def attention_loss(student: Tensor, teacher: Tensor, p: float = 2.0) -> Tensor:
    """Squared L2 distance between spatial attention maps, mean over images.

    The student's map is resized to the teacher's when sizes differ; channels need not match.
    """
    # float32: |F|^p overflows half precision under autocast.
    student, teacher = student.float(), teacher.detach().float()
    if student.shape[-2:] != teacher.shape[-2:]:
        student = F.interpolate(
            student, size=teacher.shape[-2:], mode="bilinear", align_corners=False
        )
    diff = spatial_attention(student, p) - spatial_attention(teacher, p)
    return diff.pow(2).sum(dim=1).mean()


def channel_attention_loss(student: Tensor, teacher: Tensor, p: float = 2.0) -> Tensor:
    """Squared L2 distance between channel attention vectors (needs equal channels: adapt first)."""
    if student.shape[1] != teacher.shape[1]:
        raise ValueError(
            f"channel attention: student has {student.shape[1]} channels, "
            f"teacher {teacher.shape[1]}"
        )
    diff = channel_attention(student.float(), p) - channel_attention(teacher.detach().float(), p)
    return diff.pow(2).sum(dim=1).mean()
