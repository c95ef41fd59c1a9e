"""torchrun / DDP: the single-process path, and two gloo processes training in step."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler

from core.engine.distributed import (
    DistributedContext,
    context_from_env,
    init_distributed,
    shutdown,
    wrap_model,
)
from core.engine.hooks import CheckpointHook
from core.engine.schedule import build_lr_scheduler, build_optimizer
from core.engine.trainer import Trainer
from core.spec import ScheduleSpec
from tests.core.engine.standins import TinyImages, TinyLossModel, collate


def test_single_process_is_not_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    context = init_distributed(torch.device("cpu"))
    assert context == DistributedContext() and not context.enabled and context.is_main
    model = TinyLossModel()
    assert wrap_model(model, torch.device("cpu"), context) is model
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert context_from_env() == DistributedContext(rank=3, local_rank=0, world_size=4)
    assert not context_from_env().is_main


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(
        {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
         "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )  # fmt: skip
    torch.set_num_threads(1)
    device = torch.device("cpu")
    context = init_distributed(device)
    torch.manual_seed(0)
    model = TinyLossModel()
    dataset = TinyImages()
    loader = DataLoader(
        dataset, batch_size=2, sampler=DistributedSampler(dataset, seed=0), collate_fn=collate
    )
    schedule = ScheduleSpec(lr=0.01, warmup_steps=0)
    optimizer = build_optimizer([model], schedule)
    trainer = Trainer(
        model=wrap_model(model, device, context),
        data_loader=loader,
        optimizer=optimizer,
        scheduler=build_lr_scheduler(optimizer, schedule, total_steps=6),
        epochs=2,
        device=device,
        hooks=[CheckpointHook(Path(out), enabled=context.is_main)],
        max_steps_per_epoch=3,
    )
    trainer.train()
    # Parameters only: BatchNorm statistics are per rank (DDP copies rank 0's at each forward).
    torch.save(dict(model.named_parameters()), Path(out) / f"rank{rank}.pt")
    shutdown(context)


@pytest.mark.slow  # two processes importing torch: tens of seconds on a busy machine
def test_two_gloo_processes_train_identical_replicas(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    first = torch.load(tmp_path / "rank0.pt", weights_only=True)
    second = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(first[k], second[k]) for k in first)
    # Only rank 0 wrote the checkpoint, and it holds the module without DDP's prefix.
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)
    assert checkpoint["step"] == 6 and "conv.weight" in checkpoint["model"]["model"]


def test_ddp_leaves_the_frozen_teacher_alone() -> None:
    from torch import nn

    from core.engine.distributed import ddp_ignored_names

    model = TinyLossModel()
    model.teacher = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).requires_grad_(False)
    ignored = set(ddp_ignored_names(model))
    teacher_names = {f"teacher.{n}" for n, _ in model.teacher.named_parameters()}
    teacher_names |= {f"teacher.{n}" for n, _ in model.teacher.named_buffers()}
    assert ignored == teacher_names  # the student's BN statistics are still DDP's
    assert "norm.running_mean" not in ignored
