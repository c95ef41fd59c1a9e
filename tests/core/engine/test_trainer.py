"""The training loop: hook order, loss bookkeeping, cancellation, checkpoint and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.engine.checkpoint import load_checkpoint
from core.engine.hooks import (
    CallbackHook,
    CancellationHook,
    CheckpointHook,
    HookBase,
    ListSink,
    MetricSinkHook,
    TrainingCanceled,
)
from core.engine.schedule import build_lr_scheduler, build_optimizer
from core.engine.trainer import Trainer
from core.spec import ScheduleSpec
from tests.core.engine.standins import TinyLossModel, tiny_loader

SCHEDULE = ScheduleSpec(epochs=3, lr=0.01, warmup_steps=2, lr_schedule="cosine")


def make_trainer(
    hooks: list[HookBase], *, epochs: int = 3, model_seed: int = 0, max_steps: int | None = None
) -> Trainer:
    torch.manual_seed(model_seed)
    model = TinyLossModel()
    loader = tiny_loader()
    optimizer = build_optimizer([model], SCHEDULE)
    steps = min(len(loader), max_steps or len(loader))
    scheduler = build_lr_scheduler(optimizer, SCHEDULE, total_steps=epochs * steps)
    return Trainer(
        model=model,
        data_loader=loader,
        optimizer=optimizer,
        scheduler=scheduler,
        epochs=epochs,
        device="cpu",
        hooks=hooks,
        grad_clip=1.0,
        max_steps_per_epoch=max_steps,
        stage="distill",
    )


class Recorder(HookBase):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def before_train(self) -> None:
        self.calls.append("before_train")

    def before_epoch(self) -> None:
        self.calls.append(f"before_epoch{self.trainer.state.epoch}")

    def before_step(self) -> None:
        self.calls.append("before_step")

    def after_step(self) -> None:
        self.calls.append(f"after_step{self.trainer.state.step}")

    def after_epoch(self) -> None:
        self.calls.append(f"after_epoch{self.trainer.state.epoch}")

    def after_train(self) -> None:
        self.calls.append("after_train")


def test_hooks_run_in_loop_order_and_state_is_filled() -> None:
    recorder = Recorder()
    sink = ListSink()
    trainer = make_trainer([recorder, MetricSinkHook(sink)], epochs=2, max_steps=2)
    state = trainer.train()

    assert recorder.calls == [
        "before_train",
        "before_epoch1", "before_step", "after_step1", "before_step", "after_step2",
        "after_epoch1",
        "before_epoch2", "before_step", "after_step3", "before_step", "after_step4",
        "after_epoch2",
        "after_train",
    ]  # fmt: skip
    assert (state.epoch, state.step, state.total_steps) == (2, 4, 4)
    assert set(state.losses) == {"det/bbox_regression", "det/classification"}
    assert state.loss_total == pytest.approx(sum(state.losses.values()), rel=1e-5)
    assert state.images_per_sec > 0 and state.eta_seconds == 0
    assert [step for step, _ in sink.series("loss/total")] == [1, 2, 3, 4]
    assert {"lr", "throughput", "det/classification"} <= set(sink.records[0][2])


def test_cancellation_hook_stops_training_and_still_closes_hooks() -> None:
    recorder = Recorder()
    asked: list[int] = []

    def should_cancel() -> bool:
        asked.append(1)
        return len(asked) >= 3

    trainer = make_trainer([CancellationHook(should_cancel), recorder])
    with pytest.raises(TrainingCanceled):
        trainer.train()
    assert trainer.state.step == 3
    assert recorder.calls[-1] == "after_train"
    assert "after_step3" not in recorder.calls  # the cancel hook came first and raised


def test_resume_continues_at_same_step_with_identical_parameters(tmp_path: Path) -> None:
    reference = make_trainer([], epochs=3)
    reference.train()

    def stop_after_two(trainer: Trainer) -> None:
        if trainer.state.epoch == 2:
            raise TrainingCanceled("stop")

    seen: list[Path] = []
    interrupted = make_trainer(
        [
            CheckpointHook(tmp_path, on_checkpoint=seen.append),
            CallbackHook(after_epoch=stop_after_two),
        ]
    )
    with pytest.raises(TrainingCanceled):
        interrupted.train()
    assert seen == [tmp_path / "last.pt", tmp_path / "last.pt"]

    payload = load_checkpoint(tmp_path / "last.pt")
    assert (payload["epoch"], payload["step"], payload["stage"]) == (2, 6, "distill")

    # A fresh process would build everything anew, with another initialisation even.
    resumed = make_trainer([], epochs=3, model_seed=99)
    resumed.load_checkpoint_state(payload)
    assert resumed.state.step == 6
    resumed.train()

    assert resumed.state.step == reference.state.step == 9
    for (name, a), (_, b) in zip(
        reference.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert resumed.optimizer.param_groups[0]["lr"] == reference.optimizer.param_groups[0]["lr"]


def test_resume_refuses_a_checkpoint_of_another_stage(tmp_path: Path) -> None:
    trainer = make_trainer([CheckpointHook(tmp_path)], epochs=1, max_steps=1)
    trainer.train()
    payload = load_checkpoint(tmp_path / "last.pt")
    payload["stage"] = "finetune"
    with pytest.raises(ValueError, match="stage"):
        make_trainer([]).load_checkpoint_state(payload)


def test_non_finite_loss_raises() -> None:
    trainer = make_trainer([], epochs=1, max_steps=1)
    with torch.no_grad():
        trainer.model.head.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="det/"):
        trainer.train()
