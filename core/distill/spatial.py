"""Spatial (feature imitation) loss: PKD-normalised maps, fg/bg weighted mean squared error.

Normalisation follows PKD (Cao et al., NeurIPS 2022, "PKD: General Distillation Framework for
Object Detectors via Pearson Correlation Coefficient"): each channel of the teacher and of
the adapted student is standardised over the batch and positions (N x H x W), so that the
imitation is of the correlation pattern, not of magnitudes the adapter could rescale.
Without masks the loss is PKD's mean squared error over every element.

Channels are mapped in one of two ways. `fitted_projection` (the default) predicts the
teacher's map from the student's by the affine map that fits the batch best (weighted ridge
least squares, with the loss's own cell weights): the best any 1x1 adapter could do, so no
adapter can absorb the term, and what is left is what the student's features do not yet
hold (a linear-Gaussian form of variational information distillation, Ahn et al., CVPR
2019). The map is detached, as a trained adapter would be; the ridge grows with parameters
per effective sample so that coarse levels of small batches are not fitted to their noise.
The alternative is a learned 1x1 conv adapter (FitNets, Romero et al., 2015; PKD's
connector): with the student frozen, training the adapter alone brings the term to about 20-70 %
of its initial value on a held-out batch at init, so part of its gradient at init teaches
the adapter, not the student.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from core.distill.masks import LevelMasks

EPS = 1e-6
RIDGE = 1.0
"""Ridge of the fitted projection: times the Gram's mean diagonal and parameters per sample."""


def standardize_channels(features: Tensor) -> Tensor:
    """Each channel of (N, C, H, W) standardised over N, H, W (PKD)."""
    mean, scale = _channel_moments(features.flatten(2))  # (C,), (C,)
    return (features - mean[None, :, None, None]) * scale[None, :, None, None]


def weighted_mean(error: Tensor, weights: Tensor) -> Tensor:
    """Sum of weights * error over the batch divided by the weights' sum (0 if no weight)."""
    total = weights.sum()
    return (weights * error).sum() / total.clamp_min(EPS)


def cell_weights(
    masks: LevelMasks | None, like: Tensor, *, fg_weight: float, bg_weight: float
) -> Tensor:
    """(N, 1, H, W) weights of the spatial loss: fg and bg each summing to its weight."""
    if masks is None:
        return torch.ones_like(like[:, :1])
    fg, bg = masks.fg.float(), masks.bg.float()
    return fg_weight * fg / fg.sum().clamp_min(EPS) + bg_weight * bg / bg.sum().clamp_min(EPS)


def _solve_ridge(gram: Tensor, cross: Tensor, samples: Tensor) -> Tensor:
    """(C_s + 1, C_t) ridge solution from the design's Gram and cross moments.

    The ridge grows in proportion to parameters per effective sample: little with many
    cells, a lot where few cells (coarse levels, small batches) would let the fit chase noise.
    """
    ridge = RIDGE * gram.diagonal().mean().clamp_min(EPS) * gram.shape[0] / samples
    eye = torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype)
    return torch.linalg.solve(gram + ridge * eye, cross)


def _ridge_map(student: Tensor, teacher: Tensor, weights: Tensor) -> Tensor:
    """(C_s + 1, C_t) weighted ridge solution of teacher ~ [student, 1] over (M, C) samples."""
    ones = torch.ones_like(student[:, :1])
    design = torch.cat([student, ones], dim=1)  # (M, C_s + 1)
    gram = design.T @ (weights * design)  # (C_s + 1, C_s + 1)
    cross = design.T @ (weights * teacher)  # (C_s + 1, C_t)
    samples = weights.sum().pow(2) / weights.pow(2).sum().clamp_min(EPS)
    return _solve_ridge(gram, cross, samples)


def fitted_projection(student: Tensor, teacher: Tensor, weights: Tensor) -> Tensor:
    """(N, C_t, H, W) teacher predicted from the student (N, C_s, H, W) by the affine map
    that best fits the batch with the cell `weights` (N, 1, H, W) (ridge least squares).

    The map is detached: the student is pushed to hold what the best map cannot explain.
    """
    batch, channels_s, height, width = student.shape
    cells = student.float().permute(0, 2, 3, 1).reshape(-1, channels_s)  # (N*H*W, C_s)
    targets = teacher.float().permute(0, 2, 3, 1).reshape(cells.shape[0], -1)  # (N*H*W, C_t)
    # float32 even under autocast: the Gram sums tens of thousands of cells.
    with torch.autocast(student.device.type, enabled=False):
        with torch.no_grad():
            mapping = _ridge_map(cells.detach(), targets, weights.float().reshape(-1, 1))
        design = torch.cat([cells, torch.ones_like(cells[:, :1])], dim=1)  # (N*H*W, C_s + 1)
        predicted = design @ mapping  # (N*H*W, C_t)
    return predicted.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


