"""What a followed job is doing (queued, training, evaluating, exporting) and how fast.

Read from what the server keeps: the job's state, its progress record (core.engine.trainer
TrainerState.progress(): stage, epoch, epochs, step, total_steps, eta_seconds,
images_per_sec, lr, losses) and its events (worker.hooks writes "<stage>: epoch E/N done"
after each epoch, once that epoch's evaluation has finished).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from cli.figures import duration_text
from cli.states import ENDED

EPOCH_DONE = re.compile(r"^(?P<stage>[\w-]+): epoch (?P<epoch>\d+)/(?P<epochs>\d+) done\b")
EVAL_EVERY = 1  # core.spec.ScheduleSpec.eval_every's default
AFTER_TRAINING = {
    "distill": "exporting the student (ONNX, efficiency, teacher evaluation, pictures, report)",
    "teacher": "exporting the teacher (weights, efficiency, report)",
}


class StepRate:
    """Steps per second measured from the steps seen during this follow only.

    The first record seen is the baseline, so attaching to a job at step 83409 shows no rate
    until a later step arrives; a new stage (or a step going back) starts a new baseline.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._stage: str | None = None
        self._first: tuple[int, float] | None = None
        self._last: tuple[int, float] | None = None

    def observe(self, stage: str | None, step: int) -> None:
        """Note that the job is at `step` of `stage` now."""
        now = self.clock()
        if self._first is None or self._last is None or stage != self._stage:
            self._stage, self._first, self._last = stage, (step, now), (step, now)
        elif step < self._last[0]:
            self._first = self._last = (step, now)
        elif step > self._last[0]:
            self._last = (step, now)

    def per_second(self) -> float | None:
        """Steps per second between the first and the latest step seen (None before two)."""
        if self._first is None or self._last is None:
            return None
        steps = self._last[0] - self._first[0]
        seconds = self._last[1] - self._first[1]
        return steps / seconds if steps > 0 and seconds > 0 else None


def rate_text(rate: StepRate, progress: Mapping[str, Any]) -> str | None:
    """The speed to show: measured steps/s, else the record's own images/s, else nothing."""
    per_second = rate.per_second()
    if per_second is not None:
        return f"{per_second:.2f} step/s" if per_second >= 1 else f"{1 / per_second:.1f} s/step"
    images = progress.get("images_per_sec")
    if isinstance(images, int | float) and images > 0:
        return f"{images:.1f} img/s"
    return None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


class JobActivity:
    """What a job is doing now, from its state, progress record and events."""

    def __init__(self, job: Mapping[str, Any]) -> None:
        self.job_id = job.get("id")
        self.kind = str(job.get("kind") or "")
        spec = job.get("spec")
        raw = spec.get("schedule") if isinstance(spec, Mapping) else None
        schedule: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        self.eval_every = max(_int(schedule.get("eval_every")) or EVAL_EVERY, 1)
        self.finetunes = self.kind == "distill" and _int(schedule.get("finetune_epochs")) > 0
        self.state = str(job.get("state") or "")
        progress = job.get("progress")
        self.progress: dict[str, Any] = dict(progress) if isinstance(progress, Mapping) else {}
        self.epochs_done: set[tuple[str, int]] = set()
        self.last_event_id = 0

    def see_state(self, state: str | None) -> None:
        """A new job state."""
        if state:
            self.state = state

    def see_progress(self, progress: Mapping[str, Any]) -> None:
        """A new progress record."""
        if progress:
            self.progress = dict(progress)

    def see_event(self, event: Mapping[str, Any]) -> bool:
        """A job event; False when it was seen before (events are read twice on reconnects)."""
        event_id = _int(event.get("id"))
        if event_id and event_id <= self.last_event_id:
            return False
        self.last_event_id = max(self.last_event_id, event_id)
        match = EPOCH_DONE.match(str(event.get("message") or ""))
        if match:
            self.epochs_done.add((match["stage"], int(match["epoch"])))
        return True

    @property
    def stage(self) -> str:
        """The training stage of the progress record (teacher, distill, finetune)."""
        return str(self.progress.get("stage") or "")

    def _evaluating(self, step: int, total: int, epoch: int, epochs: int) -> bool:
        # At the last step of an epoch, before its "epoch done" line, the evaluation runs:
        # after the last epoch always, else every `eval_every` epochs.
        if total and step >= total:
            return True
        if not step or not epochs or total % epochs or step != epoch * (total // epochs):
            return False
        return epoch % self.eval_every == 0

    def phase(self) -> str:
        """queued, starting, training, evaluating, exporting, or the job's final state."""
        if self.state == "queued" or self.state in ENDED:
            return self.state
        if not self.progress:
            return "evaluating" if self.kind == "evaluate" else "starting"
        step, total = _int(self.progress.get("step")), _int(self.progress.get("total_steps"))
        epoch, epochs = _int(self.progress.get("epoch")), _int(self.progress.get("epochs"))
        if (self.stage, epoch) in self.epochs_done:
            if total and step >= total:
                last_stage = not (self.finetunes and self.stage == "distill")
                return "exporting" if last_stage else "starting"
            return "training"
        if self._evaluating(step, total, epoch, epochs):
            return "evaluating"
        return "training"

    def describe(self) -> str:
        """One line saying what the job is doing: `distill: evaluating after epoch 2/5`."""
        phase = self.phase()
        epoch = f"{_int(self.progress.get('epoch'))}/{_int(self.progress.get('epochs'))}"
        if phase == "starting":
            if self.progress:
                return f"{self.stage} done; the fine-tune stage starts"
            return "starting: loading the data and the models"
        if phase == "evaluating":
            if not self.progress:
                return "evaluating on the val split"
            return f"{self.stage}: evaluating on the val split after epoch {epoch}"
        if phase == "exporting":
            return f"{self.stage}: training done; " + AFTER_TRAINING.get(self.kind, "exporting")
        if phase == "training":
            # Before its first step the record says epoch 0: the epoch about to run is 1.
            running = max(_int(self.progress.get("epoch")), 1)
            step = _int(self.progress.get("step"))
            total = _int(self.progress.get("total_steps"))
            return (
                f"{self.stage}: training, epoch {running}/{_int(self.progress.get('epochs'))}, "
                f"step {step}/{total}"
            )
        return phase

    def postfix(self, rate: StepRate) -> dict[str, str]:
        """The figures beside the bar: loss, lr, speed and (while training) the ETA."""
        losses = self.progress.get("losses") or {}
        total_loss = losses.get("loss/total") if isinstance(losses, Mapping) else None
        if total_loss is None and isinstance(losses, Mapping) and losses:
            total_loss = sum(float(v) for v in losses.values())
        out: dict[str, str] = {}
        if total_loss is not None:
            out["loss"] = f"{float(total_loss):.3f}"
        lr = self.progress.get("lr")
        if isinstance(lr, int | float) and lr:
            out["lr"] = f"{float(lr):.2e}"
        speed = rate_text(rate, self.progress)
        if speed:
            out["speed"] = speed
        eta = self.progress.get("eta_seconds")
        if self.phase() == "training" and isinstance(eta, int | float) and eta > 0:
            out["eta"] = duration_text(eta)
        return out
