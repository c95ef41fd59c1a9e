"""The semantic and context terms of one level in few passes over its maps (issue 11).

`core.distill.semantic` and `core.distill.context` define the terms plainly, one statistic
at a time; each statistic there reads or writes the whole (N, C, H, W) map several times
(|F|^p twice, a centred copy, a normalised copy, a weighted copy). Here one map's statistics
are computed together from what they share:

- |F|^p is computed once (for a teacher map, one image at a time: a whole map's temporary
  costs more in fresh memory pages than in arithmetic); its channel mean is the spatial
  attention, its spatial mean the channel attention profile;
- the global-context affinity never writes a centred or normalised map: with x_i the
  feature at position i, m the image's mean and c_i = x_i - m,
  |c_i|^2 = |x_i|^2 - 2 x_i.m + |m|^2, the attention-pooled context is g = sum_i a_i x_i - m
  (the pooling weights sum to one), and c_i.g = x_i.g - m.g, so the map is read by three thin
  batched products (x.m, x.a, x.g) instead;
- the teacher's statistics are computed once per level, without autograd.

The values (and the student's gradients) equal the plain forms' to rounding; the tests check
both against each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from core.distill.context import region_relations

EPS = 1e-6


@dataclass(frozen=True)
class MapStatistics:
    """The channel-count-free statistics of one map that the semantic and context terms
    compare (None where the term or part is off)."""

    attention: Tensor | None = None  # (N, H*W) L2-normalised channel mean of |F|^p
    channel: Tensor | None = None  # (N, N) correlations of the channel attention profiles
    affinity: Tensor | None = None  # (N, H*W) cosine of each centred position with the context
    relations: Tensor | None = None  # (N, R, R) region relations


@dataclass(frozen=True)
class StatisticsPlan:
    """Which statistics a level needs, from the spec's semantic and context options."""

    semantic: bool = True
    channel: bool = True
    p: float = 2.0
    global_context: bool = True
    relation: bool = True
    grid: int = 4

    @property
    def empty(self) -> bool:
        """True if no statistic is needed."""
        return not (self.semantic or self.global_context or self.relation)


def _affinity(x: Tensor, squared_norms: Tensor) -> Tensor:
    """(N, L) context affinity of x (N, C, L) whose per-position |x_i|^2 is `squared_norms`.

    As `core.distill.context.context_affinity`, with no centred or normalised map written.
    """
    channels = x.shape[1]
    mean = x.mean(dim=2)  # (N, C)
    x_dot_mean = torch.bmm(mean.unsqueeze(1), x).squeeze(1)  # (N, L)
    centred_sq = squared_norms - 2.0 * x_dot_mean + mean.pow(2).sum(dim=1, keepdim=True)
    centred_sq = centred_sq.clamp_min(EPS * EPS)  # = max(|c_i|, EPS)^2 where it matters
    energy = centred_sq / channels
    energy = (energy - energy.mean(dim=1, keepdim=True)) / (
        energy.std(dim=1, keepdim=True, unbiased=False) + EPS
    )
    weights = energy.softmax(dim=1)  # (N, L)
    context = torch.bmm(weights.unsqueeze(1), x.transpose(1, 2)).squeeze(1) - mean  # (N, C)
    context = F.normalize(context, dim=1, eps=EPS)
    x_dot_context = torch.bmm(context.unsqueeze(1), x).squeeze(1)  # (N, L)
    along = x_dot_context - (mean * context).sum(dim=1, keepdim=True)  # c_i . context
    return along / centred_sq.sqrt()


def _channel_similarity(profiles: Tensor) -> Tensor:
    """(N, N) Pearson correlations between the rows of (N, C) channel attention profiles."""
    centred = profiles - profiles.mean(dim=1, keepdim=True)
    unit = F.normalize(centred, dim=1, eps=EPS)
    return unit @ unit.T


