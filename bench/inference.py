"""Inference benchmark: student vs teacher parameters, GFLOPs and CPU latency at batch 1.

    python -m bench.inference --quick      # CI-sized (64 px, ResNet-18 FPN teacher)
    python -m bench.inference              # full (320 px, ResNet-50 FPN teacher)

Latency is measured on the CPU with PyTorch (the whole eval forward, post-processing included)
and with ONNX Runtime (the exported dense outputs, `core.export.onnx`). Prints whether the
targets are met: at least 5x fewer GFLOPs and at least 4x lower CPU latency than the teacher.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench.figures import publish
from bench.machine import set_threads
from core.evaluation.efficiency import (
    count_gflops,
    count_parameters,
    measure_latency,
    measure_onnx_latency,
)

GFLOPS_TARGET = 5.0
"""The student must need at least this many times fewer GFLOPs than the teacher."""
LATENCY_TARGET = 4.0
"""The student must be at least this many times faster on the CPU than the teacher."""

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"image_size": 64, "repeats": 3, "warmup": 1, "teacher": "retinanet_resnet18_fpn"},
    "full": {"image_size": 320, "repeats": 20, "warmup": 3, "teacher": "retinanet_resnet50_fpn"},
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; --quick picks the CI-sized preset, explicit flags override it."""
    parser = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--repeats", type=int, help="timed forwards per model")
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--teacher", help="teacher arch (core.spec.TeacherArch)")
    parser.add_argument("--student", default="retinanet_mobilenet_v2_fpn")
    parser.add_argument("--num-classes", type=int, default=6, help="K + 1")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime figures")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "full"]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _ratio(teacher: float, student: float) -> float:
    return teacher / student if student else float("nan")


def measure_model(
    model: torch.nn.Module, args: argparse.Namespace, onnx_dir: Path | None, name: str
) -> dict[str, Any]:
    """Parameters, GFLOPs, PyTorch CPU latency and (optionally) ONNX Runtime latency."""
    from core.export.onnx import export_onnx

    cpu = torch.device("cpu")
    model = model.to(cpu).eval()
    size = args.image_size
    result: dict[str, Any] = {
        "params": count_parameters(model),
        "gflops": count_gflops(model, image_size=size, device=cpu),
        "latency_ms": measure_latency(
            model, image_size=size, device=cpu, repeats=args.repeats, warmup=args.warmup
        ),
    }
    if onnx_dir is not None:
        path = onnx_dir / f"{name}.onnx"
        result["onnx_parity"] = export_onnx(model, path, image_size=size)
        result["onnx_latency_ms"] = measure_onnx_latency(
            path, image_size=size, repeats=args.repeats, warmup=args.warmup
        )
    return result


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures and return them."""
    from core.models.detectors import build_student, build_teacher

    args = parse_args(argv)
    set_threads(args.threads)
    torch.manual_seed(0)
    models = {
        "student": build_student(
            arch=args.student, num_classes=args.num_classes, image_size=args.image_size
        ),
        "teacher": build_teacher(
            arch=args.teacher, num_classes=args.num_classes, image_size=args.image_size
        ),
    }
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        onnx_dir = None if args.no_onnx else Path(tmp)
        measured = {name: measure_model(m, args, onnx_dir, name) for name, m in models.items()}
    s, t = measured["student"], measured["teacher"]
    gflops_ratio = _ratio(t["gflops"], s["gflops"])
    latency_ratio = _ratio(t["latency_ms"], s["latency_ms"])
    figures: dict[str, Any] = {
        "setup": f"{args.student} vs {args.teacher}, {args.image_size}px, batch 1, CPU, "
        f"{args.repeats} timed runs (median)",
        "student params (M)": s["params"] / 1e6,
        "teacher params (M)": t["params"] / 1e6,
        "params ratio (teacher/student)": _ratio(t["params"], s["params"]),
        "student GFLOPs": s["gflops"],
        "teacher GFLOPs": t["gflops"],
        "GFLOPs ratio (teacher/student)": gflops_ratio,
        "student latency (ms, PyTorch)": s["latency_ms"],
        "teacher latency (ms, PyTorch)": t["latency_ms"],
        "latency ratio (PyTorch)": latency_ratio,
    }
    if not args.no_onnx:
        figures["student latency (ms, ONNX Runtime)"] = s["onnx_latency_ms"]
        figures["teacher latency (ms, ONNX Runtime)"] = t["onnx_latency_ms"]
        figures["latency ratio (ONNX Runtime)"] = _ratio(t["onnx_latency_ms"], s["onnx_latency_ms"])
        figures["ONNX parity max |diff| (student, teacher)"] = (
            f"{s['onnx_parity']:.2g}, {t['onnx_parity']:.2g}"
        )
    figures[f"target >= {GFLOPS_TARGET:g}x fewer GFLOPs met"] = gflops_ratio >= GFLOPS_TARGET
    figures[f"target >= {LATENCY_TARGET:g}x lower CPU latency met (PyTorch)"] = (
        latency_ratio >= LATENCY_TARGET
    )
    return publish(
        "inference: student vs teacher",
        figures,
        device="cpu",
        json_path=args.json,
        extra={"models": measured},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    run(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
