"""`distillery demo --check-order`: the exit status says whether every seed kept the order.

The training is replaced by a prepared result (the ordering itself is tested in
tests/core/test_demo_ordering.py; `make demo-check` runs the real thing, about 10 minutes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import core.pipeline.demo as demo
from cli.main import main
from cli.run import EXIT_ORDER_NOT_HELD


def _result(hkd: list[float], no_kd: list[float]) -> dict[str, Any]:
    def runs(values: list[float]) -> dict[str, Any]:
        return {"runs": [{"seed": s, "metrics": {"AP_small": v}} for s, v in enumerate(values)]}

    result: dict[str, Any] = {
        "teacher": {"AP_small": 0.07},
        "variants": {"no_kd": runs(no_kd), "hierarchical": runs(hkd)},
        "seconds": 1.0,
        "table": "(table)",
    }
    result["ordering"] = demo.seed_ordering(result)
    return result


@pytest.mark.parametrize(
    ("hkd", "no_kd", "status"),
    [
        ([0.011, 0.008, 0.019], [0.008, 0.005, 0.013], 0),
        ([0.011, 0.004], [0.008, 0.005], EXIT_ORDER_NOT_HELD),
    ],
)
def test_check_order_fails_when_a_seed_is_out_of_order(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    hkd: list[float],
    no_kd: list[float],
    status: int,
) -> None:
    seen: list[tuple[int, ...]] = []

    def fake_run_demo(preset: demo.DemoPreset, out: Path, *, progress: bool) -> dict[str, Any]:
        seen.append(preset.seeds)
        return _result(hkd, no_kd)

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    argv = ["demo", "--seeds", "0", "1", "2", "--quiet", "--out", str(tmp_path), "--check-order"]
    assert main(argv) == status
    assert seen == [(0, 1, 2)]
    printed = capsys.readouterr()
    assert "seed 1: teacher 7.0" in printed.out
    assert (status == EXIT_ORDER_NOT_HELD) == ("not ordered" in printed.err)
    # Without the flag the same result exits 0: the table is printed either way.
    assert main(argv[:-1]) == 0
