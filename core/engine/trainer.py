"""The training loop: sums a dict of named losses, AMP and channels_last on CUDA, hooks, resume."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from core.distill.diagnosis import gradient_norms
from core.engine.checkpoint import TrainingCheckpointError
from core.engine.randomness import rng_states, set_rng_states
from core.structures import Batch, DetectorOutput


class TrainingCanceled(Exception):
    """Raised by a hook to stop training cooperatively; the trainer lets it propagate."""


class HookBase:
    """A training hook: the trainer sets `trainer`, then calls the methods in loop order."""

    trainer: Trainer

    def before_train(self) -> None:
        """Called once before the first epoch (also after a resume)."""

    def before_epoch(self) -> None:
        """Called before each epoch; `trainer.state.epoch` is the epoch about to run (1-based)."""

    def before_step(self) -> None:
        """Called before each optimiser step."""

    def after_step(self) -> None:
        """Called after each optimiser step; `trainer.state.losses` holds its loss terms."""

    def after_epoch(self) -> None:
        """Called after each epoch."""

    def after_train(self) -> None:
        """Called once when training ends, also when it ends by an exception."""


def _finite(value: float | None) -> float:
    number = float(value or 0.0)
    return number if math.isfinite(number) else 0.0


@dataclass
class TrainerState:
    """Where training stands; hooks read it (epoch is 1-based, step counts optimiser steps)."""

    stage: str = "train"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    loss_values: dict[str, torch.Tensor] = field(default_factory=dict)
    """The last step's loss terms, detached on the device: read as floats through `losses`."""
    lr: float = 0.0
    images_per_sec: float = 0.0
    eta_seconds: float | None = None
    eval_metrics: dict[str, float] = field(default_factory=dict)
    eval_step: int | None = None
    grad_norms: dict[str, float] = field(default_factory=dict)
    grad_step: int | None = None  # the step whose losses `grad_norms` diagnosed
    grad_history: list[tuple[int, dict[str, float]]] = field(default_factory=list)

    _floats: tuple[int, dict[str, float]] | None = field(default=None, repr=False, compare=False)

    @property
    def losses(self) -> dict[str, float]:
        """The last step's loss terms as floats: one host synchronisation, once per step."""
        if self._floats is None or self._floats[0] != self.step:
            names = list(self.loss_values)
            values = (
                torch.stack([self.loss_values[n].float() for n in names]).tolist() if names else []
            )
            self._floats = (self.step, dict(zip(names, values, strict=True)))
        return self._floats[1]

    @property
    def loss_total(self) -> float:
        """The sum of the last step's loss terms."""
        return float(sum(self.losses.values()))

    def progress(self) -> dict[str, Any]:
        """The JSON progress record of the contracts (JobPublic.progress): the one owner.

        Non-finite figures (a diverged loss, no ETA yet) become 0 or are left out, so the
        record is always valid JSON for the database and the dashboard.
        """
        return {
            "stage": self.stage,
            "epoch": self.epoch,
            "epochs": self.epochs,
            "step": self.step,
            "total_steps": self.total_steps,
            "eta_seconds": _finite(self.eta_seconds),
            "images_per_sec": _finite(self.images_per_sec),
            "lr": _finite(self.lr),
            "losses": {k: float(v) for k, v in self.losses.items() if math.isfinite(float(v))},
        }


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def trainable_modules_of(model: nn.Module) -> dict[str, nn.Module]:
    """The named modules a checkpoint saves: `trainable_modules()` if the model has it."""
    inner = unwrap(model)
    getter = getattr(inner, "trainable_modules", None)
    if callable(getter):
        return dict(getter())
    return {"model": inner}


def steps_per_epoch(loader: Iterable[Any], max_steps: int | None) -> int:
    """Optimiser steps in one epoch: the loader's length, capped by `max_steps`."""
    length = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    if length is None:
        if max_steps is None:
            raise ValueError("an unsized data loader needs max_steps_per_epoch")
        return max_steps
    return length if max_steps is None else min(length, max_steps)


def is_kd_loss(name: str) -> bool:
    """True for distillation terms (`kd/...`); everything else counts as detection."""
    return name.startswith("kd/")


def clip_factor(norm: torch.Tensor, max_norm: float) -> torch.Tensor:
    """What clip_grad_norm_ multiplies by: max_norm / norm when above, 1 when below or not finite.

    A non-finite norm is left alone so that the GradScaler sees the inf and skips the step.
    """
    factor = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    return torch.where(torch.isfinite(norm), factor, torch.ones_like(factor))


def _amp_dtype(device: torch.device) -> torch.dtype:
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


