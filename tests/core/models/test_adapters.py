"""Level pairing by stride and student -> teacher adapters."""

from __future__ import annotations

import torch

from core.models.adapters import build_adapters, pair_levels
from core.structures import LevelSpec


def _levels(channels: int, *strides: int) -> dict[str, LevelSpec]:
    names = {4: "p2", 8: "p3", 16: "p4", 32: "p5", 64: "p6", 128: "p7"}
    return {names[s]: LevelSpec(name=names[s], channels=channels, stride=s) for s in strides}


def test_levels_pair_by_stride() -> None:
    student = _levels(16, 4, 8, 16, 32)
    assert pair_levels(student, _levels(256, 4, 8, 16, 32, 64)) == [
        ("p2", "p2"),
        ("p3", "p3"),
        ("p4", "p4"),
        ("p5", "p5"),
    ]
    assert pair_levels(student, _levels(256, 8, 16, 32, 64, 128)) == [
        ("p3", "p3"),
        ("p4", "p4"),
        ("p5", "p5"),
    ]
    # Pairing follows strides, not names.
    odd = {"a": LevelSpec(name="a", channels=8, stride=8)}
    assert pair_levels(odd, _levels(32, 8)) == [("a", "p3")]


def test_adapters_map_channels_and_resize_without_touching_the_random_stream() -> None:
    torch.manual_seed(5)
    adapters = build_adapters(_levels(16, 4, 8, 16, 32), _levels(64, 8, 16, 32, 64), only=["p3"])
    drawn = torch.rand(2)
    torch.manual_seed(5)
    assert torch.equal(drawn, torch.rand(2))
    assert list(adapters) == ["p3"]
    out = adapters["p3"](torch.rand(2, 16, 7, 7), (8, 8))
    assert out.shape == (2, 64, 8, 8)
    again = build_adapters(_levels(16, 8), _levels(64, 8))
    assert torch.equal(again["p3"].proj.weight, adapters["p3"].proj.weight)
