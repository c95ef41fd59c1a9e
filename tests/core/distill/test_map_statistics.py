"""The few-pass semantic and context terms against their plain, one-statistic-at-a-time forms.

Training runs `core.distill.map_statistics` (issue 11); `core.distill.semantic` and
`core.distill.context` are the definitions. Both must give the same value and the same
gradient on the student, for every option, and the distiller's terms must not change when it
switches between them.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from core.distill.context import context_loss, region_relations
from core.distill.distiller import HierarchicalDistiller
from core.distill.map_statistics import (
    SquareMeans,
    StatisticsPlan,
    context_value,
    map_statistics,
    semantic_value,
    teacher_statistics,
)
from core.distill.semantic import semantic_loss
from core.structures import Target

from .tiny_models import tiny_student, tiny_teacher


def _maps(batch: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    student = torch.randn(batch, 6, height, width, generator=generator) + 0.3
    teacher = torch.randn(batch, 10, height, width, generator=generator).relu()
    return student.requires_grad_(True), teacher


def _value_and_grad(
    fused: bool, plan: StatisticsPlan, part: str, shape: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    student, teacher = _maps(*shape)
    if fused:
        mine, theirs = map_statistics(student, plan), teacher_statistics(teacher, plan)
        value = semantic_value(mine, theirs) if part == "semantic" else context_value(mine, theirs)
    elif part == "semantic":
        value = semantic_loss(student, teacher, plan.p, channel=plan.channel)
    else:
        value = context_loss(
            student,
            teacher,
            use_global=plan.global_context,
            use_relation=plan.relation,
            grid=plan.grid,
        )
    (grad,) = torch.autograd.grad(value, student)
    return value.detach(), grad


CASES = {
    "semantic, p=2": ("semantic", StatisticsPlan(global_context=False, relation=False)),
    "semantic, p=3": ("semantic", StatisticsPlan(p=3.0, global_context=False, relation=False)),
    "attention only": (
        "semantic",
        StatisticsPlan(channel=False, global_context=False, relation=False),
    ),
    "context": ("context", StatisticsPlan(semantic=False)),
    "global context only": ("context", StatisticsPlan(semantic=False, relation=False)),
    "relation only": ("context", StatisticsPlan(semantic=False, global_context=False)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("shape", [(3, 12, 10), (1, 4, 4), (2, 2, 2)])
def test_few_pass_terms_match_the_plain_forms_in_value_and_gradient(
    case: str, shape: tuple[int, int, int]
) -> None:
    part, plan = CASES[case]
    fused_value, fused_grad = _value_and_grad(True, plan, part, shape)
    plain_value, plain_grad = _value_and_grad(False, plan, part, shape)
    assert plain_value.item() > 0.0
    torch.testing.assert_close(fused_value, plain_value, rtol=1e-4, atol=1e-7)
    assert plain_grad.abs().max().item() > 0.0
    torch.testing.assert_close(fused_grad, plain_grad, rtol=1e-3, atol=1e-6)


def test_teacher_statistics_carry_no_autograd_history() -> None:
    _, teacher = _maps(2, 6, 6)
    stats = teacher_statistics(teacher.requires_grad_(True), StatisticsPlan())
    for value in (stats.attention, stats.channel, stats.affinity, stats.relations):
        assert value is not None and not value.requires_grad


def test_the_distillers_terms_are_the_same_fused_or_plain(
    images: torch.Tensor, targets: list[Target]
) -> None:
    torch.manual_seed(0)
    student, teacher = tiny_student(), tiny_teacher()
    distiller = HierarchicalDistiller(teacher, student).train()
    results = {}
    for fused in (True, False):
        distiller.fused_terms = fused
        torch.manual_seed(1)
        losses = distiller(images, targets)
        kd = {name: value for name, value in losses.items() if name.startswith("kd/")}
        grads = torch.autograd.grad(sum(kd.values()), list(student.parameters()), allow_unused=True)
        results[fused] = (kd, [g for g in grads if g is not None])
    (fused_kd, fused_grads), (plain_kd, plain_grads) = results[True], results[False]
    assert sorted(fused_kd) == sorted(plain_kd)
    assert any(name.startswith("kd/context/") for name in fused_kd)
    assert any(name.startswith("kd/semantic/") for name in fused_kd)
    for name, value in plain_kd.items():
        torch.testing.assert_close(fused_kd[name], value, rtol=1e-4, atol=1e-6, msg=name)
    assert len(fused_grads) == len(plain_grads) > 0
    # Backpropagated through the student (batch norms cancel most of some gradients), the two
    # forms' rounding is compared on the whole gradient, not element by element.
    fused_flat = torch.cat([g.flatten() for g in fused_grads])
    plain_flat = torch.cat([g.flatten() for g in plain_grads])
    assert plain_flat.norm().item() > 0.0
    assert (fused_flat - plain_flat).norm().item() <= 1e-4 * plain_flat.norm().item()


def test_the_square_means_backward_is_the_analytic_gradient() -> None:
    """`SquareMeans` writes its backward by hand: checked against finite differences."""
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(SquareMeans.apply, (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (2, 3)])
def test_region_relations_pool_like_adaptive_pooling(size: tuple[int, int]) -> None:
    features = torch.randn(2, 5, *size, generator=torch.Generator().manual_seed(4))
    cells = (min(4, size[0]), min(4, size[1]))
    pooled = F.adaptive_avg_pool2d(features, cells).flatten(2)
    pooled = F.normalize(pooled - pooled.mean(dim=2, keepdim=True), dim=1, eps=1e-6)
    torch.testing.assert_close(region_relations(features, 4), pooled.transpose(1, 2) @ pooled)
