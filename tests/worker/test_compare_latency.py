"""`distillery compare` shows latency with its spread and stars it only beyond the noise."""

from __future__ import annotations

from typing import Any

from cli import compare


def _job(job_id: int, median: float, spread: tuple[float, float] | None) -> dict[str, Any]:
    student: dict[str, Any] = {"latency_ms": median, "device": "cpu (2 threads)"}
    if spread:
        student |= {"latency_p10_ms": spread[0], "latency_p90_ms": spread[1]}
        student["latency_repeats"] = 20
    student["onnx_latency_ms"] = median / 2
    return {"id": job_id, "name": f"j{job_id}", "metrics": {"efficiency": {"student": student}}}


def _text(*jobs: dict[str, Any]) -> str:
    medians = [j["metrics"]["efficiency"]["student"]["latency_ms"] for j in jobs]
    body = {
        "jobs": list(jobs),
        "metrics": {
            "efficiency/student/latency_ms": medians,
            "efficiency/student/onnx_latency_ms": [m / 2 for m in medians],
        },
        "spec_diff": [],
    }
    return compare.compare_text(body)


def test_compare_latency_spread_labels_and_star_only_when_ranges_do_not_overlap() -> None:
    clear = _text(_job(1, 10.0, (9.5, 10.5)), _job(2, 20.0, (19.0, 21.0)))
    row = next(line for line in clear.splitlines() if line.startswith("student latency, PyTorch"))
    assert "10.0 ms (p10-p90 9.50-10.5, 20 repeats, cpu (2 threads)) *" in row
    assert "20.0 ms (p10-p90 19.0-21.0, 20 repeats, cpu (2 threads))" in row
    assert row.count("*") == 1 and compare.FASTEST_NOTE in clear
    onnx = next(x for x in clear.splitlines() if x.startswith("student latency, ONNX Runtime"))
    assert "spread not measured, cpu (onnxruntime)" in onnx and "*" not in onnx
    assert "onnx_latency_ms" not in clear
    overlapping = _text(_job(1, 10.0, (9.0, 19.5)), _job(2, 20.0, (19.0, 21.0)))
    assert "*" not in overlapping and compare.FASTEST_NOTE not in overlapping
    old = _text(_job(1, 10.0, None), _job(2, 20.0, (19.0, 21.0)))
    assert "10.0 ms (spread not measured, cpu (2 threads))" in old and "*" not in old
