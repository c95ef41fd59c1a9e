"""Gradient diagnosis in the loop, separate clipping, and their place in metrics and report."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from core.engine.hooks import ListSink, MetricSinkHook
from core.engine.report import diagnosis_lines, write_report
from core.engine.trainer import Trainer
from core.pipeline.stages import grad_summary
from core.spec import JobSpec
from core.structures import Target
from tests.core.engine.standins import TinyLossModel, tiny_loader


class TinyKDModel(TinyLossModel):
    """The stand-in loss model plus a KD term far larger than its detection losses."""

    def __init__(self, kd_scale: float = 1000.0) -> None:
        super().__init__()
        self.kd_scale = kd_scale

    def forward(self, images: torch.Tensor, targets: list[Target], *, step: int = 0) -> dict:
        losses = super().forward(images, targets, step=step)
        features = self.norm(self.conv(images)).relu().mean(dim=(2, 3))  # (N, 4)
        losses["kd/spatial/p2"] = self.kd_scale * (features - 1.0).pow(2).mean()
        return losses


def _trainer(model: nn.Module, *, clip_mode: str, diagnose_every: int = 0, **kw: object) -> Trainer:
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    return Trainer(
        model=model,
        data_loader=tiny_loader(),
        optimizer=optimizer,
        scheduler=None,
        epochs=1,
        device="cpu",
        grad_clip=1.0,
        clip_mode=clip_mode,
        diagnose_every=diagnose_every,
        max_steps_per_epoch=1,
        **kw,  # type: ignore[arg-type]
    )


def _clipped(grads: list[torch.Tensor | None], max_norm: float) -> list[torch.Tensor | None]:
    norm = torch.stack([g.norm() for g in grads if g is not None]).norm()
    factor = min(1.0, max_norm / (float(norm) + 1e-6))
    return [None if g is None else g * factor for g in grads]


def test_separate_clipping_never_lets_kd_shrink_the_detection_gradient() -> None:
    torch.manual_seed(0)
    model = TinyKDModel()
    reference = copy.deepcopy(model)
    loader = tiny_loader()
    assert loader.generator is not None
    loader.generator.manual_seed(1)  # the trainer reseeds its loader so for epoch 1
    batch = next(iter(loader))
    losses = reference(batch.images, batch.targets)
    params = list(reference.parameters())
    det = sum(v for k, v in losses.items() if k.startswith("det/"))
    kd = losses["kd/spatial/p2"]
    det_grads = torch.autograd.grad(det, params, retain_graph=True, allow_unused=True)
    kd_grads = torch.autograd.grad(kd, params, allow_unused=True)
    # The detection gradient alone is below the clip: it must pass unchanged.
    assert float(torch.stack([g.norm() for g in det_grads if g is not None]).norm()) < 1.0
    expected = [
        sum((g for g in pair if g is not None), torch.zeros_like(p))
        for p, *pair in zip(
            params, _clipped(list(det_grads), 1.0), _clipped(list(kd_grads), 1.0), strict=True
        )
    ]
    before = [p.detach().clone() for p in model.parameters()]
    _trainer(model, clip_mode="separate").train()
    for old, new, grad in zip(before, model.parameters(), expected, strict=True):
        assert torch.allclose(old - new.detach(), grad, atol=1e-6)

    joint = copy.deepcopy(reference)
    joint_before = [p.detach().clone() for p in joint.parameters()]
    _trainer(joint, clip_mode="joint").train()
    head_step = (joint_before[-2] - joint.head.weight.detach()).norm()
    # One norm over the sum: the KD term scales the detection gradient of the head down.
    assert head_step < 0.01 * det_grads[-2].norm()


def test_the_trainer_diagnoses_every_n_steps_and_the_sink_gets_it() -> None:
    torch.manual_seed(0)
    sink = ListSink()
    model = TinyKDModel(kd_scale=1.0)
    trainer = Trainer(
        model=model,
        data_loader=tiny_loader(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        scheduler=None,
        epochs=2,
        device="cpu",
        hooks=[MetricSinkHook(sink, every=5)],
        diagnose_every=2,
    )
    state = trainer.train()
    assert [step for step, _ in state.grad_history] == [1, 3, 5]
    assert [step for step, _ in sink.series("kd/grad/spatial/p2")] == [1, 3, 5]
    assert [step for step, _ in sink.series("det/grad")] == [1, 3, 5]
    # Every 5 steps, and the stage's first and last (6 steps in all).
    assert [step for step, _ in sink.series("loss/total")] == [1, 5, 6]
    assert all(value > 0 for _, value in sink.series("kd/grad/total"))


def test_metrics_and_report_carry_the_diagnosis(tmp_path: Path) -> None:
    history = [
        (1, {"det/grad": 0.5, "kd/grad/spatial/p2": 4.0}),
        (51, {"det/grad": 0.7, "kd/grad/spatial/p2": 2.0}),
    ]
    summary = grad_summary(history)
    assert summary["steps"] == [1, 51]
    assert summary["kd/grad/spatial/p2"] == {"first": 4.0, "last": 2.0, "mean": 3.0}
    metrics = {
        "kind": "distill",
        "spec_hash": "abc",
        "student": None,
        "teacher": None,
        "efficiency": {},
        "distill/pairs": {"p2": "p3 (resized x2)", "p3": "p3"},
        "kd/grad": summary,
        "kd/absorbed": {"kd/spatial/p2": 1.0, "kd/head": 0.61},
    }
    text = "\n".join(diagnosis_lines(metrics))
    assert "p2 <- p3 (resized x2)" in text
    assert "| kd/grad/spatial/p2 | 4 | 2 | 3 |" in text
    assert "| kd/head | 0.61 |" in text
    spec = JobSpec.model_validate(
        {"kind": "distill", "data": {"path": "d"}, "teacher": {"checkpoint": "t"}, "student": {}}
    )
    report = write_report(tmp_path / "report.md", spec=spec, metrics=metrics)
    assert "## Gradient norm on the student per term (2 diagnosed steps)" in report.read_text()
    assert diagnosis_lines({"kind": "teacher"}) == []


def test_clip_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="clip_mode"):
        _trainer(TinyKDModel(), clip_mode="sometimes")
