"""A student's exported ONNX (core/export/onnx.py: input `images` (1, 3, S, S) in [0, 1])
run by onnxruntime: the dense head outputs by name, post-processed here, or, for the export
with the post-processing inside (outputs `boxes`, `scores`, `labels`; metadata
`onnx_output_kind: detections`), its detections as they are.

The metadata comes from the caller (a sidecar JSON or the student's safetensors), else from
the ONNX's own `metadata_props` (the safetensors' keys, JSON-encoded values), else from a
sidecar file beside the model named in `sidecars`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from core.predict.detections import Detections
from core.predict.errors import PredictError
from core.predict.metadata import (
    DETECTION_OUTPUTS,
    DETECTIONS_OUTPUTS,
    OUTPUT_KIND_KEY,
    ModelMeta,
    decode_strings,
    load_meta_file,
    meta_from_dict,
)
from core.predict.postprocess import PostprocessOptions
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


def outputs_detections(session: ort.InferenceSession, *, source: str) -> bool:
    """Whether the ONNX outputs detections (`boxes`, `scores`, `labels`: the post-processing
    is inside) rather than dense head outputs; PredictError when its metadata says detections
    but its outputs are others."""
    names = sorted(output.name for output in session.get_outputs())
    if names == sorted(DETECTION_OUTPUTS):
        return True
    props = session.get_modelmeta().custom_metadata_map or {}
    if props.get(OUTPUT_KIND_KEY) == DETECTIONS_OUTPUTS:
        raise PredictError(
            f"{source}: the metadata says {OUTPUT_KIND_KEY} {DETECTIONS_OUTPUTS!r} but the "
            f"outputs are {', '.join(names)}, not {', '.join(DETECTION_OUTPUTS)}"
        )
    return False


class OnnxPredictor(Predictor):
    """A student's ONNX on onnxruntime's CPU provider (dense outputs or detections)."""

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
        # Detections post-processed at export (the metadata's score threshold, NMS and cap).
        self.detections_inside = outputs_detections(self.session, source=shown)

    def raw_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The ONNX's outputs by name."""
        values = self.session.run(None, {self.input_name: batch.astype(np.float32)})
        pairs = zip(self.output_names, values, strict=True)
        return {name: np.asarray(value) for name, value in pairs}

    def options(
        self, *, score_threshold: float | None = None, max_detections: int | None = None
    ) -> PostprocessOptions:
        """As for any model; a detections ONNX can only raise its score threshold and lower
        its detection cap (PredictError otherwise: what it dropped at export is gone). A lower
        cap keeps its best detections, counted after the background label is dropped."""
        options = super().options(score_threshold=score_threshold, max_detections=max_detections)
        if not self.detections_inside:
            return options
        meta = self.meta
        if options.score_threshold < meta.score_threshold:
            raise PredictError(
                f"score threshold {options.score_threshold} is below {meta.score_threshold}, "
                f"the one {self.source} was exported with (its post-processing is inside the "
                "model); predict with the student's dense ONNX or .safetensors for a lower one"
            )
        if options.detections_per_image > meta.detections_per_image:
            raise PredictError(
                f"max detections {options.detections_per_image} is above "
                f"{meta.detections_per_image}, the cap {self.source} was exported with; "
                "predict with the student's dense ONNX or .safetensors for more"
            )
        return options

    def model_detections(self, batch: np.ndarray, options: PostprocessOptions) -> Detections:
        """A detections ONNX's own boxes, scores and labels (model pixels), kept above the
        score threshold and cut to the cap; a dense ONNX's outputs post-processed."""
        if not self.detections_inside:
            return super().model_detections(batch, options)
        outputs = self.raw_outputs(batch)
        boxes, scores, labels = (outputs[name] for name in DETECTION_OUTPUTS)
        count = len(scores)
        if boxes.shape != (count, 4) or scores.shape != (count,) or labels.shape != (count,):
            raise PredictError(
                f"{self.source}: a detections ONNX outputs boxes (D, 4), scores (D,) and labels "
                f"(D,); this one gave {boxes.shape}, {scores.shape} and {labels.shape}"
            )
        found = Detections(
            boxes=boxes.astype(np.float32),
            scores=scores.astype(np.float32),
            labels=labels.astype(np.int64),
        )
        found = found.take(np.flatnonzero(found.scores > options.score_threshold))
        return found.best(options.detections_per_image)
