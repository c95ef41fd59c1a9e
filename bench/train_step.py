"""Training-step benchmark: plain student training, hierarchical KD, hierarchical KD with the
teacher-feature cache, and a torchdistill-style FitNets + AT step, on the same batch.

    python -m bench.train_step --quick      # CI-sized
    python -m bench.train_step              # full (256 px, batch 8, ResNet-50 FPN teacher)

Prints each mode's seconds per step and images/s, its ratio to the plain step, and the peak
memory of each (CUDA: torch.cuda.max_memory_allocated; CPU: peak resident set size, sampled
every 2 ms, of a fresh process that builds only that mode's models and runs two steps). The
modes' steps alternate, so load drift hits all of them alike. `kd_cached` times steps whose
teacher features are all read back (the cache warmed by the untimed steps): the steady state
of every epoch after the first views were seen.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from bench.batches import synthetic_batch
from bench.figures import publish
from bench.machine import set_threads
from bench.timing import median
from core.spec import DistillSpec, ablation_distill
from core.structures import Batch

REPO_ROOT = Path(__file__).resolve().parent.parent
MODES = ("plain", "kd", "kd_cached", "fitnets_at")
MODE_LABELS = {
    "plain": "plain student",
    "kd": "hierarchical KD",
    "kd_cached": "hierarchical KD, teacher features cached",
    "fitnets_at": "FitNets + AT (torchdistill-style reference)",
}
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "image_size": 64,
        "batch_size": 2,
        "steps": 3,
        "warmup": 1,
        "teacher": "retinanet_resnet18_fpn",
    },
    "full": {
        "image_size": 256,
        "batch_size": 8,
        "steps": 10,
        "warmup": 2,
        "teacher": "retinanet_resnet50_fpn",
    },
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; --quick picks the CI-sized preset, explicit flags override it."""
    parser = argparse.ArgumentParser(prog="python -m bench.train_step", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, help="untimed steps per mode")
    parser.add_argument("--teacher", help="teacher arch (core.spec.TeacherArch)")
    parser.add_argument("--student", default="retinanet_mobilenet_v2_fpn")
    parser.add_argument("--num-classes", type=int, default=4, help="K + 1")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory figures")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    # Internal: measure one mode's peak RSS in this (fresh) process and print it as JSON.
    parser.add_argument("--memory-probe", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "full"]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def resolve_device(name: str) -> torch.device:
    """The torch device for `auto`, `cpu` or `cuda`."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def build_distillers(
    args: argparse.Namespace, device: torch.device, modes: Sequence[str] = MODES
) -> dict[str, torch.nn.Module]:
    """One loss model per mode; every student starts from the very same weights."""
    from bench.reference_kd import FitNetsAttention
    from core.distill.distiller import HierarchicalDistiller
    from core.distill.feature_cache import TeacherFeatureCache
    from core.models.detectors import build_student, build_teacher

    torch.manual_seed(0)
    student = build_student(
        arch=args.student, num_classes=args.num_classes, image_size=args.image_size
    )
    teacher = None
    if any(mode != "plain" for mode in modes):
        teacher = build_teacher(
            arch=args.teacher, num_classes=args.num_classes, image_size=args.image_size
        )
    full = DistillSpec()
    distillers: dict[str, torch.nn.Module] = {}
    for mode in modes:
        if mode == "plain":
            distillers[mode] = HierarchicalDistiller(
                None, copy.deepcopy(student), weights=ablation_distill(full, "no_kd")
            )
        elif mode in ("kd", "kd_cached"):
            distiller = HierarchicalDistiller(teacher, copy.deepcopy(student), weights=full)
            if mode == "kd_cached":
                distiller.feature_cache = TeacherFeatureCache("bench", max_bytes=1 << 32)
            distillers[mode] = distiller
        elif mode == "fitnets_at":
            assert teacher is not None
            distillers[mode] = FitNetsAttention(teacher, copy.deepcopy(student))
        else:
            raise ValueError(f"unknown mode {mode!r}")
    for distiller in distillers.values():
        distiller.to(device)
        if device.type == "cuda":
            distiller.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        distiller.train()
    return distillers


def make_step(distiller: torch.nn.Module, batch: Batch, device: torch.device) -> Callable[[], None]:
    """One optimisation step of `distiller` on `batch` (bf16 autocast on CUDA)."""
    modules = distiller.trainable_modules()  # type: ignore[operator]
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    images = batch.images
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    views = batch.views() or [(image_id, False) for image_id in batch.image_ids]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if device.type == "cuda"
            else contextlib.nullcontext()
        )
        with autocast:
            if getattr(distiller, "accepts_views", False):
                losses = distiller(images, batch.targets, step=0, views=views)
            else:
                losses = distiller(images, batch.targets, step=0)
            total = torch.stack([v.float() for v in losses.values()]).sum()
        total.backward()
        optimizer.step()

    return step


def _sync(device: torch.device) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.type == "cuda" else None


def time_interleaved(
    steps: dict[str, Callable[[], None]], *, warmup: int, repeats: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds per step of each mode, alternating modes so that load drift hits all alike."""
    sync = _sync(device)
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    samples: dict[str, list[float]] = {mode: [] for mode in steps}
    for _ in range(repeats):
        for mode, fn in steps.items():
            if sync is not None:
                sync()
            start = time.perf_counter()
            fn()
            if sync is not None:
                sync()
            samples[mode].append(time.perf_counter() - start)
    return samples


