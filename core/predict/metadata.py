"""What a model file says about itself: architecture, input size, classes, post-processing.

A job's `student.safetensors` carries it as string metadata (core/pipeline/outputs.py
`provenance`: `format`, `arch`, `family`, `num_classes`, `image_size`, `fpn_channels`,
`categories`, `spec`, ...); an ONNX file may carry the same keys in its `metadata_props`; a
sidecar JSON file holds them as one object. Read here without torch.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from core.predict.errors import PredictError
from core.spec import LEVEL_NAMES, StudentArch, TeacherArch

Family = Literal["retinanet", "fcos"]

PREDICTABLE_ARCHS: tuple[str, ...] = (
    *get_args(StudentArch),
    *(arch for arch in get_args(TeacherArch) if not arch.startswith("torchvision_")),
)
"""Architectures with the students' P2..P5 pyramid and anchors (students, our own teachers)."""

LEVEL_STRIDES: tuple[int, ...] = tuple(2 ** int(name[1:]) for name in LEVEL_NAMES)
"""Nominal strides of the pyramid levels, P2 (4 px) first."""

PAD_VALUE = 114
"""Grey of the letterbox padding (core.data.transforms.PAD_VALUE, the training convention)."""

SCORE_THRESHOLD = 0.05
DETECTIONS_PER_IMAGE = 100
TOPK_CANDIDATES = 1000
"""torchvision's RetinaNet / FCOS defaults, which the students are built with."""

NMS_THRESHOLDS: dict[Family, float] = {"retinanet": 0.5, "fcos": 0.6}
"""torchvision's per-family NMS IoU thresholds."""

SAFETENSORS_HEADER_MAX = 100 * 1024 * 1024
"""Largest safetensors header read (the format's own limit)."""

OUTPUT_KIND_KEY = "onnx_output_kind"
"""The ONNX metadata key saying what the model outputs: DENSE_OUTPUTS or DETECTIONS_OUTPUTS."""

DENSE_OUTPUTS = "dense"
"""The dense head outputs (`cls_logits`, `bbox_regression`, ...): predict post-processes them."""

DETECTIONS_OUTPUTS = "detections"
"""Post-processed detections (`DETECTION_OUTPUTS`): predict takes them as they are."""

DETECTION_OUTPUTS = ("boxes", "scores", "labels")
"""Outputs of the post-processed export, batch 1: (D, 4) x1 y1 x2 y2 in model pixels (the
letterboxed input), (D,) scores best first, (D,) int64 labels 1..K (label i is categories[i-1])."""


@dataclass(frozen=True)
class Category:
    """One class of the model: the dataset's COCO category id and name."""

    id: int
    name: str


