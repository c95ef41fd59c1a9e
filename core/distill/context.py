"""Contextual loss on the student's own features: global-context affinity and region relations.

Both parts are channel-count-free and computed before any adapter, so that an adapter (a 1x1
conv with bias can set any constant context vector) cannot satisfy them in the student's
place:

- global-context affinity: the cosine similarity of each position's feature with the image's
  GcBlock-style context vector (Cao et al., "GCNet", 2019: an attention-pooled mean of the
  positions), computed on features centred over positions; an (N, H*W) map of how much each
  place belongs to what the image is about;
- region relations (relational KD, Park et al., CVPR 2019, on a grid of regions as in
  structured KD, Liu et al., CVPR 2019): the (N, R, R) cosine similarities of region-pooled,
  region-centred features.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

from core.distill.semantic import match_size

EPS = 1e-6


def _centred(features: Tensor) -> Tensor:
    """(N, C, H, W) minus each image's per-channel mean over positions."""
    return features - features.mean(dim=(2, 3), keepdim=True)


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


def context_affinity(features: Tensor) -> Tensor:
    """(N, H*W) cosine similarity of each centred position with the image's context vector."""
    centred = _centred(features)  # (N, C, H, W)
    context = F.normalize(global_context(centred), dim=1, eps=EPS)  # (N, C)
    positions = F.normalize(centred.flatten(2), dim=1, eps=EPS)  # (N, C, H*W)
    return (positions * context.unsqueeze(2)).sum(dim=1)  # (N, H*W)


def global_context_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean squared difference of the context affinity maps (channels need not match)."""
    # float32: squared activations overflow half precision under autocast.
    student = match_size(student.float(), teacher)
    return F.mse_loss(context_affinity(student), context_affinity(teacher.detach().float()))


def region_relations(features: Tensor, grid: int) -> Tensor:
    """(N, R, R) cosine similarities of region-centred features pooled on a grid of regions."""
    height, width = int(features.shape[-2]), int(features.shape[-1])
    cells = (min(grid, height), min(grid, width))
    if height % cells[0] == 0 and width % cells[1] == 0:
        # Equal regions: the same means as adaptive pooling, by a reshape (faster on CPUs).
        rows, cols = height // cells[0], width // cells[1]
        blocks = features.reshape(*features.shape[:2], cells[0], rows, cells[1], cols)
        regions = blocks.mean(dim=(3, 5)).flatten(2)  # (N, C, R)
    else:
        regions = F.adaptive_avg_pool2d(features, cells).flatten(2)  # (N, C, R)
    regions = regions - regions.mean(dim=2, keepdim=True)  # (N, C, R)
    regions = F.normalize(regions, dim=1, eps=EPS)
    return regions.transpose(1, 2) @ regions  # (N, R, R)


def relation_loss(student: Tensor, teacher: Tensor, grid: int = 4) -> Tensor:
    """Mean squared error between the region relation matrices of student and teacher."""
    student = match_size(student.float(), teacher)
    relations_t = region_relations(teacher.detach().float(), grid)
    return F.mse_loss(region_relations(student, grid), relations_t)


def context_loss(
    student: Tensor,
    teacher: Tensor,
    *,
    use_global: bool = True,
    use_relation: bool = True,
    grid: int = 4,
) -> Tensor:
    """Global-context affinity plus region relation loss of the student's own map."""
    if not (use_global or use_relation):
        raise ValueError("context loss: both global context and relation are off")
    terms = []
    if use_global:
        terms.append(global_context_loss(student, teacher))
    if use_relation:
        terms.append(relation_loss(student, teacher, grid))
    return sum(terms[1:], terms[0])
