"""Latency measured with repeats: median, p10 / p90, repeats and warm-up, PyTorch and ONNX."""

from __future__ import annotations

from itertools import count
from pathlib import Path

import pytest
import torch
from torch import nn

from core.evaluation.efficiency import (
    LatencyStats,
    efficiency_report,
    percentile,
    time_runs,
)


def test_percentile_interpolates_like_numpy() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 10) == pytest.approx(1.4)
    assert percentile(values, 90) == pytest.approx(4.6)
    assert percentile([7.0], 90) == 7.0


def test_time_runs_leaves_out_the_warm_up_and_keeps_the_spread() -> None:
    # A fake clock: the n-th call takes n ms; the first two (warm-up) must not count.
    ticks = count()
    elapsed = iter([100.0, 50.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    now = [0.0]

    def clock() -> float:
        if next(ticks) % 2:  # the end of a run: advance by its duration
            now[0] += next(elapsed) / 1000.0
        return now[0]

    stats = time_runs(lambda: None, repeats=10, warmup=2, clock=clock)
    assert stats.repeats == 10 and stats.warmup == 2
    assert stats.median_ms == pytest.approx(5.5)
    assert stats.p10_ms == pytest.approx(1.9) and stats.p90_ms == pytest.approx(9.1)
    record = stats.as_dict("onnx_")
    assert set(record) == {
        "onnx_latency_ms", "onnx_latency_p10_ms", "onnx_latency_p90_ms",
        "onnx_latency_repeats", "onnx_latency_warmup",
    }  # fmt: skip
    with pytest.raises(ValueError, match="repeats"):
        time_runs(lambda: None, repeats=0, warmup=1)
    with pytest.raises(ValueError):
        LatencyStats.of([], warmup=0)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images)


def test_efficiency_report_has_pytorch_and_onnx_spreads(tmp_path: Path) -> None:
    model = _Tiny()
    onnx_path = tmp_path / "tiny.onnx"
    torch.onnx.export(model, (torch.rand(1, 3, 32, 32),), str(onnx_path), dynamo=False)
    report = efficiency_report(
        model, image_size=32, device=torch.device("cpu"), repeats=5, warmup=1, onnx_path=onnx_path
    )
    for prefix in ("", "onnx_"):
        low, mid, high = (report[f"{prefix}latency_{k}"] for k in ("p10_ms", "ms", "p90_ms"))
        assert 0 < low <= mid <= high
        assert report[f"{prefix}latency_repeats"] == 5 and report[f"{prefix}latency_warmup"] == 1
    assert report["device"].startswith("cpu") and "onnxruntime" in report["onnx_device"]
    assert model.training  # measuring leaves the mode as it was
