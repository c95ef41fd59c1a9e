"""Trainer hooks: checkpointing, evaluation, metric sinks, progress bar and cancellation."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from core.engine.checkpoint import CHECKPOINT_NAME, save_checkpoint
from core.engine.trainer import HookBase, Trainer, TrainingCanceled

__all__ = ["HookBase", "TrainingCanceled"]


class MetricSink(Protocol):
    """Anything that stores metric values of a run (a database, a JSON-lines file, a list)."""

    def write(self, step: int, epoch: int, values: dict[str, float]) -> None:
        """Store `values` (series name -> value) at `step` of `epoch`."""
        ...


class CallbackHook(HookBase):
    """A hook made of plain functions, each taking the trainer (handy for small additions)."""

    def __init__(
        self,
        *,
        before_train: Callable[[Trainer], None] | None = None,
        before_epoch: Callable[[Trainer], None] | None = None,
        before_step: Callable[[Trainer], None] | None = None,
        after_step: Callable[[Trainer], None] | None = None,
        after_epoch: Callable[[Trainer], None] | None = None,
        after_train: Callable[[Trainer], None] | None = None,
    ) -> None:
        self._callbacks = {
            "before_train": before_train,
            "before_epoch": before_epoch,
            "before_step": before_step,
            "after_step": after_step,
            "after_epoch": after_epoch,
            "after_train": after_train,
        }

    def _call(self, name: str) -> None:
        callback = self._callbacks[name]
        if callback is not None:
            callback(self.trainer)

    def before_train(self) -> None:
        """Run the `before_train` callback."""
        self._call("before_train")

    def before_epoch(self) -> None:
        """Run the `before_epoch` callback."""
        self._call("before_epoch")

    def before_step(self) -> None:
        """Run the `before_step` callback."""
        self._call("before_step")

    def after_step(self) -> None:
        """Run the `after_step` callback."""
        self._call("after_step")

    def after_epoch(self) -> None:
        """Run the `after_epoch` callback."""
        self._call("after_epoch")

    def after_train(self) -> None:
        """Run the `after_train` callback."""
        self._call("after_train")


class CancellationHook(HookBase):
    """Raises TrainingCanceled after a step when `should_cancel()` answers True."""

    def __init__(self, should_cancel: Callable[[], bool], *, every: int = 1) -> None:
        self.should_cancel = should_cancel
        self.every = max(every, 1)

    def after_step(self) -> None:
        """Ask `should_cancel` every `every` steps."""
        if self.trainer.state.step % self.every == 0 and self.should_cancel():
            raise TrainingCanceled(f"canceled at step {self.trainer.state.step}")


class CheckpointHook(HookBase):
    """Saves `directory/last.pt` after every epoch and calls `on_checkpoint` with its path."""

    def __init__(
        self,
        directory: Path,
        *,
        on_checkpoint: Callable[[Path], None] | None = None,
        enabled: bool = True,
    ) -> None:
        self.path = Path(directory) / CHECKPOINT_NAME
        self.on_checkpoint = on_checkpoint
        # Only rank 0 writes under DDP; the other ranks pass enabled=False.
        self.enabled = enabled

    def after_epoch(self) -> None:
        """Write the checkpoint of the epoch just finished."""
        if not self.enabled:
            return
        save_checkpoint(self.path, self.trainer.checkpoint_state())
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.path)


class EvalHook(HookBase):
    """Runs `evaluate()` every `every` epochs and after the last; stores `eval/*` in the state."""

    def __init__(self, evaluate: Callable[[], dict[str, Any]], *, every: int = 1) -> None:
        self.evaluate = evaluate
        self.every = max(every, 1)
        self.last_result: dict[str, Any] | None = None
        self.last_step: int | None = None

    def after_epoch(self) -> None:
        """Evaluate when the epoch is due."""
        state = self.trainer.state
        if state.epoch % self.every != 0 and state.epoch != state.epochs:
            return
        result = self.evaluate()
        self.last_result = result
        self.last_step = state.step
        bbox = result.get("bbox", {})
        state.eval_metrics = {
            f"eval/{name}": float(value)
            for name, value in bbox.items()
            if isinstance(value, int | float)
        }
        state.eval_step = state.step


class MetricSinkHook(HookBase):
    """Writes loss terms, `loss/total`, `lr` and `throughput` every `every` steps (and at the
    stage's first and last), `eval/*` when new, and
    the gradient diagnosis (`kd/grad/...`, `det/grad`) of the steps the trainer diagnosed."""

    def __init__(self, sink: MetricSink, *, every: int = 1) -> None:
        self.sink = sink
        self.every = max(every, 1)
        self._written_eval_step: int | None = None
        self._written_grad_step: int | None = None

    def before_train(self) -> None:
        """A new stage counts its steps from 1 again: what an earlier stage wrote is not it."""
        self._written_eval_step = None
        self._written_grad_step = None

    def after_step(self) -> None:
        """Write the step's series every `every` steps (the diagnosis whenever it is new)."""
        state = self.trainer.state
        values: dict[str, float] = {}
        # The first and last steps always: a short stage still has both ends of its curves.
        if state.step % self.every == 0 or state.step in (1, state.total_steps):
            values.update(state.losses)
            values["loss/total"] = state.loss_total
            values["lr"] = state.lr
            if state.images_per_sec > 0:
                values["throughput"] = state.images_per_sec
        if state.grad_step == state.step and state.grad_step != self._written_grad_step:
            self._written_grad_step = state.grad_step
            values.update(state.grad_norms)
        if values:
            self.sink.write(state.step, state.epoch, values)

    def after_epoch(self) -> None:
        """Write evaluation metrics that an EvalHook earlier in the order produced."""
        self._flush_eval()

    def after_train(self) -> None:
        """Write evaluation metrics not yet written."""
        self._flush_eval()

    def _flush_eval(self) -> None:
        state = self.trainer.state
        if state.eval_step is None or state.eval_step == self._written_eval_step:
            return
        self._written_eval_step = state.eval_step
        self.sink.write(state.eval_step, state.epoch, dict(state.eval_metrics))


class ProgressBarHook(HookBase):
    """A tqdm bar over the stage's steps with its loss terms, learning rate and ETA."""

    def __init__(
        self, *, description: str | None = None, max_terms: int = 6, every: int = 1
    ) -> None:
        self.description = description
        self.max_terms = max_terms
        self.every = max(every, 1)  # loss terms shown every N steps: reading them syncs
        self._bar: Any = None

    def before_train(self) -> None:
        """Open the bar at the step training starts from."""
        from tqdm.auto import tqdm

        state = self.trainer.state
        self._bar = tqdm(
            total=state.total_steps,
            initial=state.step,
            desc=self.description or state.stage,
            unit="step",
            dynamic_ncols=True,
            leave=True,
        )

    def after_step(self) -> None:
        """Advance the bar and show the loss terms."""
        if self._bar is None:
            return
        state = self.trainer.state
        if state.step % self.every and state.step != state.total_steps:
            self._bar.update(1)
            return
        postfix: dict[str, str] = {"loss": f"{state.loss_total:.3f}"}
        for name, value in list(state.losses.items())[: self.max_terms]:
            postfix[name.split("/", 1)[-1]] = f"{value:.3f}"
        postfix["lr"] = f"{state.lr:.2e}"
        postfix["ep"] = f"{state.epoch}/{state.epochs}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

    def after_train(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class ListSink:
    """A MetricSink that keeps every write in memory (tests, the CLI's summaries)."""

    def __init__(self) -> None:
        self.records: list[tuple[int, int, dict[str, float]]] = []

    def write(self, step: int, epoch: int, values: dict[str, float]) -> None:
        """Append the values."""
        self.records.append((step, epoch, {k: v for k, v in values.items() if math.isfinite(v)}))

    def series(self, name: str) -> list[tuple[int, float]]:
        """The (step, value) pairs written for one series name."""
        return [(step, values[name]) for step, _, values in self.records if name in values]
