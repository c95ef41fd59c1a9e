"""Each KD loss: zero for identical maps, positive and differentiable otherwise."""

from __future__ import annotations

import pytest
import torch

from core.distill.context import context_loss, global_context_loss, relation_loss
from core.distill.masks import build_level_masks
from core.distill.response import ResponseDistillation, response_loss
from core.distill.semantic import attention_loss, channel_similarity_loss
from core.distill.spatial import spatial_loss
from core.structures import Target


def _maps(seed: int, channels: int = 8) -> torch.Tensor:
    return torch.randn(2, channels, 16, 16, generator=torch.Generator().manual_seed(seed))


def _masks() -> dict:
    targets = [
        Target(boxes=torch.tensor([[4.0, 4.0, 20.0, 20.0]]), labels=torch.tensor([1])),
        Target(boxes=torch.tensor([[30.0, 30.0, 60.0, 60.0]]), labels=torch.tensor([1])),
    ]
    return build_level_masks(targets, (64, 64), {"p2": (16, 16)})


LOSSES = {
    "spatial": lambda s, t: spatial_loss(s, t, _masks()["p2"]),
    "spatial_unmasked": lambda s, t: spatial_loss(s, t, None),
    "spatial_fitted": lambda s, t: spatial_loss(s[:, :5], t, _masks()["p2"], fitted=True),
    "attention": lambda s, t: attention_loss(s, t),
    "channel_similarity": lambda s, t: channel_similarity_loss(s, t),
    "global_context": lambda s, t: global_context_loss(s, t),
    "relation": lambda s, t: relation_loss(s, t, grid=4),
    "context": lambda s, t: context_loss(s, t),
}


@pytest.mark.parametrize("name", sorted(set(LOSSES) - {"spatial_fitted"}))
def test_loss_is_zero_for_identical_maps(name: str) -> None:
    teacher = _maps(0)
    value = LOSSES[name](teacher.clone(), teacher)
    assert value.abs().item() < 1e-5


def test_fitted_spatial_is_small_when_the_teacher_is_a_linear_map_of_the_student() -> None:
    student = torch.randn(4, 6, 16, 16, generator=torch.Generator().manual_seed(3))
    mixing = torch.randn(6, 8, generator=torch.Generator().manual_seed(4))
    teacher = torch.einsum("nchw,cd->ndhw", student, mixing) + 2.0
    linear = spatial_loss(student, teacher, fitted=True)
    unrelated = spatial_loss(student, _maps(2).repeat(2, 1, 1, 1), fitted=True)
    # The ridge shrinks the fit a little; an unrelated teacher is not predictable at all.
    assert linear < 0.1 < 0.8 < unrelated


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_is_positive_and_reaches_the_student(name: str) -> None:
    student = _maps(1).requires_grad_(True)
    value = LOSSES[name](student, _maps(2))
    assert value.item() > 1e-4
    value.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_spatial_weights_foreground_apart_from_background() -> None:
    student, teacher, masks = _maps(1), _maps(2), _masks()["p2"]
    base = spatial_loss(student, teacher, masks, fg_weight=1.0, bg_weight=0.5)
    more_fg = spatial_loss(student, teacher, masks, fg_weight=3.0, bg_weight=0.5)
    no_bg = spatial_loss(student, teacher, masks, fg_weight=1.0, bg_weight=0.0)
    assert more_fg > base > no_bg > 0


def test_spatial_normalisation_ignores_feature_magnitude() -> None:
    student, teacher = _maps(1), _maps(2)
    plain = spatial_loss(student, teacher)
    scaled = spatial_loss(student, 50.0 * teacher + 3.0)
    assert torch.isclose(plain, scaled, rtol=1e-4)
    assert spatial_loss(student, 50.0 * teacher, normalize=False) > 10 * plain


def test_semantic_and_context_compare_maps_of_any_width_and_size() -> None:
    assert attention_loss(_maps(1)[..., :8, :8], _maps(2)).item() > 0
    narrow = _maps(1, channels=4)
    assert channel_similarity_loss(narrow, _maps(2)).item() > 0
    assert context_loss(narrow[..., :8, :8], _maps(2)).item() > 0
    # One image has no other image to be similar to: the channel part is zero.
    assert channel_similarity_loss(narrow[:1], _maps(2)[:1]).item() == 0.0


def test_response_loss_zero_when_equal_positive_otherwise() -> None:
    teacher = torch.randn(2, 30, 3)
    assert response_loss(teacher.clone(), teacher, 2.0, positives=4).abs().item() < 1e-6
    student = torch.randn(2, 30, 3, requires_grad=True)
    value = response_loss(student, teacher, 2.0, positives=4)
    assert value.item() > 0
    value.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    halved = response_loss(student, teacher, 2.0, positives=8)
    assert torch.isclose(halved * 2, value)
    with pytest.raises(ValueError, match="logits"):
        response_loss(torch.zeros(2, 10, 3), teacher, positives=1)


def test_response_needs_identical_anchor_layouts() -> None:
    with pytest.raises(ValueError, match="anchor layouts"):
        ResponseDistillation(("retinanet", 64), ("fcos", 64), temperature=2.0)
