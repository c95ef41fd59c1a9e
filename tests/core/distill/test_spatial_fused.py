"""The fused (moment-form) fitted spatial term against the reference (explicit projection).

The fused form is what training runs (issue 11: few passes over the maps); the reference
projects the student onto the teacher's channels and takes the weighted error map. Both must
give the same loss and the same gradient on the student, with and without masks and
normalisation, at every level shape the detectors produce.
"""

from __future__ import annotations

import pytest
import torch

from core.distill.masks import build_level_masks
from core.distill.spatial import WeightedMoments, spatial_loss
from core.structures import Target

SIZES = {"p2": (16, 16), "p5": (2, 2)}


def _targets() -> list[Target]:
    return [
        Target(
            boxes=torch.tensor([[4.0, 4.0, 12.0, 12.0], [30.0, 8.0, 60.0, 40.0]]),
            labels=torch.tensor([1, 2]),
        ),
        Target(boxes=torch.tensor([[40.0, 40.0, 48.0, 50.0]]), labels=torch.tensor([1])),
    ]


def _loss_and_grad(
    fused: bool, level: str, *, masked: bool, normalize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    height, width = SIZES[level]
    student = torch.randn(2, 6, height, width, generator=generator, requires_grad=True)
    mixing = torch.randn(6, 10, generator=generator)
    noise = torch.randn(2, 10, height, width, generator=generator)
    teacher = torch.einsum("nchw,cd->ndhw", student.detach(), mixing) + 0.5 * noise
    masks = build_level_masks(_targets(), (64, 64), SIZES)[level] if masked else None
    loss = spatial_loss(student, teacher, masks, fitted=True, fused=fused, normalize=normalize)
    (grad,) = torch.autograd.grad(loss, student)
    return loss.detach(), grad


@pytest.mark.parametrize("level", sorted(SIZES))
@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_fused_term_matches_the_reference_in_value_and_gradient(
    level: str, masked: bool, normalize: bool
) -> None:
    fused_loss, fused_grad = _loss_and_grad(True, level, masked=masked, normalize=normalize)
    plain_loss, plain_grad = _loss_and_grad(False, level, masked=masked, normalize=normalize)
    assert fused_loss.item() > 0.0
    torch.testing.assert_close(fused_loss, plain_loss, rtol=1e-4, atol=1e-6)
    assert plain_grad.abs().max().item() > 0.0
    torch.testing.assert_close(fused_grad, plain_grad, rtol=1e-3, atol=1e-6)


def test_fused_term_in_half_precision_inputs_stays_close_to_fp32() -> None:
    """Teachers run in bf16 autocast: the term casts to fp32 first, so the loss barely moves."""
    generator = torch.Generator().manual_seed(3)
    student = torch.randn(2, 6, 8, 8, generator=generator)
    teacher = torch.randn(2, 10, 8, 8, generator=generator)
    full = spatial_loss(student, teacher, None, fitted=True)
    half = spatial_loss(student, teacher.bfloat16(), None, fitted=True)
    assert abs(half.item() - full.item()) <= 0.02 * full.item()


def test_the_weighted_moments_backward_is_the_analytic_gradient() -> None:
    """`WeightedMoments` writes its backward by hand (one product instead of four): checked
    against finite differences in float64."""
    generator = torch.Generator().manual_seed(5)
    student = torch.randn(2, 3, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, 1, 5, generator=generator, dtype=torch.float64)
    teacher = torch.randn(2, 4, 5, generator=generator, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda s: WeightedMoments.apply(s, weights, teacher), (student,), eps=1e-6, atol=1e-6
    )
