"""ONNX export of a detector's dense head outputs, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

ONNX_OPSET = 17
DEFAULT_TOLERANCE = 1e-3
"""Largest absolute difference allowed between onnxruntime's and PyTorch's outputs."""


class OnnxParityError(RuntimeError):
    """The exported model's outputs differ from PyTorch's by more than the tolerance."""


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
) -> float:
    """Export `detector.raw_outputs` at a fixed (1, 3, S, S) input; return the parity diff."""
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
    diff = onnx_parity(path, images, [reference[name] for name in names])
    if not diff <= tolerance:
        raise OnnxParityError(
            f"{path}: onnxruntime differs from PyTorch by {diff:.3g} > {tolerance}"
        )
    return diff


def onnx_parity(path: Path, images: torch.Tensor, expected: list[torch.Tensor]) -> float:
    """Max absolute difference between onnxruntime's CPU outputs and `expected`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    diffs = [
        float(np.max(np.abs(np.asarray(got) - want.detach().float().numpy()), initial=0.0))
        for got, want in zip(outputs, expected, strict=True)
    ]
    return max(diffs, default=0.0)
