"""Any model file to a Predictor: a student's .safetensors (PyTorch) or .onnx (onnxruntime:
dense outputs post-processed in numpy, or a detections ONNX's own boxes, scores, labels)."""

from __future__ import annotations

from pathlib import Path

import torch

from core.predict.errors import PredictError
from core.predict.metadata import load_meta_file
from core.predict.onnx_model import OnnxPredictor
from core.predict.predictor import Predictor
from core.predict.torch_model import TorchPredictor

MODEL_SUFFIXES = (".safetensors", ".onnx")
DETECTIONS_STEM = "_detections"
"""How a job names its detections ONNX beside the student: student_detections.onnx."""


def resolve_device(choice: str) -> torch.device:
    """`cpu`, `cuda` (refused without a GPU) or `auto`."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise PredictError("--device cuda was asked for but no CUDA device is available")
    if choice not in ("cpu", "cuda"):
        raise PredictError(f"--device {choice!r} is not one of auto, cpu, cuda")
    return torch.device(choice)


def load_predictor(model: Path, *, meta: Path | None = None, device: str = "cpu") -> Predictor:
    """The predictor of a model file; an ONNX's metadata from `meta`, itself, or beside it.

    Beside it means `<stem>.safetensors` or `<stem>.json` in the ONNX's folder (a job's
    output folder holds student.onnx and student.safetensors), and for `<name>_detections.onnx`
    also `<name>.safetensors`. Whether the ONNX outputs detections (student_detections.onnx)
    or dense outputs is read from the file itself.
    """
    suffix = model.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise PredictError(f"{model}: a model is a .safetensors or .onnx file")
    if not model.is_file():
        raise PredictError(f"{model}: no such file")
    if suffix == ".safetensors":
        if meta is not None:
            raise PredictError("--meta is for ONNX models; a .safetensors carries its metadata")
        return TorchPredictor.from_safetensors(model, device=resolve_device(device))
    given = load_meta_file(meta) if meta is not None else None
    sidecars = [model.with_suffix(".safetensors"), model.with_suffix(".json")]
    if model.stem.endswith(DETECTIONS_STEM) and len(model.stem) > len(DETECTIONS_STEM):
        sidecars.append(model.with_name(model.stem[: -len(DETECTIONS_STEM)] + ".safetensors"))
    return OnnxPredictor(model, meta=given, sidecars=sidecars)
