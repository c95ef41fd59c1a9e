"""report.md's cost table: latency with its spread, repeats and device, PyTorch and ONNX."""

from __future__ import annotations

from core.engine.report import cost_table, latency_text


def test_latency_shows_median_spread_repeats_and_device_or_says_spread_not_measured() -> None:
    new = {
        "params": 2e6, "gflops": 1.5, "latency_ms": 12.34, "latency_p10_ms": 11.9,
        "latency_p90_ms": 13.05, "latency_repeats": 20, "device": "cpu (2 threads)",
        "onnx_latency_ms": 4.5, "onnx_latency_p10_ms": 4.25, "onnx_latency_p90_ms": 4.75,
        "onnx_latency_repeats": 20, "onnx_device": "cpu (onnxruntime)",
    }
    old = {"params": 2e7, "gflops": 9.0, "latency_ms": 30.0, "device": "cpu (2 threads)"}
    assert latency_text(new) == "12.3 ms (p10–p90 11.9–13.1, 20 repeats, cpu (2 threads))"
    assert latency_text(new, onnx=True) == (
        "4.50 ms (p10–p90 4.25–4.75, 20 repeats, cpu (onnxruntime))"
    )
    assert latency_text(old) == "30.0 ms (spread not measured, cpu (2 threads))"
    assert latency_text(old, onnx=True) == "–"
    header, _, teacher, student = cost_table({"teacher": old, "student": new})
    assert "latency, PyTorch" in header and "latency, ONNX Runtime" in header
    assert teacher.endswith("| 30.0 ms (spread not measured, cpu (2 threads)) | – |")
    assert "4.50 ms (p10–p90" in student and "12.3 ms (p10–p90" in student
    assert "ONNX" not in cost_table({"student": old})[0]
