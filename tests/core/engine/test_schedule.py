"""Learning-rate schedule: linear warm-up, then cosine, step or constant."""

from __future__ import annotations

import pytest
import torch

from core.engine.schedule import WARMUP_START_FACTOR, LRFactor, build_lr_scheduler, build_optimizer
from core.spec import ScheduleSpec


def test_warmup_ramps_linearly_to_the_base_rate() -> None:
    factor = LRFactor(kind="constant", warmup_steps=10, total_steps=100)
    assert factor(0) == pytest.approx(WARMUP_START_FACTOR)
    assert factor(5) == pytest.approx(WARMUP_START_FACTOR * 0.5 + 0.5)
    assert factor(10) == 1.0
    assert factor(99) == 1.0


def test_cosine_and_step_decay() -> None:
    cosine = LRFactor(kind="cosine", warmup_steps=0, total_steps=100)
    assert cosine(0) == pytest.approx(1.0)
    assert cosine(50) == pytest.approx(0.5)
    assert cosine(100) == pytest.approx(0.0, abs=1e-9)
    step = LRFactor(kind="step", warmup_steps=0, total_steps=90)
    assert [step(0), step(60), step(80)] == pytest.approx([1.0, 0.1, 0.01])


def test_scheduler_drives_the_optimizer_per_step() -> None:
    layer = torch.nn.Linear(2, 2)
    spec = ScheduleSpec(lr=0.1, warmup_steps=4, lr_schedule="constant", optimizer="sgd")
    optimizer = build_optimizer([layer], spec)
    scheduler = build_lr_scheduler(optimizer, spec, total_steps=10)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1 * WARMUP_START_FACTOR)
    assert rates[2] == pytest.approx(0.1 * (WARMUP_START_FACTOR * 0.5 + 0.5))
    assert rates[4:] == pytest.approx([0.1, 0.1])
    # biases are not decayed
    assert [g["weight_decay"] for g in optimizer.param_groups] == [spec.weight_decay, 0.0]
