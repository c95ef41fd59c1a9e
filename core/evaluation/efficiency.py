"""Model cost: parameters, GFLOPs (FlopCounterMode) and latency at batch 1 with its spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def _dense_forward(model: nn.Module, images: torch.Tensor) -> Any:
    # raw_outputs skips box decoding and NMS, whose cost depends on the scores, not the model.
    raw = getattr(model, "raw_outputs", None)
    if callable(raw) and getattr(model, "has_dense_head", True):
        return raw(images)
    return model(images)


@torch.inference_mode()
def count_gflops(model: nn.Module, *, image_size: int, device: torch.device | None = None) -> float:
    """GFLOPs (1e9 floating-point operations, a multiply-add counts 2) of one image."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    images = torch.rand(1, 3, image_size, image_size, device=device)
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            _dense_forward(model, images)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds of `repeats` timed runs after `warmup` untimed ones: median and spread."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    warmup: int

    @classmethod
    def of(cls, timings: Sequence[float], *, warmup: int) -> LatencyStats:
        """The statistics of these timings (at least one)."""
        if not timings:
            raise ValueError("latency needs at least one timed run")
        return cls(
            median_ms=float(statistics.median(timings)),
            p10_ms=percentile(timings, 10.0),
            p90_ms=percentile(timings, 90.0),
            repeats=len(timings),
            warmup=warmup,
        )

    def as_dict(self, prefix: str = "") -> dict[str, Any]:
        """`{<prefix>latency_ms, _p10_ms, _p90_ms, _repeats, _warmup}` for metrics.json."""
        return {
            f"{prefix}latency_ms": self.median_ms,
            f"{prefix}latency_p10_ms": self.p10_ms,
            f"{prefix}latency_p90_ms": self.p90_ms,
            f"{prefix}latency_repeats": self.repeats,
            f"{prefix}latency_warmup": self.warmup,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between ranks (numpy's default)."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def time_runs(
    run: Callable[[], object],
    *,
    repeats: int,
    warmup: int,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> LatencyStats:
    """Time `repeats` calls of `run` after `warmup` untimed ones (`sync` around each)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    timings: list[float] = []
    for index in range(warmup + repeats):
        sync()
        started = clock()
        run()
        sync()
        elapsed_ms = (clock() - started) * 1000.0
        if index >= warmup:
            timings.append(elapsed_ms)
    return LatencyStats.of(timings, warmup=warmup)


@torch.inference_mode()
def latency_stats(
    model: nn.Module,
    *,
    image_size: int,
    device: torch.device,
    repeats: int = 20,
    warmup: int = 3,
) -> LatencyStats:
    """Milliseconds of one forward (eval mode, batch 1, on `device`): median, p10, p90."""
    was_training = model.training
    model.eval()
    images = torch.rand(1, 3, image_size, image_size, device=device)
    try:
        return time_runs(
            lambda: model(images), repeats=repeats, warmup=warmup, sync=lambda: _sync(device)
        )
    finally:
        model.train(was_training)


def measure_latency(
    model: nn.Module,
    *,
    image_size: int,
    device: torch.device,
    repeats: int = 20,
    warmup: int = 3,
) -> float:
    """Median wall-clock milliseconds of one forward (eval mode, batch 1, on `device`)."""
    stats = latency_stats(
        model, image_size=image_size, device=device, repeats=repeats, warmup=warmup
    )
    return stats.median_ms


def onnx_latency_stats(
    path: Path, *, image_size: int, repeats: int = 20, warmup: int = 3
) -> tuple[LatencyStats, str]:
    """onnxruntime CPU milliseconds of one run at batch 1, and the device in words."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    images = np.random.default_rng(0).random((1, 3, image_size, image_size), dtype=np.float32)
    stats = time_runs(lambda: session.run(None, {name: images}), repeats=repeats, warmup=warmup)
    # onnxruntime picks its own thread count (one per physical core by default).
    return stats, "cpu (onnxruntime)"


def measure_onnx_latency(
    path: Path, *, image_size: int, repeats: int = 20, warmup: int = 3
) -> float:
    """Median milliseconds of one onnxruntime CPU run of an exported model at batch 1."""
    stats, _ = onnx_latency_stats(path, image_size=image_size, repeats=repeats, warmup=warmup)
    return stats.median_ms


def efficiency_report(
    model: nn.Module,
    *,
    image_size: int,
    device: torch.device,
    repeats: int = 20,
    warmup: int = 3,
    onnx_path: Path | None = None,
) -> dict[str, Any]:
    """`{params, gflops, latency_ms, latency_p10_ms, latency_p90_ms, latency_repeats,
    latency_warmup, device}`, and with an ONNX file the same figures prefixed `onnx_` plus
    `onnx_device`. `latency_ms` is the median of the timed runs (older metrics.json files
    carry it alone, without a spread)."""
    stats = latency_stats(
        model, image_size=image_size, device=device, repeats=repeats, warmup=warmup
    )
    report: dict[str, Any] = {
        "params": count_parameters(model),
        "gflops": count_gflops(model, image_size=image_size, device=device),
        **stats.as_dict(),
        "device": describe_device(device),
    }
    if onnx_path is not None:
        onnx, onnx_device = onnx_latency_stats(
            onnx_path, image_size=image_size, repeats=repeats, warmup=warmup
        )
        report.update(onnx.as_dict("onnx_"))
        report["onnx_device"] = onnx_device
    return report


def describe_device(device: torch.device) -> str:
    """A readable name of the device latencies were measured on."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'' if threads == 1 else 's'})"


def efficiency_ratios(
    student: dict[str, Any], teacher: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Student / teacher ratios of params, gflops and latency (None without a teacher)."""
    if teacher is None:
        return None

    def ratio(key: str) -> float | None:
        denominator = teacher.get(key) or 0
        return float(student[key]) / float(denominator) if denominator else None

    return {"params": ratio("params"), "gflops": ratio("gflops"), "latency": ratio("latency_ms")}
