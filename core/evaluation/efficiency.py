"""Model cost: parameters, GFLOPs (FlopCounterMode) and median latency at batch 1."""

from __future__ import annotations

import statistics
import time
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


@torch.inference_mode()
def measure_latency(
    model: nn.Module,
    *,
    image_size: int,
    device: torch.device,
    repeats: int = 20,
    warmup: int = 3,
) -> float:
    """Median wall-clock milliseconds of one forward (eval mode, batch 1, on `device`)."""
    was_training = model.training
    model.eval()
    images = torch.rand(1, 3, image_size, image_size, device=device)
    timings: list[float] = []
    try:
        for index in range(warmup + repeats):
            _sync(device)
            started = time.perf_counter()
            model(images)
            _sync(device)
            if index >= warmup:
                timings.append((time.perf_counter() - started) * 1000.0)
    finally:
        model.train(was_training)
    return statistics.median(timings)


def measure_onnx_latency(
    path: Path, *, image_size: int, repeats: int = 20, warmup: int = 3
) -> float:
    """Median milliseconds of one onnxruntime CPU run of an exported model at batch 1."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    images = np.random.default_rng(0).random((1, 3, image_size, image_size), dtype=np.float32)
    timings: list[float] = []
    for index in range(warmup + repeats):
        started = time.perf_counter()
        session.run(None, {name: images})
        if index >= warmup:
            timings.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(timings)


def efficiency_report(
    model: nn.Module,
    *,
    image_size: int,
    device: torch.device,
    repeats: int = 20,
    onnx_path: Path | None = None,
) -> dict[str, Any]:
    """`{params, gflops, latency_ms, device}` (+ `onnx_latency_ms` when an ONNX file is given)."""
    report: dict[str, Any] = {
        "params": count_parameters(model),
        "gflops": count_gflops(model, image_size=image_size, device=device),
        "latency_ms": measure_latency(model, image_size=image_size, device=device, repeats=repeats),
        "device": describe_device(device),
    }
    if onnx_path is not None:
        report["onnx_latency_ms"] = measure_onnx_latency(
            onnx_path, image_size=image_size, repeats=repeats
        )
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