class SquareMeans(torch.autograd.Function):
    """Of x (N, C, L): the channel mean (N, L) and position mean (N, C) of x^2, and the
    squared norm (N, L) of each position, without x^2 kept for the backward, which is one
    map-sized product, grad_x = 2 x (g_1 / C + g_3 + g_2 / L), instead of autograd's seven."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        squares = x * x
        squared_norms = squares.sum(dim=1)  # (N, L)
        ctx.save_for_backward(x)
        return squared_norms / x.shape[1], squares.mean(dim=2), squared_norms

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_position: Tensor, grad_channel: Tensor, grad_norms: Tensor
    ) -> Tensor:
        (x,) = ctx.saved_tensors
        channels, positions = x.shape[1], x.shape[2]
        per_position = (grad_position / channels + grad_norms).unsqueeze(1)  # (N, 1, L)
        per_channel = (grad_channel / positions).unsqueeze(2)  # (N, C, 1)
        return 2.0 * x * (per_position + per_channel)


def _power_means(x: Tensor, p: float) -> tuple[Tensor, Tensor, Tensor]:
    """Of (N, C, L): the channel mean (N, L) and position mean (N, C) of |x|^p, and the
    squared norm (N, L) of each position, with |x|^p written for one image at a time when
    no gradient is needed (a whole teacher map's temporary costs more in fresh pages than
    in arithmetic)."""

    def one(image: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # (C, L) -> (L,), (C,), (L,)
        power = image * image if p == 2.0 else image.abs().pow(p)
        squares = power if p == 2.0 else image * image
        return power.mean(dim=0), power.mean(dim=1), squares.sum(dim=0)

    if x.requires_grad and p == 2.0:
        return SquareMeans.apply(x)  # type: ignore[no-any-return]
    if x.requires_grad:
        power = x.abs().pow(p)
        return power.mean(dim=1), power.mean(dim=2), (x * x).sum(dim=1)
    parts = [one(image) for image in x]
    return tuple(torch.stack(column) for column in zip(*parts, strict=True))  # type: ignore[return-value]


def map_statistics(features: Tensor, plan: StatisticsPlan) -> MapStatistics:
    """The statistics `plan` asks for of one (N, C, H, W) map, in float32."""
    x = features.float()
    flat = x.flatten(2)  # (N, C, L), a view
    attention = channel = affinity = relations = None
    if plan.semantic or plan.global_context:
        by_position, by_channel, squared_norms = _power_means(flat, plan.p)
        if plan.semantic:
            attention = F.normalize(by_position, dim=1)  # (N, L)
            if plan.channel and x.shape[0] >= 2:
                channel = _channel_similarity(by_channel)
        if plan.global_context:
            affinity = _affinity(flat, squared_norms)
    if plan.relation:
        relations = region_relations(x, plan.grid)
    return MapStatistics(attention, channel, affinity, relations)


def teacher_statistics(features: Tensor, plan: StatisticsPlan) -> MapStatistics:
    """`map_statistics` of a teacher map, without autograd."""
    with torch.no_grad():
        return map_statistics(features.detach(), plan)


def semantic_value(student: MapStatistics, teacher: MapStatistics) -> Tensor:
    """Attention transfer plus channel similarity (as `core.distill.semantic.semantic_loss`)."""
    assert student.attention is not None and teacher.attention is not None
    value = (student.attention - teacher.attention).pow(2).sum(dim=1).mean()
    if student.channel is not None and teacher.channel is not None:
        batch = student.channel.shape[0]
        diff = student.channel - teacher.channel
        value = value + diff.pow(2).sum() / (batch * (batch - 1))
    return value


def context_value(student: MapStatistics, teacher: MapStatistics) -> Tensor:
    """Global-context affinity plus region relations (as `core.distill.context.context_loss`)."""
    terms = []
    if student.affinity is not None and teacher.affinity is not None:
        terms.append(F.mse_loss(student.affinity, teacher.affinity))
    if student.relations is not None and teacher.relations is not None:
        terms.append(F.mse_loss(student.relations, teacher.relations))
    if not terms:
        raise ValueError("context loss: both global context and relation are off")
    return sum(terms[1:], terms[0])