class Trainer:
    """A small loop over a loss model `model(images, targets, step=...) -> dict[str, Tensor]`."""

    def __init__(
        self,
        *,
        model: nn.Module,
        data_loader: DataLoader[Any] | Iterable[Batch],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        epochs: int,
        device: torch.device | str,
        hooks: Sequence[HookBase] = (),
        amp: bool = False,
        grad_clip: float | None = None,
        max_steps_per_epoch: int | None = None,
        stage: str = "train",
        channels_last: bool = False,
        clip_mode: str = "separate",
        diagnose_every: int = 0,
        check_every: int = 10,
    ) -> None:
        self.device = torch.device(device)
        self.model = model
        self.data_loader = data_loader
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.hooks = list(hooks)
        self.grad_clip = grad_clip
        if clip_mode not in ("separate", "joint"):
            raise ValueError(f"clip_mode: 'separate' or 'joint', not {clip_mode!r}")
        self.clip_mode = clip_mode
        self.diagnose_every = max(diagnose_every, 0)
        self.check_every = max(check_every, 1)
        on_cuda = self.device.type == "cuda"
        # Mixed precision and channels_last pay off on GPUs only; on CPU they are ignored.
        self.amp = amp and on_cuda
        self.amp_dtype = _amp_dtype(self.device) if self.amp else torch.float32
        self.channels_last = channels_last and on_cuda
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.amp and self.amp_dtype == torch.float16
        )
        steps = steps_per_epoch(data_loader, max_steps_per_epoch)
        self.steps_per_epoch = steps
        self.state = TrainerState(
            stage=stage, epochs=epochs, total_steps=epochs * steps, lr=self._current_lr()
        )
        self.start_epoch = 0
        generator = getattr(data_loader, "generator", None)
        self._loader_seed = (
            generator.initial_seed() if isinstance(generator, torch.Generator) else None
        )
        self._epoch_end_rng: dict[str, Any] | None = None
        self._run_started: float | None = None
        self._run_start_step = 0

    # ----------------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors and plain types (see engine.checkpoint)."""
        return {
            "stage": self.state.stage,
            "epoch": self.state.epoch,
            "epochs": self.state.epochs,
            "step": self.state.step,
            "model": {
                name: module.state_dict()
                for name, module in trainable_modules_of(self.model).items()
            },
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": self._epoch_end_rng if self._epoch_end_rng is not None else rng_states(),
        }

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        """Restore a `checkpoint_state()` so that `train()` continues after its epoch."""
        if payload["stage"] != self.state.stage:
            raise TrainingCheckpointError(
                f"checkpoint is of stage {payload['stage']!r}, "
                f"this trainer runs {self.state.stage!r}"
            )
        modules = trainable_modules_of(self.model)
        missing = sorted(set(modules) - set(payload["model"]))
        if missing:
            raise TrainingCheckpointError(f"checkpoint lacks the module(s) {missing}")
        for name, module in modules.items():
            module.load_state_dict(payload["model"][name])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None and payload.get("scheduler") is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        if payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        if payload.get("rng") is not None:
            set_rng_states(payload["rng"])
            self._epoch_end_rng = payload["rng"]
        self.start_epoch = int(payload["epoch"])
        self.state.epoch = self.start_epoch
        self.state.step = int(payload["step"])
        self.state.lr = self._current_lr()

    # ----------------------------------------------------------------- the loop
    def train(self) -> TrainerState:
        """Run the remaining epochs; TrainingCanceled from a hook propagates after `after_train`."""
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        for hook in self.hooks:
            hook.trainer = self
        self._run_started = time.perf_counter()
        self._run_start_step = self.state.step
        try:
            self._call("before_train")
            for epoch in range(self.start_epoch + 1, self.state.epochs + 1):
                self._run_epoch(epoch)
        finally:
            self._call("after_train")
        return self.state

    def _reseed_data(self, epoch: int) -> None:
        # Each epoch's shuffle and augmentation depend on (seed, epoch) only, so that a run
        # resumed in a fresh process sees the same batches as one that never stopped.
        for part in (
            getattr(self.data_loader, "sampler", None),
            getattr(self.data_loader, "dataset", None),
        ):
            set_epoch = getattr(part, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(epoch)
        if self._loader_seed is not None:
            generator = self.data_loader.generator  # type: ignore[union-attr]
            generator.manual_seed((self._loader_seed * 100_003 + epoch) % 2**63)

    def _run_epoch(self, epoch: int) -> None:
        self.state.epoch = epoch
        self._reseed_data(epoch)
        self.model.train()
        self._call("before_epoch")
        images_seen = 0
        epoch_started = time.perf_counter()
        for index, batch in enumerate(self.data_loader):
            if index >= self.steps_per_epoch:
                break
            self._call("before_step")
            images_seen += self._run_step(batch)
            self._update_speed(images_seen, epoch_started)
            self._call("after_step")
        # Hooks (evaluation, say) must not change the randomness training sees next, so the
        # generators are put back after them; the checkpoint stores this same state.
        self._epoch_end_rng = rng_states()
        self._call("after_epoch")
        set_rng_states(self._epoch_end_rng)

    def _run_step(self, batch: Batch) -> int:
        batch = batch.to(self.device)
        images = batch.images
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        extra: dict[str, Any] = {}
        if getattr(unwrap(self.model), "accepts_views", False):
            extra["views"] = batch.views()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            output = self.model(images, batch.targets, step=self.state.step, **extra)
        losses: dict[str, torch.Tensor] = (
            output.losses if isinstance(output, DetectorOutput) else output
        )
        if not losses:
            raise RuntimeError("the model returned no losses in training mode")
        total = torch.stack([value.float() for value in losses.values()]).sum()
        # On a GPU a finiteness check waits for the step: check every `check_every` steps
        # (a diverged run fails a few steps late); on the CPU it costs nothing, so always.
        due = self.device.type == "cpu" or self.state.step % self.check_every == 0
        if due and not torch.isfinite(total):
            terms = {name: float(value.detach()) for name, value in losses.items()}
            raise FloatingPointError(f"non-finite loss at step {self.state.step}: {terms}")
        if self.diagnose_every and self.state.step % self.diagnose_every == 0:
            self._diagnose(losses)
        self.optimizer.zero_grad(set_to_none=True)
        if self._clips_separately(losses):
            self._backward_clipped_apart(losses)
        else:
            self.scaler.scale(total).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self._params(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.state.lr = self._current_lr()  # the rate this step used
        if self.scheduler is not None:
            self.scheduler.step()
        self.state.step += 1
        # No host synchronisation here: hooks turn the values into floats when they log them.
        self.state.loss_values = {name: value.detach() for name, value in losses.items()}
        return int(images.shape[0])

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _clips_separately(self, losses: dict[str, torch.Tensor]) -> bool:
        """Separate clipping needs both kinds of loss and no DDP (which wants one backward)."""
        if self.grad_clip is None or self.clip_mode != "separate":
            return False
        if isinstance(self.model, nn.parallel.DistributedDataParallel):
            return False  # DDP reduces gradients in .backward(): clip jointly
        kinds = {is_kd_loss(name) for name in losses}
        return kinds == {True, False}

    def _backward_clipped_apart(self, losses: dict[str, torch.Tensor]) -> None:
        """Gradients of the detection and the KD losses, each clipped to grad_clip, summed.

        The KD terms can then never scale the detection gradient down, as one norm over their
        sum does when KD is large. Costs a second backward pass over the shared graph.
        """
        assert self.grad_clip is not None
        params = [p for p in self._params() if p.requires_grad]
        parts = [
            torch.stack([v.float() for k, v in losses.items() if is_kd_loss(k) == kd]).sum()
            for kd in (False, True)
        ]
        scale = float(self.scaler.get_scale()) if self.scaler.is_enabled() else 1.0
        summed: list[torch.Tensor | None] = [None] * len(params)
        for index, part in enumerate(parts):
            grads = torch.autograd.grad(
                self.scaler.scale(part), params, retain_graph=index == 0, allow_unused=True
            )
            present = [g for g in grads if g is not None]
            if not present:
                continue
            norm = (
                torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g.float()) for g in present])
                )
                / scale
            )
            factor = clip_factor(norm, self.grad_clip)
            for slot, grad in enumerate(grads):
                if grad is not None:
                    scaled = grad * factor.to(grad.dtype)
                    previous = summed[slot]
                    summed[slot] = scaled if previous is None else previous + scaled
        for param, total in zip(params, summed, strict=True):
            param.grad = total

    def _diagnose(self, losses: dict[str, torch.Tensor]) -> None:
        """Each loss term's gradient norm on the student (or all trainable parameters)."""
        modules = trainable_modules_of(self.model)
        module = modules["student"] if "student" in modules else next(iter(modules.values()))
        params = [p for p in module.parameters() if p.requires_grad]
        norms = gradient_norms(losses, params)
        self.state.grad_norms = norms
        self.state.grad_step = self.state.step + 1  # the step number its losses are logged at
        self.state.grad_history.append((self.state.grad_step, norms))

    def _update_speed(self, images_seen: int, epoch_started: float) -> None:
        now = time.perf_counter()
        elapsed = now - epoch_started
        if elapsed > 0:
            self.state.images_per_sec = images_seen / elapsed
        assert self._run_started is not None
        steps_done = self.state.step - self._run_start_step
        if steps_done > 0:
            per_step = (now - self._run_started) / steps_done
            self.state.eta_seconds = per_step * max(self.state.total_steps - self.state.step, 0)

    def _current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _call(self, name: str) -> None:
        for hook in self.hooks:
            getattr(hook, name)()
