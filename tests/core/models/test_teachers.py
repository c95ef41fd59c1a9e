"""Teachers from checkpoints: the classes read off the weights, a strict match named."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from core.models.detectors import build_teacher
from core.models.teachers import check_teacher_checkpoint, infer_num_classes

ARCH = "retinanet_resnet18_fpn"


def _save(tmp_path: Path, *, num_classes: int) -> Path:
    model = build_teacher(arch=ARCH, num_classes=num_classes, image_size=64, fpn_channels=16)
    path = tmp_path / "teacher.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_a_matching_checkpoint_reports_its_classes_and_size(tmp_path: Path) -> None:
    path = _save(tmp_path, num_classes=4)
    check = check_teacher_checkpoint(
        path, name="mine.safetensors", arch=ARCH, fpn_channels=16, num_classes=None
    )
    assert check.errors == []
    assert check.num_classes == 4 and check.info["num_classes"] == 4
    assert check.info["params"] > 0 and check.info["tensors"] > 0


def test_another_architecture_is_refused_with_the_keys_named_by_the_upload(
    tmp_path: Path,
) -> None:
    path = _save(tmp_path, num_classes=3)
    check = check_teacher_checkpoint(
        path, name="mine.safetensors", arch="fcos_resnet18_fpn", fpn_channels=16, num_classes=None
    )
    (error,) = check.errors
    assert check.num_classes is None and check.info == {}
    assert error["file"] == "mine.safetensors" and str(tmp_path) not in error["message"]
    assert error["missing"] and error["unexpected"]


def test_classes_are_read_off_retinanet_and_two_stage_heads() -> None:
    retina = {
        "head.classification_head.cls_logits.weight": torch.zeros(9 * 5, 8, 3, 3),
        "head.regression_head.bbox_reg.weight": torch.zeros(9 * 4, 8, 3, 3),
    }
    assert infer_num_classes(retina) == 5
    two_stage = "roi_heads.box_predictor.cls_score.weight"
    assert infer_num_classes({two_stage: torch.zeros(7, 4)}) == 7
    assert infer_num_classes({two_stage: torch.tensor(1.0)}) is None
    assert infer_num_classes({}) is None
