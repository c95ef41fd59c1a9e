"""A student rebuilt from its safetensors file (architecture from the metadata, strict load)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from core.export.weights import load_safetensors
from core.models.checkpoints import load_weights
from core.models.detectors import STUDENT_ARCHS, Detector, build_student, build_teacher
from core.predict.errors import PredictError
from core.predict.metadata import ModelMeta, decode_strings, meta_from_dict
from core.predict.predictor import Predictor


def build_detector(meta: ModelMeta, *, source: str) -> Detector:
    """The randomly initialised detector the metadata describes (no weights loaded)."""
    if meta.fpn_channels is None:
        raise PredictError(f"{source}: the model metadata has no 'fpn_channels'")
    build = build_student if meta.arch in STUDENT_ARCHS else build_teacher
    return build(
        arch=meta.arch,
        num_classes=meta.num_classes,
        image_size=meta.image_size,
        fpn_channels=meta.fpn_channels,
    )


class TorchPredictor(Predictor):
    """A detector in PyTorch, its dense outputs post-processed like the ONNX's."""

    def __init__(
        self, detector: Detector, meta: ModelMeta, *, source: str, device: torch.device
    ) -> None:
        super().__init__(meta, source=source)
        self.device = device
        self.detector = detector.to(device).eval()

    @classmethod
    def from_safetensors(cls, path: Path, *, device: torch.device) -> TorchPredictor:
        """Load a job's student.safetensors: metadata checked, weights loaded strictly."""
        if not path.is_file():
            raise PredictError(f"{path}: no such file")
        try:
            tensors, raw = load_safetensors(path)
        except (SafetensorError, OSError) as err:
            raise PredictError(f"{path.name}: not a readable safetensors file ({err})") from None
        meta = meta_from_dict(decode_strings(raw), source=path.name)
        detector = build_detector(meta, source=path.name)
        # Strict: CheckpointMismatchError (a ValueError) names missing/unexpected/mis-shaped keys.
        load_weights(detector, tensors, source=path.name)
        return cls(detector, meta, source=path.name, device=device)

    @torch.inference_mode()
    def raw_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The detector's dense head outputs as float32 numpy arrays."""
        images = torch.from_numpy(batch).to(self.device)
        outputs = self.detector.raw_outputs(images)
        return {name: value.float().cpu().numpy() for name, value in outputs.items()}