def _channel_moments(features: Tensor) -> tuple[Tensor, Tensor]:
    """Per channel mean and 1 / (std + EPS) of (N, C, L) over N and L (`standardize_channels`).

    From each row's sum and L2 norm (one fast pass each, along memory) rather than
    `torch.var_mean` over dims (0, 2), which is several times slower on CPUs.
    """
    count = features.shape[0] * features.shape[2]
    mean = features.sum(dim=2).sum(dim=0) / count  # (C,)
    energy = torch.linalg.vector_norm(features, dim=2).pow(2).sum(dim=0) / count  # (C,)
    var = (energy - mean.pow(2)).clamp_min(0.0)
    return mean, 1.0 / (var.sqrt() + EPS)


class WeightedMoments(torch.autograd.Function):
    """Sum over images of (s w) s', (s w) t' and s w for s (N, C_s, L), w (N, 1, L) and a
    detached t (N, C_t, L), with one map-sized product in the backward instead of autograd's
    four: grad_s = w * ((G + G') s + X t + g) for the gradients G, X, g of the three outputs
    (the same for every image, so each is one broadcast product)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, s: Tensor, w: Tensor, t: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        ws = s * w  # (N, C_s, L)
        gram = torch.bmm(ws, s.transpose(1, 2)).sum(dim=0)  # (C_s, C_s)
        cross = torch.bmm(ws, t.transpose(1, 2)).sum(dim=0)  # (C_s, C_t)
        ctx.save_for_backward(s, w, t)
        return gram, cross, ws.sum(dim=(0, 2))

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_gram: Tensor, grad_cross: Tensor, grad_sum: Tensor
    ) -> tuple[Tensor | None, None, None]:
        s, w, t = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        grad = torch.matmul(grad_gram + grad_gram.T, s)  # (N, C_s, L)
        grad += torch.matmul(grad_cross, t)
        grad += grad_sum[None, :, None]
        grad *= w
        return grad, None, None


def _moments(
    student: Tensor,
    teacher: Tensor,
    weights: Tensor,
    *,
    standardize_student: bool = False,
    standardize_teacher: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Weighted second moments of the design [student, 1] and the teacher, over every cell.

    Returns the Gram (C_s + 1, C_s + 1) of the design, its cross moments (C_s + 1, C_t) with
    the teacher and the teacher's weighted energy (a scalar). The maps are read by batched
    products over the images ((C, HW) x (HW, C') each, summed): no transposed copy of a map
    and no predicted map is materialised. `standardize_student` / `standardize_teacher`: the
    moments of that map standardised per channel over N, H, W (`standardize_channels`),
    folded into the (C x C') moments instead of written out as a map: with s' = (s - m) / d,
    sum w s' t' = (sum w s t - m sum w t - sum w s m' + W m m') / (d d'), and likewise for
    the Gram and the sums.
    """
    s = student.flatten(2)  # (N, C_s, HW)
    t = teacher.flatten(2)  # (N, C_t, HW)
    w = weights.flatten(2)  # (N, 1, HW)
    gram_ss, cross_st, sum_ws = WeightedMoments.apply(s, w, t)
    sum_wt = torch.bmm(w, t.transpose(1, 2)).sum(dim=(0, 1))  # (C_t,)
    # The teacher's squares one image at a time: a whole map's temporary costs more in fresh
    # memory pages than in arithmetic.
    sum_wtt = sum(((ti * ti) @ wi.T).squeeze(1) for ti, wi in zip(t, w, strict=True))  # (C_t,)
    assert isinstance(sum_wtt, Tensor)
    total = w.sum()
    if standardize_student:
        mean, scale = _channel_moments(s)
        gram_ss = (
            gram_ss
            - mean[:, None] * sum_ws[None]
            - sum_ws[:, None] * mean[None]
            + total * mean[:, None] * mean[None]
        ) * (scale[:, None] * scale[None])
        cross_st = (cross_st - mean[:, None] * sum_wt[None]) * scale[:, None]
        sum_ws = (sum_ws - total * mean) * scale
    if standardize_teacher:
        mean_t, scale_t = _channel_moments(t)
        cross_st = (cross_st - sum_ws[:, None] * mean_t[None]) * scale_t[None]
        sum_wtt = (sum_wtt - 2.0 * mean_t * sum_wt + mean_t.pow(2) * total) * scale_t.pow(2)
        sum_wt = (sum_wt - mean_t * total) * scale_t
    gram = torch.cat(
        [
            torch.cat([gram_ss, sum_ws[:, None]], dim=1),
            torch.cat([sum_ws[None], total.reshape(1, 1)], dim=1),
        ]
    )  # (C_s + 1, C_s + 1)
    cross = torch.cat([cross_st, sum_wt[None]], dim=0)  # (C_s + 1, C_t)
    return gram, cross, sum_wtt.sum()


