"""What an exported detector says about itself: input, classes, anchors, post-processing.

The same keys go into a job's safetensors metadata (core/pipeline/outputs.py `provenance`)
and into the ONNX's `metadata_props` (core/export/onnx.py), JSON-encoded where not strings;
core/predict/metadata.py reads them back. docs/contracts.md lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.data.transforms import PAD_VALUE
from core.models.backbones import LEVEL_STRIDES
from core.models.detectors import Detector

INPUT = {
    "layout": "NCHW",
    "dtype": "float32",
    "range": [0.0, 1.0],
    "color": "RGB",
    "resize": "letterbox: long side to image_size, centred, padded with pad_value",
    "normalization": "inside the model (ImageNet mean and std)",
}
"""How images enter every exported model (docs/contracts.md: images fed to a model)."""

SCORES = {
    "retinanet": "sigmoid(cls_logits)",
    "fcos": "sqrt(sigmoid(cls_logits) * sigmoid(bbox_ctrness))",
    "fasterrcnn": "softmax(box head class logits)",
}
"""How each family turns its outputs into a detection's score."""

LABELS = (
    "labels are 1..K, label i is categories[i - 1]; column 0 of cls_logits is the background "
    "(one-stage heads never train it; post-processing drops it)"
)

POSTPROCESS = (
    "per level: score > score_threshold, the best topk_candidates, decoded on their anchors and "
    "clipped to the image; then class-wise NMS (IoU > nms_threshold) over all levels, the best "
    "detections_per_image, background dropped"
)


def _box_coding(detector: Detector) -> dict[str, Any]:
    """How the regression outputs become boxes, for the detector's family."""
    if detector.family == "retinanet":
        coder = detector.head.regression_head.box_coder  # the one the loss and decoding use
        return {
            "type": "deltas",
            "formula": "cx = dx * w_a + cx_a, cy = dy * h_a + cy_a, w = exp(dw) * w_a, "
            "h = exp(dh) * h_a (anchor a), dw and dh clipped at clip",
            "weights": [float(w) for w in coder.weights],
            "clip": float(coder.bbox_xform_clip),
        }
    if detector.family == "fcos":
        return {
            "type": "ltrb",
            "formula": "x1 = cx_a - l * w_a, y1 = cy_a - t * h_a, x2 = cx_a + r * w_a, "
            "y2 = cy_a + b * h_a (anchor a: one per location, the level's stride wide)",
            "normalize_by_size": True,
        }
    return {"type": "two-stage", "formula": "RPN proposals refined by the box head (deltas)"}


def detector_metadata(detector: Detector) -> dict[str, Any]:
    """Everything a model file should say of `detector` itself (no dataset, no job)."""
    metadata: dict[str, Any] = {
        "arch": detector.arch,
        "family": detector.family,
        "num_classes": detector.num_classes,
        "image_size": detector.image_size,
        "fpn_channels": int(detector.backbone.out_channels),
        "pad_value": PAD_VALUE,
        "input": INPUT,
        "background_column": 0,
        "labels": LABELS,
        "levels": list(detector.level_names),
        "strides": [LEVEL_STRIDES[name] for name in detector.level_names],
        "box_coding": _box_coding(detector),
        "score": SCORES[detector.family],
        "postprocess": POSTPROCESS,
        **detector.postprocess_settings(),
    }
    if detector.has_dense_head:
        generator = detector.anchor_generator
        metadata["anchor_sizes"] = [[float(s) for s in level] for level in generator.sizes]
        metadata["anchor_aspect_ratios"] = [
            [float(r) for r in level] for level in generator.aspect_ratios
        ]
    return metadata


def categories_metadata(categories: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`[{id, name}]` of COCO categories, in label order (label i is entry i - 1)."""
    return [{"id": int(c["id"]), "name": str(c.get("name", c["id"]))} for c in categories]
