"""The numpy post-processing against the torch model's own (torchvision's heads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models.detection.image_list import ImageList

from core.predict.anchors import anchor_layout, level_anchors
from core.predict.errors import PredictError
from core.predict.metadata import ModelMeta, meta_from_dict
from core.predict.postprocess import DensePostprocessor, PostprocessOptions
from tests.core.predict.students import CATEGORIES, FPN_CHANNELS, tiny_student

ARCHS = ("retinanet_mobilenet_v2_fpn", "fcos_shufflenet_v2_fpn")


def _meta(arch: str, image_size: int) -> ModelMeta:
    return meta_from_dict(
        {
            "arch": arch,
            "image_size": image_size,
            "num_classes": len(CATEGORIES) + 1,
            "fpn_channels": FPN_CHANNELS,
            "categories": CATEGORIES,
        },
        source="test",
    )


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("image_size", [64, 100])
def test_anchors_are_the_torch_models(arch: str, image_size: int) -> None:
    detector = tiny_student(arch, image_size=image_size)
    images = torch.rand(1, 3, image_size, image_size)
    with torch.no_grad():
        pyramid = list(detector.extract_features(images).values())
        expected = detector.anchor_generator(ImageList(images, [(image_size, image_size)]), pyramid)
    mine = np.concatenate(level_anchors(anchor_layout(_meta(arch, image_size)), image_size))
    assert mine.shape == tuple(expected[0].shape)
    assert np.array_equal(mine, expected[0].numpy())


@pytest.mark.parametrize("arch", ARCHS)
def test_detections_are_the_torch_models(arch: str) -> None:
    detector = tiny_student(arch)
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = detector(images).detections[0]  # type: ignore[index]
        raw = {k: v.numpy() for k, v in detector.raw_outputs(images).items()}
    meta = _meta(arch, 64)
    found = DensePostprocessor(meta)(raw, PostprocessOptions.of(meta))
    assert len(expected["scores"]) > 5  # the comparison is not between two empty lists
    assert len(found) == len(expected["scores"])
    assert np.array_equal(found.labels, expected["labels"].numpy())
    assert np.allclose(found.scores, expected["scores"].numpy(), atol=1e-6)
    assert np.allclose(found.boxes, expected["boxes"].numpy(), atol=1e-3)
    assert found.labels.min() >= 1  # background is dropped, like Detector.forward


def test_options_override_the_threshold_and_the_cap() -> None:
    detector = tiny_student()
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        raw = {k: v.numpy() for k, v in detector.raw_outputs(images).items()}
    meta = _meta(detector.arch, 64)
    post = DensePostprocessor(meta)
    everything = post(raw, PostprocessOptions.of(meta, score_threshold=0.0))
    median = float(np.median(everything.scores))
    confident = post(raw, PostprocessOptions.of(meta, score_threshold=median))
    capped = post(raw, PostprocessOptions.of(meta, score_threshold=0.0, max_detections=3))
    assert 0 < len(confident) < len(everything)
    assert confident.scores.min() > median
    assert len(capped) <= 3
    with pytest.raises(PredictError, match="score threshold"):
        PostprocessOptions.of(meta, score_threshold=1.5)


def test_outputs_that_do_not_fit_the_metadata_are_named() -> None:
    detector = tiny_student()
    with torch.no_grad():
        raw = {k: v.numpy() for k, v in detector.raw_outputs(torch.rand(1, 3, 64, 64)).items()}
    wrong = meta_from_dict(
        {"arch": detector.arch, "image_size": 64, "num_classes": 5}, source="test"
    )
    with pytest.raises(PredictError, match="cls_logits has shape"):
        DensePostprocessor(wrong).check(raw, source="student.onnx")
    with pytest.raises(PredictError, match="no output bbox_regression"):
        DensePostprocessor(_meta(detector.arch, 64)).check(
            {"cls_logits": raw["cls_logits"]}, source="student.onnx"
        )