def fitted_residual(
    student: Tensor,
    teacher: Tensor,
    weights: Tensor,
    *,
    standardize_student: bool = False,
    standardize_teacher: bool = False,
) -> Tensor:
    """Weighted mean over cells and channels of (teacher - fitted projection of student)^2.

    The same value and student gradient as projecting with `fitted_projection` and taking the
    weighted mean of the squared error, in moment form: with D = [student, 1], G = D'WD,
    X = D'WT and the detached ridge map P, sum_i w_i |P'd_i - t_i|^2 = tr(P'GP) - 2 tr(P'X)
    + sum_i w_i |t_i|^2. The cost is that of G and X (computed once, for the fit and the loss)
    instead of the fit plus a predicted (N, C_t, H, W) map and its error; `weights` (N, 1, H, W)
    sum to the loss's own normalisation; the standardisations as in `_moments`.
    """
    with torch.autocast(student.device.type, enabled=False):
        gram, cross, energy = _moments(
            student.float(),
            teacher.detach().float(),
            weights.float(),
            standardize_student=standardize_student,
            standardize_teacher=standardize_teacher,
        )
        with torch.no_grad():
            samples = weights.sum().pow(2) / weights.pow(2).sum().clamp_min(EPS)
            mapping = _solve_ridge(gram.detach(), cross.detach(), samples)
        residual = (mapping * (gram @ mapping)).sum() - 2.0 * (mapping * cross).sum() + energy
    # The residual of a least-squares fit is >= 0; rounding may leave a tiny negative.
    return residual.clamp_min(0.0) / teacher.shape[1]


def spatial_loss(
    student: Tensor,
    teacher: Tensor,
    masks: LevelMasks | None = None,
    *,
    fg_weight: float = 1.0,
    bg_weight: float = 0.5,
    normalize: bool = True,
    fitted: bool = False,
    fused: bool = True,
) -> Tensor:
    """fg_weight * fg-weighted mean + bg_weight * bg mean of the squared error (N, C, H, W).

    Each mean is over the batch's cells (per object with scale-aware masks), so a weight means
    the same at every level whatever its size. Without masks: the mean over every element.
    `fitted`: the student's own map, mapped to the teacher's channels by `fitted_projection`;
    otherwise an adapted map of the teacher's shape. `fused` computes the fitted term in
    moment form (`fitted_residual`); off, by an explicit projection (the reference).
    """
    if (
        student.shape[0] != teacher.shape[0]
        or student.shape[2:] != teacher.shape[2:]
        or (not fitted and student.shape != teacher.shape)
    ):
        raise ValueError(
            f"spatial loss: student {tuple(student.shape)} != teacher {tuple(teacher.shape)}"
        )
    # float32: batch statistics, squares and the fit are fragile in half precision.
    student, teacher = student.float(), teacher.detach().float()
    if fitted and fused:
        if masks is None:
            weights = torch.full_like(student[:, :1], 1.0 / student[:, :1].numel())
        else:
            weights = cell_weights(masks, student, fg_weight=fg_weight, bg_weight=bg_weight)
        return fitted_residual(
            student, teacher, weights, standardize_student=normalize, standardize_teacher=normalize
        )
    if normalize:
        student, teacher = standardize_channels(student), standardize_channels(teacher)
    if fitted:
        weights = cell_weights(masks, student, fg_weight=fg_weight, bg_weight=bg_weight)
        student = fitted_projection(student, teacher, weights)
    error = (student - teacher).pow(2).mean(dim=1, keepdim=True)  # (N, 1, H, W)
    if masks is None:
        return error.mean()
    fg, bg = masks.fg.float(), masks.bg.float()
    return fg_weight * weighted_mean(error, fg) + bg_weight * weighted_mean(error, bg)
