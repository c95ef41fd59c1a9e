"""Contextual loss: GcBlock-style global context vectors and region relations (relation KD)."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

EPS = 1e-6


def global_context(features: Tensor) -> Tensor:
    """(N, C) attention-pooled context vector of (N, C, H, W), as a GcBlock's context branch.

    The pooling weights are a softmax over positions of the standardised channel energy
    (parameter-free, so the teacher's context needs no training of its own).
    """
    energy = features.pow(2).mean(dim=1).flatten(1)  # (N, H*W)
    energy = (energy - energy.mean(dim=1, keepdim=True)) / (
        energy.std(dim=1, keepdim=True, unbiased=False) + EPS
    )
    weights = energy.softmax(dim=1)  # (N, H*W)
    return (features.flatten(2) * weights.unsqueeze(1)).sum(dim=2)  # (N, C)


def global_context_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Squared L2 between L2-normalised context vectors of adapted student and teacher maps."""
    if student.shape[1] != teacher.shape[1]:
        raise ValueError(
            f"global context: student has {student.shape[1]} channels, teacher {teacher.shape[1]}"
        )
    # float32: squared activations overflow half precision under autocast.
    student_ctx = F.normalize(global_context(student.float()), dim=1)
    teacher_ctx = F.normalize(global_context(teacher.detach().float()), dim=1)
    return (student_ctx - teacher_ctx).pow(2).sum(dim=1).mean()


def region_relations(features: Tensor, grid: int) -> Tensor:
    """(N, R, R) cosine similarities of features average-pooled on a grid x grid of regions."""
    regions = F.adaptive_avg_pool2d(features, grid).flatten(2)  # (N, C, R)
    regions = F.normalize(regions, dim=1)
    return regions.transpose(1, 2) @ regions  # (N, R, R)


def relation_loss(student: Tensor, teacher: Tensor, grid: int = 4) -> Tensor:
    """Mean squared error between the region relation matrices of student and teacher."""
    relations_t = region_relations(teacher.detach().float(), grid)
    return F.mse_loss(region_relations(student.float(), grid), relations_t)


def context_loss(
    student: Tensor,
    teacher: Tensor,
    *,
    use_global: bool = True,
    use_relation: bool = True,
    grid: int = 4,
) -> Tensor:
    """Global context plus relation loss between adapted student and teacher maps."""
    if not (use_global or use_relation):
        raise ValueError("context loss: both global context and relation are off")
    terms = []
    if use_global:
        terms.append(global_context_loss(student, teacher))
    if use_relation:
        terms.append(relation_loss(student, teacher, grid))
    return sum(terms[1:], terms[0])
