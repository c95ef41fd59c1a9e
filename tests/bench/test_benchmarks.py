"""Each benchmark runs in its quick mode with tiny sizes and prints figures (no time asserts)."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest

from bench import api_load, data_loader, inference, teacher_precision, train_step


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _printed_machine(out: str, title: str) -> None:
    assert f"== {title}" in out
    assert "machine: " in out and "cores" in out


def test_train_step_prints_kd_and_plain_figures(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--quick", "--image-size", "64", "--batch-size", "1", "--steps", "1", "--warmup", "0"]
    payload = train_step.run([*args, "--no-memory"])
    figures = payload["figures"]
    assert _positive(figures["plain images/s"]) and _positive(figures["kd images/s"])
    assert _positive(figures["kd / plain step time"])
    assert len(payload["samples_s"]["kd"]) == 1
    for mode in ("kd_cached", "fitnets_at"):
        assert _positive(figures[f"{mode} / plain step time"]) and _positive(
            figures[f"{mode} images/s"]
        )
    title = "train step: plain, hierarchical KD (uncached, cached), FitNets + AT"
    _printed_machine(capsys.readouterr().out, title)


def test_teacher_precision_distils_with_both_precisions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = teacher_precision.run(["--quick", "--out", str(tmp_path), "--threads", "1"])
    figures = payload["figures"]
    for precision in teacher_precision.PRECISIONS:
        assert (tmp_path / precision / "seed0" / "metrics.json").is_file()
        assert math.isfinite(figures[f"HKD AP_small, teacher {precision} (%, mean)"])
    gaps = [v for k, v in figures.items() if k.startswith("bf16 teacher features vs fp32")]
    # bf16 keeps 8 bits of mantissa: below a percent or so per level, never zero.
    assert len(gaps) == 4 and all(0.0 < gap < 0.1 for gap in gaps), gaps
    assert isinstance(figures["bf16 mean within the fp32 seed range"], bool)
    _printed_machine(capsys.readouterr().out, "teacher precision: bf16 vs float32")


def test_train_step_memory_probe_reports_rss() -> None:
    probe = train_step.run(
        ["--quick", "--batch-size", "1", "--memory-probe", "kd", "--threads", "1"]
    )
    assert _positive(probe["peak_rss_mib"])
    assert probe["step_rss_mib"] >= 0


def test_inference_compares_student_and_teacher(capsys: pytest.CaptureFixture[str]) -> None:
    payload = inference.run(["--quick", "--image-size", "64", "--repeats", "1", "--warmup", "0"])
    figures = payload["figures"]
    # The student is the smaller model: a wrong pairing would flip these ratios.
    assert figures["params ratio (teacher/student)"] > 1
    assert figures["GFLOPs ratio (teacher/student)"] > 1
    assert _positive(figures["student latency (ms, ONNX Runtime)"])
    assert isinstance(figures["target >= 5x fewer GFLOPs met"], bool)
    _printed_machine(capsys.readouterr().out, "inference: student vs teacher")


def test_data_loader_throughput_with_two_workers(capsys: pytest.CaptureFixture[str]) -> None:
    payload = data_loader.run(["--quick", "--images", "8", "--batches", "3", "--workers", "2"])
    result = payload["results"][2]
    # 6 train images in batches of 4, 2: the untimed first batch takes 4, then 2 + 4 + 2.
    assert result["images"] == 8
    assert _positive(result["images_per_s"])
    _printed_machine(capsys.readouterr().out, "data loader with augmentations")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.postgres
@pytest.mark.redis
def test_api_load_against_postgres(capsys: pytest.CaptureFixture[str]) -> None:
    if not (_listening(5432) and _listening(6379)):
        pytest.skip("PostgreSQL and Redis must run on 127.0.0.1")
    args = ["--quick", "--jobs", "120", "--clients", "4", "--requests", "24", "--submissions", "6"]
    figures = api_load.run(args)["figures"]
    for name in ("list jobs", "get job", "submit job"):
        assert figures[f"{name}: non-2xx or failed"] == 0, name
        assert _positive(figures[f"{name}: p50 (ms)"])
        assert figures[f"{name}: p99 (ms)"] >= figures[f"{name}: p50 (ms)"]
    assert figures["list jobs: requests"] == 24
    assert _positive(figures["job submissions/s"])
    _printed_machine(capsys.readouterr().out, "API under load")
