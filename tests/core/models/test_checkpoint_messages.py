"""What a refused checkpoint says: no advice to run the file's code, no server paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from core.models.checkpoints import CheckpointError, load_state_dict


def _refusal(path: Path) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_state_dict(path)
    return str(caught.value)


def test_a_pickled_module_is_refused_without_pytorchs_advice_or_the_path(tmp_path: Path) -> None:
    path = tmp_path / "scratch" / "teacher.pt"
    path.parent.mkdir()
    torch.save(nn.Linear(2, 2), path)
    message = _refusal(path)
    assert message.startswith("teacher.pt: refused")
    assert "pickled Python objects" in message and "refused" in message
    assert "torch.nn.modules.linear.Linear" in message
    assert "safetensors" in message and "state dict" in message
    assert "weights_only" not in message
    assert str(tmp_path) not in message and "/" not in message.split(":", 1)[0]


def test_other_unreadable_torch_files_name_no_path_either(tmp_path: Path) -> None:
    whole = tmp_path / "whole.pt"
    torch.save({"w": torch.zeros(2)}, whole)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(whole.read_bytes()[:100])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    for path in (truncated, garbage):
        message = _refusal(path)
        assert message.startswith(f"{path.name}: refused"), message
        assert "safetensors" in message
        assert "weights_only" not in message and str(tmp_path) not in message
    assert set(load_state_dict(whole)) == {"w"}
