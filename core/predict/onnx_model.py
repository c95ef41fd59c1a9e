"""A student's exported ONNX (core/export/onnx.py: input `images` (1, 3, S, S) in [0, 1],
the dense head outputs by name) run by onnxruntime, with the shared post-processing.

The metadata comes from the caller (a sidecar JSON or the student's safetensors), else from
the ONNX's own `metadata_props` (the safetensors' keys, JSON-encoded values), else from a
sidecar file beside the model named in `sidecars`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from core.predict.errors import PredictError
from core.predict.metadata import ModelMeta, decode_strings, load_meta_file, meta_from_dict
from core.predict.predictor import Predictor

INPUT_NAME = "images"


def _session(model: Path | bytes, source: str, threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings about unused initialisers
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if isinstance(model, Path) and not model.is_file():
        raise PredictError(f"{source}: no such file")
    try:
        return ort.InferenceSession(
            model if isinstance(model, bytes) else str(model),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
    except Exception as err:  # onnxruntime raises its own pybind error types
        raise PredictError(f"{source}: not a readable ONNX model ({type(err).__name__})") from None


def embedded_metadata(session: ort.InferenceSession, *, source: str) -> ModelMeta | None:
    """The ModelMeta an ONNX carries in its metadata_props, or None if it carries none."""
    props = dict(session.get_modelmeta().custom_metadata_map or {})
    if "arch" not in props:
        return None
    return meta_from_dict(decode_strings(props), source=source)


class OnnxPredictor(Predictor):
    """A student's ONNX on onnxruntime's CPU provider."""

    def __init__(
        self,
        model: Path | bytes,
        *,
        meta: ModelMeta | None = None,
        sidecars: Sequence[Path] = (),
        source: str | None = None,
        threads: int | None = None,
    ) -> None:
        shown = source or (model.name if isinstance(model, Path) else "model.onnx")
        self.session = _session(model, shown, threads)
        meta = meta or embedded_metadata(self.session, source=shown)
        for sidecar in sidecars:
            if meta is None and sidecar.is_file():
                meta = load_meta_file(sidecar)
        if meta is None:
            raise PredictError(
                f"{shown}: the ONNX carries no metadata (arch, image_size, num_classes, "
                "categories); pass --meta with the student's .safetensors or a JSON file"
            )
        super().__init__(meta, source=shown)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise PredictError(f"{shown}: expected one input {INPUT_NAME!r}, found {len(inputs)}")
        self.input_name = inputs[0].name
        shape = list(inputs[0].shape)
        fixed = [d for d in shape[2:] if isinstance(d, int)]
        if len(shape) != 4 or any(d != meta.image_size for d in fixed):
            raise PredictError(
                f"{shown}: input shape {shape} does not take {meta.image_size} px images "
                "(metadata image_size)"
            )
        self.output_names = [output.name for output in self.session.get_outputs()]

    def raw_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The ONNX's outputs by name."""
        values = self.session.run(None, {self.input_name: batch.astype(np.float32)})
        pairs = zip(self.output_names, values, strict=True)
        return {name: np.asarray(value) for name, value in pairs}
