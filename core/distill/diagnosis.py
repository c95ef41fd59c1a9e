"""What each KD term does to the student: its gradient norm, and what an adapter alone absorbs."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from core.distill.distiller import HierarchicalDistiller, TeacherPass
from core.models.detectors import DenseOutput
from core.structures import Batch

DET_GRAD = "det/grad"
KD_GRAD_TOTAL = "kd/grad/total"


def grad_name(loss_name: str) -> str:
    """The series name of a loss's gradient norm: `kd/spatial/p2` -> `kd/grad/spatial/p2`."""
    return "kd/grad/" + loss_name.removeprefix("kd/")


def gradient_norm(value: Tensor, params: Sequence[Tensor]) -> float:
    """L2 norm of d value / d params over all `params` (0 where a parameter is unused)."""
    if not value.requires_grad:
        return 0.0
    grads = torch.autograd.grad(value, list(params), retain_graph=True, allow_unused=True)
    squares = [g.detach().float().pow(2).sum() for g in grads if g is not None]
    return float(torch.stack(squares).sum().sqrt()) if squares else 0.0


def gradient_norms(losses: Mapping[str, Tensor], params: Sequence[Tensor]) -> dict[str, float]:
    """Each weighted KD term's gradient norm on `params` (`kd/grad/...`), the summed detection
    losses' (`det/grad`) and all KD terms together (`kd/grad/total`).

    The graph is kept (retain_graph): call it before the step's backward pass.
    """
    norms: dict[str, float] = {}
    detection = [v for k, v in losses.items() if not k.startswith("kd/")]
    kd = {k: v for k, v in losses.items() if k.startswith("kd/")}
    if detection:
        norms[DET_GRAD] = gradient_norm(torch.stack([v.float() for v in detection]).sum(), params)
    for name, value in kd.items():
        norms[grad_name(name)] = gradient_norm(value, params)
    if kd:
        norms[KD_GRAD_TOTAL] = gradient_norm(
            torch.stack([v.float() for v in kd.values()]).sum(), params
        )
    return norms


def student_gradient_norms(
    distiller: HierarchicalDistiller, batch: Batch, *, step: int = 0
) -> dict[str, float]:
    """`gradient_norms` of one forward pass of the distiller on the student's parameters."""
    params = [p for p in distiller.student.parameters() if p.requires_grad]
    return gradient_norms(distiller(batch.images, batch.targets, step=step), params)


def adapter_absorption(
    distiller: HierarchicalDistiller,
    batch: Batch,
    held_out: Batch,
    steps: int = 200,
    *,
    lr: float = 1e-2,
) -> dict[str, float]:
    """Per KD term, its value on `held_out` after `steps` Adam steps on the adapters alone
    (student frozen, on `batch`) over its value before: 1 means nothing is absorbed, 0 that
    the adapters satisfy the term by themselves and it teaches the student nothing.

    The student runs in eval mode without gradients; the adapters are put back afterwards.
    """
    student, adapters = distiller.student, distiller.adapters
    was_training = student.training
    saved = copy.deepcopy(adapters.state_dict())
    student.eval()
    try:
        with torch.no_grad():
            passes = [
                (b, distiller.student_pass(b.images, b.targets), distiller.teacher_pass(b.images))
                for b in (batch, held_out)
            ]
            (_, train_student, train_teacher), (test_batch, test_student, test_teacher) = passes
            before = distiller.kd_terms(
                test_batch.images, test_batch.targets, test_student, test_teacher
            )
        params = [p for p in adapters.parameters() if p.requires_grad]
        if params and steps > 0:
            _fit(distiller, batch, train_student, train_teacher, params, steps=steps, lr=lr)
        with torch.no_grad():
            after = distiller.kd_terms(
                test_batch.images, test_batch.targets, test_student, test_teacher
            )
    finally:
        adapters.load_state_dict(saved)
        student.train(was_training)
    return {
        name: float(after[name] / value) if float(value) != 0.0 else 1.0
        for name, value in before.items()
    }


def _fit(
    distiller: HierarchicalDistiller,
    batch: Batch,
    student_pass: DenseOutput,
    teacher_pass: TeacherPass,
    params: list[nn.Parameter],
    *,
    steps: int,
    lr: float,
) -> None:
    """Adam on `params` alone, minimising the summed KD terms of the fixed passes."""
    optimizer = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        terms = distiller.kd_terms(batch.images, batch.targets, student_pass, teacher_pass)
        trainable = [v.float() for v in terms.values() if v.requires_grad]
        if not trainable:
            return
        total = torch.stack(trainable).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
