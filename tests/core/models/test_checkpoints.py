"""Safe checkpoint loading: safetensors, weights_only, refusal of pickles, named mismatches."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torchvision.models.detection import retinanet_resnet50_fpn

from core.models.checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    load_state_dict,
    load_weights,
    read_provenance,
)
from core.models.teachers import load_teacher
from core.spec import TeacherSpec


class _CreatesAFile:
    """Would create a file when unpickled, if the loader executed pickled code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _small() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))


def test_safetensors_round_trip_with_provenance(tmp_path: Path) -> None:
    state = _small().state_dict()
    path = tmp_path / "student.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"arch": "x"})
    loaded = load_state_dict(path)
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert read_provenance(path) == {"arch": "x"}
    assert read_provenance(tmp_path / "missing.pt") == {}


def test_torch_file_nested_and_prefixed_state_is_unwrapped(tmp_path: Path) -> None:
    state = _small().state_dict()
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    loaded = load_state_dict(path)
    assert set(loaded) == set(state)
    model = _small()
    load_weights(model, loaded, source=str(path))
    assert torch.equal(model.state_dict()["0.weight"], state["0.weight"])
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": state}, wrapped)
    assert set(load_state_dict(wrapped)) == set(state)


def test_a_pickled_module_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "whole_model.pt"
    torch.save(_small(), path)
    with pytest.raises(CheckpointError, match=r"whole_model\.pt.*refused"):
        load_state_dict(path)


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_a_reduce_payload_is_refused_and_never_runs(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"weight": torch.zeros(1), "x": _CreatesAFile(marker)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match=r"evil\.pt"):
        load_state_dict(path)
    assert not marker.exists()


def test_garbage_and_non_tensor_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"garbage\.bin"):
        load_state_dict(garbage)
    numbers = tmp_path / "numbers.pt"
    torch.save({"a": 1, "b": 2}, numbers)
    with pytest.raises(CheckpointError, match="not tensors"):
        load_state_dict(numbers)
    with pytest.raises(CheckpointError, match="no such file"):
        load_state_dict(tmp_path / "absent.pt")


def test_mismatches_name_missing_unexpected_and_misshaped_keys() -> None:
    state = _small().state_dict()
    del state["0.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["2.weight"] = torch.zeros(3, 4)
    with pytest.raises(CheckpointMismatchError) as caught:
        load_weights(_small(), state, source="teacher.pt")
    error = caught.value
    assert error.missing == ["0.bias"]
    assert error.unexpected == ["extra.weight"]
    assert error.mismatched and error.mismatched[0].startswith("2.weight")
    for text in ("teacher.pt", "0.bias", "extra.weight", "2.weight"):
        assert text in str(error)


def test_torchvision_retinanet_state_dict_loads_as_is(tmp_path: Path) -> None:
    reference = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    path = tmp_path / "retinanet.pth"
    torch.save(reference.state_dict(), path)
    spec = TeacherSpec(arch="torchvision_retinanet_resnet50_fpn", checkpoint=str(path))
    teacher = load_teacher(spec, num_classes=3, image_size=64)
    ours = teacher.state_dict()
    assert set(ours) == set(reference.state_dict())
    key = "head.classification_head.cls_logits.weight"
    assert torch.equal(ours[key], reference.state_dict()[key])
    # torchvision's pretrained detectors use FrozenBatchNorm2d: no num_batches_tracked buffers.
    frozen_bn = {k: v for k, v in reference.state_dict().items() if "num_batches" not in k}
    torch.save(frozen_bn, path)
    assert set(load_teacher(spec, num_classes=3, image_size=64).state_dict()) == set(ours)
    with pytest.raises(CheckpointMismatchError, match="cls_logits"):
        load_teacher(spec, num_classes=5, image_size=64)


def test_load_teacher_needs_a_checkpoint() -> None:
    with pytest.raises(CheckpointError, match=r"teacher\.checkpoint"):
        load_teacher(TeacherSpec(arch="retinanet_resnet18_fpn"), num_classes=3, image_size=64)
