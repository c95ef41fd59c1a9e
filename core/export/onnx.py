"""ONNX export of a detector, checked against PyTorch with onnxruntime: its dense head
outputs (what `distillery predict` post-processes), or its detections with the post-processing
inside (boxes, scores, labels). Both carry the model's metadata in `metadata_props`."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
import torch
from torch import nn

from core.export.metadata import detector_metadata
from core.export.weights import metadata_strings
from core.models.detectors import Detector
from core.predict.metadata import (
    DENSE_OUTPUTS,
    DETECTION_OUTPUTS,
    DETECTIONS_OUTPUTS,
    OUTPUT_KIND_KEY,
)

ONNX_OPSET = 17
DEFAULT_TOLERANCE = 1e-3
"""Largest absolute difference allowed between onnxruntime's and PyTorch's outputs."""


class OnnxParityError(RuntimeError):
    """The exported model's outputs differ from PyTorch's by more than the tolerance."""


class DetectionsParity(NamedTuple):
    """The check of a detections export: the largest |onnxruntime - PyTorch| over boxes,
    scores and labels, and how many detections the check image gave (0 proves little)."""

    max_abs_diff: float
    detections: int


class DetectionOutputs(nn.Module):
    """Wraps a detector in eval mode so that forward returns one image's boxes, scores, labels."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The detections of the first (only) image, post-processed as in `Detector.forward`."""
        found = self.detector(images).detections[0]
        return found["boxes"], found["scores"], found["labels"]


def write_metadata(path: Path, metadata: Mapping[str, Any]) -> None:
    """Replace an ONNX file's `metadata_props` with `metadata` (non-strings JSON-encoded)."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata_strings(dict(metadata)))
    onnx.save(model, str(path))


def _describe(
    path: Path,
    detector: nn.Module,
    metadata: Mapping[str, Any] | None,
    outputs: list[str],
    *,
    kind: str,
) -> None:
    """Write `metadata_props` when `metadata` is given: the detector's own description
    (core/export/metadata.py), then `metadata`, then the ONNX's output names and their kind
    (`onnx_output_kind`: dense head outputs or detections)."""
    if metadata is None:
        return
    described = detector_metadata(detector) if isinstance(detector, Detector) else {}
    write_metadata(path, {**described, **metadata, "onnx_outputs": outputs, OUTPUT_KIND_KEY: kind})


class RawOutputs(nn.Module):
    """Wraps a detector so that forward returns `raw_outputs(images)` as a tuple of tensors."""

    def __init__(self, detector: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.detector = detector
        self.names = names

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The dense outputs in the order of `names`."""
        outputs = self.detector.raw_outputs(images)  # type: ignore[operator]
        return tuple(outputs[name] for name in self.names)


def export_onnx(
    detector: nn.Module,
    path: Path,
    *,
    image_size: int,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    metadata: Mapping[str, Any] | None = None,
) -> float:
    """Export `detector.raw_outputs` at a fixed (1, 3, S, S) input; return the parity diff.

    With `metadata` (a job passes its `provenance`), the file's `metadata_props` hold
    `detector_metadata` (core/export/metadata.py), then `metadata`, then `onnx_outputs`;
    without, none (`distillery predict` then wants a sidecar).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A CPU copy: the caller's model stays on its device and in its mode.
    detector = copy.deepcopy(detector).cpu().eval()
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(1, 3, image_size, image_size, generator=generator)
    with torch.inference_mode():
        reference = detector.raw_outputs(images)  # type: ignore[operator]
    names = sorted(reference)
    wrapper = RawOutputs(detector, names).eval()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but needs no extra package (onnxscript).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (images,),
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["images"],
            output_names=names,
            do_constant_folding=True,
        )
    _describe(path, detector, metadata, names, kind=DENSE_OUTPUTS)
    diff = onnx_parity(path, images, [reference[name] for name in names])
    if not diff <= tolerance:
        raise OnnxParityError(
            f"{path}: onnxruntime differs from PyTorch by {diff:.3g} > {tolerance}"
        )
    return diff


def export_onnx_detections(
    detector: nn.Module,
    path: Path,
    *,
    image_size: int,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    metadata: Mapping[str, Any] | None = None,
    images: torch.Tensor | None = None,
) -> DetectionsParity:
    """Export the detector with its post-processing inside: (1, 3, S, S) images in, outputs
    `boxes`, `scores`, `labels` (torchvision's NMS as ONNX NonMaxSuppression) out; the score
    threshold and detection cap are the detector's at export; `metadata` as in `export_onnx`
    (plus `onnx_output_kind: detections`). Returns the parity (boxes, scores, labels) on
    `images` (one (1, 3, S, S) image in [0, 1], e.g. a val image), else on a random image;
    OnnxParityError when onnxruntime finds other detections."""
    path.parent.mkdir(parents=True, exist_ok=True)
    detector = copy.deepcopy(detector).cpu().eval()
    wrapper = DetectionOutputs(detector).eval()
    if images is None:
        generator = torch.Generator().manual_seed(seed)
        images = torch.rand(1, 3, image_size, image_size, generator=generator)
    elif tuple(images.shape) != (1, 3, image_size, image_size):
        raise ValueError(
            f"images: the export takes one (1, 3, {image_size}, {image_size}) image, "
            f"got {tuple(images.shape)}"
        )
    images = images.detach().float().cpu()
    with torch.inference_mode():
        reference = list(wrapper(images))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            wrapper,
            (images,),
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["images"],
            output_names=list(DETECTION_OUTPUTS),
            dynamic_axes={name: {0: "detections"} for name in DETECTION_OUTPUTS},
            do_constant_folding=True,
        )
    _describe(path, detector, metadata, list(DETECTION_OUTPUTS), kind=DETECTIONS_OUTPUTS)
    diff = onnx_parity(path, images, reference)
    if not diff <= tolerance:
        raise OnnxParityError(
            f"{path}: onnxruntime differs from PyTorch by {diff:.3g} > {tolerance}"
        )
    return DetectionsParity(max_abs_diff=diff, detections=len(reference[1]))


def onnx_parity(path: Path, images: torch.Tensor, expected: list[torch.Tensor]) -> float:
    """Max absolute difference between onnxruntime's CPU outputs and `expected`
    (OnnxParityError when an output's shape differs, e.g. another number of detections)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    for meta, got, want in zip(session.get_outputs(), outputs, expected, strict=True):
        if tuple(np.shape(got)) != tuple(want.shape):
            raise OnnxParityError(
                f"{path}: output {meta.name} has shape {tuple(np.shape(got))} in onnxruntime "
                f"but {tuple(want.shape)} in PyTorch"
            )
    diffs = [
        float(np.max(np.abs(np.asarray(got) - want.detach().float().numpy()), initial=0.0))
        for got, want in zip(outputs, expected, strict=True)
    ]
    return max(diffs, default=0.0)