def _current_rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize()


@contextlib.contextmanager
def _rss_sampler(interval: float = 0.002) -> Iterator[dict[str, int]]:
    """Track the process's peak resident set size while the block runs."""
    peak = {"bytes": _current_rss_bytes()}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["bytes"] = max(peak["bytes"], _current_rss_bytes())
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()
        peak["bytes"] = max(peak["bytes"], _current_rss_bytes())


def memory_probe(args: argparse.Namespace) -> dict[str, float]:
    """Peak RSS (MiB) while one mode's steps run in this process, and what the steps added."""
    device = torch.device("cpu")
    distiller = build_distillers(args, device, modes=(args.memory_probe,))[args.memory_probe]
    batch = synthetic_batch(
        batch_size=args.batch_size, image_size=args.image_size, num_classes=args.num_classes
    )
    step = make_step(distiller, batch, device)
    before = _current_rss_bytes()
    with _rss_sampler() as peak:
        for _ in range(2):  # the second step holds optimizer state too
            step()
    mib = 1024.0**2
    return {
        "peak_rss_mib": peak["bytes"] / mib,
        "step_rss_mib": max(0, peak["bytes"] - before) / mib,
    }


def cpu_memory(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Run `memory_probe` for each mode in a fresh interpreter, so peaks do not mix."""
    results: dict[str, dict[str, float]] = {}
    common = [
        f"--image-size={args.image_size}",
        f"--batch-size={args.batch_size}",
        f"--teacher={args.teacher}",
        f"--student={args.student}",
        f"--num-classes={args.num_classes}",
        *([f"--threads={args.threads}"] if args.threads else []),
    ]
    for mode in MODES:
        cmd = [sys.executable, "-m", "bench.train_step", *common, f"--memory-probe={mode}"]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO_ROOT)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def cuda_memory(
    steps: dict[str, Callable[[], None]], device: torch.device
) -> dict[str, dict[str, float]]:
    """Peak CUDA memory allocated during two steps of each mode (MiB)."""
    results: dict[str, dict[str, float]] = {}
    for mode, fn in steps.items():
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        for _ in range(2):
            fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        results[mode] = {
            "peak_allocated_mib": peak / 1024.0**2,
            "step_allocated_mib": (peak - base) / 1024.0**2,
        }
    return results


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures and return them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    set_threads(args.threads)
    if args.memory_probe:
        result = memory_probe(args)
        print(json.dumps(result))
        return result
    device = resolve_device(args.device)
    distillers = build_distillers(args, device)
    batch = synthetic_batch(
        batch_size=args.batch_size, image_size=args.image_size, num_classes=args.num_classes
    ).to(device)
    steps = {mode: make_step(d, batch, device) for mode, d in distillers.items()}
    samples = time_interleaved(steps, warmup=max(args.warmup, 1), repeats=args.steps,
                               device=device)  # fmt: skip
    seconds = {mode: median(samples[mode]) for mode in MODES}
    figures: dict[str, Any] = {
        "setup": f"{args.student} student, {args.teacher} teacher, "
        f"{args.image_size}px, batch {args.batch_size}, {args.steps} timed steps per mode",
    }
    for mode in MODES:
        figures[f"{mode} step (s, median): {MODE_LABELS[mode]}"] = seconds[mode]
    for mode in MODES:
        figures[f"{mode} images/s"] = args.batch_size / seconds[mode]
    for mode in MODES[1:]:
        figures[f"{mode} / plain step time"] = seconds[mode] / seconds["plain"]
    figures["kd / fitnets_at step time"] = seconds["kd"] / seconds["fitnets_at"]
    if not args.no_memory:
        if device.type == "cuda":
            memory = cuda_memory(steps, device)
            unit = "CUDA max_memory_allocated"
            key = "peak_allocated_mib"
        else:
            memory = cpu_memory(args)
            unit = "peak RSS during 2 steps in a fresh process"
            key = "peak_rss_mib"
        for mode in MODES:
            figures[f"{mode} peak memory (MiB, {unit})"] = memory[mode][key]
        for mode in MODES[1:]:
            figures[f"{mode} / plain peak memory"] = memory[mode][key] / memory["plain"][key]
        if device.type == "cpu":
            for mode in MODES:
                figures[f"{mode} memory added by the steps (MiB)"] = memory[mode]["step_rss_mib"]
    return publish(
        "train step: plain, hierarchical KD (uncached, cached), FitNets + AT",
        figures,
        device=device.type,
        json_path=args.json,
        extra={"samples_s": samples},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    run(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