@dataclass(frozen=True)
class ModelMeta:
    """Everything predicting needs beside the weights; label `i` (1..K) is `categories[i-1]`."""

    arch: str
    family: Family
    image_size: int
    num_classes: int  # K + 1 (column 0 is background, never trained by one-stage heads)
    categories: tuple[Category, ...]
    fpn_channels: int | None = None
    pad_value: int = PAD_VALUE
    score_threshold: float = SCORE_THRESHOLD
    detections_per_image: int = DETECTIONS_PER_IMAGE
    topk_candidates: int = TOPK_CANDIDATES
    nms_threshold: float | None = None  # None: the family's default
    anchor_sizes: tuple[tuple[float, ...], ...] | None = None  # None: the students' default
    anchor_aspect_ratios: tuple[tuple[float, ...], ...] | None = None

    @property
    def family_nms_threshold(self) -> float:
        """The NMS IoU threshold of the detector's own post-processing."""
        return self.nms_threshold if self.nms_threshold is not None else NMS_THRESHOLDS[self.family]

    def category(self, label: int) -> Category:
        """The category of a contiguous label 1..K."""
        if not 1 <= label <= len(self.categories):
            raise PredictError(f"label {label} is outside 1..{len(self.categories)}")
        return self.categories[label - 1]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form a sidecar `--meta` file holds (read back by `meta_from_dict`)."""
        out: dict[str, Any] = {
            "arch": self.arch,
            "family": self.family,
            "image_size": self.image_size,
            "num_classes": self.num_classes,
            "categories": [{"id": c.id, "name": c.name} for c in self.categories],
            "pad_value": self.pad_value,
            "score_threshold": self.score_threshold,
            "detections_per_image": self.detections_per_image,
            "topk_candidates": self.topk_candidates,
            "nms_threshold": self.family_nms_threshold,
        }
        if self.fpn_channels is not None:
            out["fpn_channels"] = self.fpn_channels
        if self.anchor_sizes is not None:
            out["anchor_sizes"] = [list(level) for level in self.anchor_sizes]
        if self.anchor_aspect_ratios is not None:
            out["anchor_aspect_ratios"] = [list(level) for level in self.anchor_aspect_ratios]
        return out


def decode_strings(metadata: Mapping[str, str]) -> dict[str, Any]:
    """String metadata (safetensors, ONNX) with JSON values parsed; plain strings stay."""
    decoded: dict[str, Any] = {}
    for key, value in metadata.items():
        try:
            decoded[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            decoded[key] = value
    return decoded


def _field(raw: Mapping[str, Any], name: str, source: str) -> Any:
    if name not in raw or raw[name] is None:
        raise PredictError(
            f"{source}: the model metadata has no {name!r} (needed: arch, image_size, "
            "num_classes; give a sidecar --meta JSON or the student's .safetensors)"
        )
    return raw[name]


def _integer(raw: Mapping[str, Any], name: str, source: str, *, low: int, high: int) -> int:
    value = _field(raw, name, source)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PredictError(f"{source}: metadata {name!r} must be an integer {low}..{high}")
    return value


def _number(raw: Mapping[str, Any], name: str, source: str, default: float) -> float:
    value = raw.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise PredictError(f"{source}: metadata {name!r} must be a number in [0, 1]")
    return float(value)


def _categories(raw: Mapping[str, Any], num_classes: int, source: str) -> tuple[Category, ...]:
    found = raw.get("categories")
    if found is None:
        # Without categories the labels stand for themselves.
        return tuple(Category(id=i, name=str(i)) for i in range(1, num_classes))
    if not isinstance(found, list) or len(found) != num_classes - 1:
        raise PredictError(
            f"{source}: metadata 'categories' must list num_classes - 1 = {num_classes - 1} "
            "categories (label i is categories[i-1])"
        )
    out = []
    for index, item in enumerate(found):
        if isinstance(item, Mapping) and isinstance(item.get("id"), int):
            out.append(Category(id=int(item["id"]), name=str(item.get("name", item["id"]))))
        elif isinstance(item, str):
            out.append(Category(id=index + 1, name=item))
        else:
            raise PredictError(
                f"{source}: metadata categories[{index}] must be {{id, name}} or a name"
            )
    return tuple(out)


def _levels(raw: Mapping[str, Any], name: str, source: str) -> tuple[tuple[float, ...], ...] | None:
    value = raw.get(name)
    if value is None:
        return None
    ok = (
        isinstance(value, list)
        and len(value) == len(LEVEL_STRIDES)
        and all(
            isinstance(level, list)
            and level
            and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in level)
            for level in value
        )
    )
    if not ok:
        raise PredictError(
            f"{source}: metadata {name!r} must list {len(LEVEL_STRIDES)} levels of positive numbers"
        )
    return tuple(tuple(float(v) for v in level) for level in value)


def meta_from_dict(raw: Mapping[str, Any], *, source: str) -> ModelMeta:
    """A ModelMeta from decoded metadata (safetensors, ONNX or a sidecar JSON), checked."""
    arch = _field(raw, "arch", source)
    if arch not in PREDICTABLE_ARCHS:
        raise PredictError(
            f"{source}: metadata 'arch' {arch!r} cannot be predicted with; known: "
            + ", ".join(PREDICTABLE_ARCHS)
        )
    family = str(arch).split("_", 1)[0]
    declared = raw.get("family", family)
    if declared != family:
        raise PredictError(f"{source}: metadata 'family' {declared!r} does not match {arch!r}")
    num_classes = _integer(raw, "num_classes", source, low=2, high=100_000)
    image_size = _integer(raw, "image_size", source, low=32, high=8192)
    fpn = raw.get("fpn_channels")
    detections = raw.get("detections_per_image", DETECTIONS_PER_IMAGE)
    topk = raw.get("topk_candidates", TOPK_CANDIDATES)
    pad = raw.get("pad_value", PAD_VALUE)
    for name, value, high in (
        ("fpn_channels", fpn, 4096),
        ("detections_per_image", detections, 100_000),
        ("topk_candidates", topk, 1_000_000),
        ("pad_value", pad, 255),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= high):  # fmt: skip
            raise PredictError(f"{source}: metadata {name!r} must be an integer 0..{high}")
    sizes = _levels(raw, "anchor_sizes", source)
    ratios = _levels(raw, "anchor_aspect_ratios", source)
    nms = raw.get("nms_threshold")
    return ModelMeta(
        arch=str(arch),
        family=family,  # type: ignore[arg-type]
        image_size=image_size,
        num_classes=num_classes,
        categories=_categories(raw, num_classes, source),
        fpn_channels=fpn,
        pad_value=int(pad),
        score_threshold=_number(raw, "score_threshold", source, SCORE_THRESHOLD),
        detections_per_image=max(1, int(detections)),
        topk_candidates=max(1, int(topk)),
        nms_threshold=None if nms is None else _number(raw, "nms_threshold", source, 0.5),
        anchor_sizes=sizes,
        anchor_aspect_ratios=ratios,
    )


def _strict_json(text: str | bytes, source: str) -> Any:
    def refuse(constant: str) -> Any:
        raise PredictError(f"{source}: {constant} is not valid JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise PredictError(f"{source}: not a JSON file ({err})") from err


def safetensors_metadata_from_chunks(chunks: Iterable[bytes], *, source: str) -> dict[str, str]:
    """The string metadata of a safetensors file read from its leading bytes (no tensors)."""
    buffer = bytearray()
    needed = 8
    iterator: Iterator[bytes] = iter(chunks)
    try:
        for chunk in iterator:
            buffer.extend(chunk)
            if len(buffer) >= 8 and needed == 8:
                (length,) = struct.unpack("<Q", bytes(buffer[:8]))
                if not 2 <= length <= SAFETENSORS_HEADER_MAX:
                    raise PredictError(f"{source}: not a safetensors file (header length)")
                needed = 8 + length
            if len(buffer) >= needed > 8:
                break
    finally:
        close = getattr(iterator, "close", None)
        if callable(close):
            close()
    if needed == 8 or len(buffer) < needed:
        raise PredictError(f"{source}: not a safetensors file (truncated header)")
    header = _strict_json(bytes(buffer[8:needed]), source)
    if not isinstance(header, dict):
        raise PredictError(f"{source}: not a safetensors file (header is no JSON object)")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise PredictError(f"{source}: safetensors metadata must map strings to strings")
    return dict(metadata)


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file on disk."""
    try:
        with path.open("rb") as handle:
            return safetensors_metadata_from_chunks(
                iter(lambda: handle.read(1 << 16), b""), source=path.name
            )
    except OSError as err:
        raise PredictError(f"{path}: cannot read ({err.strerror or err})") from err


def load_meta_file(path: Path) -> ModelMeta:
    """The metadata of a sidecar: a JSON object, or a student's .safetensors file."""
    if not path.is_file():
        raise PredictError(f"{path}: no such metadata file")
    if path.suffix.lower() == ".safetensors":
        return meta_from_dict(decode_strings(safetensors_metadata(path)), source=path.name)
    try:
        text = path.read_bytes()
    except OSError as err:
        raise PredictError(f"{path}: cannot read ({err.strerror or err})") from err
    raw = _strict_json(text, path.name)
    if not isinstance(raw, dict):
        raise PredictError(f"{path.name}: the metadata must be a JSON object")
    return meta_from_dict(raw, source=path.name)
