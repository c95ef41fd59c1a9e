"""Uploaded backbone weights: torchvision ImageNet files load strictly into the FPN body."""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from core.models.backbones import (
    BackboneName,
    build_backbone,
    check_backbone_weights,
    classifier_keys,
)
from core.models.checkpoints import CheckpointError, load_state_dict
from core.models.detectors import STUDENT_ARCHS, TEACHER_ARCHS, TORCHVISION_ARCHS, build_teacher
from core.spec import BACKBONE_OF_ARCH, BackboneArch, StudentArch, TeacherArch

CLASSIFIERS = {
    "resnet18": torchvision.models.resnet18,
    "resnet50": torchvision.models.resnet50,
    "mobilenet_v2": torchvision.models.mobilenet_v2,
    "shufflenet_v2": torchvision.models.shufflenet_v2_x1_0,
    "mobilenet_v3": torchvision.models.mobilenet_v3_large,
}
HEADS = {  # the classifier keys torchvision puts past the trunk
    "resnet18": "fc.weight",
    "resnet50": "fc.weight",
    "mobilenet_v2": "classifier.1.weight",
    "shufflenet_v2": "fc.weight",
    "mobilenet_v3": "classifier.3.weight",
}


def _imagenet_file(tmp_path: Path, name: str) -> tuple[Path, dict[str, torch.Tensor]]:
    state = CLASSIFIERS[name](weights=None).state_dict()
    path = tmp_path / f"{name}-imagenet.pth"
    torch.save(state, path)
    return path, state


def test_every_architecture_names_its_trunk_as_the_builders_do() -> None:
    assert set(get_args(TeacherArch)) | set(get_args(StudentArch)) == set(BACKBONE_OF_ARCH)
    assert set(BACKBONE_OF_ARCH.values()) <= set(get_args(BackboneArch))
    assert get_args(BackboneArch) == get_args(BackboneName)
    for arch, (_family, trunk) in {**TEACHER_ARCHS, **STUDENT_ARCHS}.items():
        assert BACKBONE_OF_ARCH[arch] == trunk, arch
    assert set(TORCHVISION_ARCHS) <= set(BACKBONE_OF_ARCH)


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_a_torchvision_imagenet_file_checks_and_loads_into_the_body(
    name: BackboneName, tmp_path: Path
) -> None:
    assert set(CLASSIFIERS) == set(get_args(BackboneArch))
    path, state = _imagenet_file(tmp_path, name)
    check = check_backbone_weights(path, name=path.name, arch=name)
    assert check.errors == []
    assert check.info["tensors"] == len(state)
    assert 0 < check.info["ignored"] < len(state)  # the head (and MobileNets' last 1x1 conv)
    assert HEADS[name] in classifier_keys(name)
    backbone = build_backbone(name, fpn_channels=8, pretrained=path)
    prefix = "features." if name.startswith("mobilenet") else ""
    body = backbone.body.state_dict()
    assert len(body) == check.info["loaded"]
    for key in list(body)[:: max(1, len(body) // 7)]:
        assert torch.equal(body[key], state[prefix + key]), key


def test_a_body_state_dict_and_safetensors_load_too(tmp_path: Path) -> None:
    source = build_backbone("mobilenet_v2", fpn_channels=8)
    body = {k: v.contiguous() for k, v in source.body.state_dict().items()}
    path = tmp_path / "body.safetensors"
    save_file(body, str(path))
    assert check_backbone_weights(path, name="body.safetensors", arch="mobilenet_v2").errors == []
    loaded = build_backbone("mobilenet_v2", fpn_channels=8, pretrained=path)
    assert torch.equal(loaded.body.state_dict()["0.0.weight"], body["0.0.weight"])


def test_weights_of_another_trunk_are_refused_naming_file_keys_and_counts(
    tmp_path: Path,
) -> None:
    path, state = _imagenet_file(tmp_path, "resnet18")
    check = check_backbone_weights(path, name="resnet18-f37072fd.pth", arch="mobilenet_v2")
    (error,) = check.errors
    assert error["file"] == "resnet18-f37072fd.pth"
    message = error["message"]
    assert message.startswith("resnet18-f37072fd.pth: weights do not match the architecture")
    assert str(tmp_path) not in message
    expected = build_backbone("mobilenet_v2", fpn_channels=8).body.state_dict()
    missing = [k for k in expected if not k.endswith("num_batches_tracked")]
    assert f"{len(missing)} missing keys: features.0.0.weight" in message
    assert "more)" in message  # the first 20 named, the rest counted
    # Only the declared trunk's classifier head is ignored: ResNet's `fc` is foreign here.
    unexpected = [k for k in state if not k.endswith("num_batches_tracked")]
    assert f"{len(unexpected)} unexpected keys: bn1.bias" in message
    assert sorted(error["unexpected"]) == sorted(unexpected) and "fc.weight" in unexpected
    assert len(error["missing"]) == len(missing)
    # A file that adds a key the trunk does not have is refused too.
    own, _ = _imagenet_file(tmp_path, "mobilenet_v2")
    extra = load_state_dict(own)
    extra["features.0.0.extra"] = torch.zeros(1)
    torch.save(extra, tmp_path / "extra.pth")
    check = check_backbone_weights(tmp_path / "extra.pth", name="extra.pth", arch="mobilenet_v2")
    assert check.errors[0]["unexpected"] == ["features.0.0.extra"]
    assert "1 unexpected keys: features.0.0.extra" in check.errors[0]["message"]


class _Payload:
    """Unpickling this would create a file: the proof that nothing ran is that it is absent."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_payload_is_refused_naming_the_file_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": torch.zeros(1), "evil": _Payload(marker)}, path)
    check = check_backbone_weights(path, name="resnet18.pth", arch="resnet18")
    (error,) = check.errors
    assert error["file"] == "resnet18.pth"
    assert error["message"].startswith("resnet18.pth: refused: the file holds pickled Python")
    assert "system" in error["message"]
    with pytest.raises(CheckpointError):
        build_backbone("resnet18", fpn_channels=8, pretrained=path)
    assert not marker.exists()


def test_a_torchvision_teacher_starts_from_an_imagenet_trunk(tmp_path: Path) -> None:
    path, state = _imagenet_file(tmp_path, "mobilenet_v3")
    teacher = build_teacher(
        arch="torchvision_fasterrcnn_mobilenet_v3_large_fpn",
        num_classes=3,
        image_size=64,
        pretrained_backbone=str(path),
    )
    body = teacher.backbone.body.state_dict()
    assert torch.equal(body["0.0.weight"], state["features.0.0.weight"])
    assert torch.equal(body["16.0.weight"], state["features.16.0.weight"])  # the 960 conv
    with pytest.raises(CheckpointError, match=r"resnet18-imagenet\.pth.*missing keys"):
        build_teacher(
            arch="torchvision_fasterrcnn_mobilenet_v3_large_fpn",
            num_classes=3,
            image_size=64,
            pretrained_backbone=str(_imagenet_file(tmp_path, "resnet18")[0]),
        )
