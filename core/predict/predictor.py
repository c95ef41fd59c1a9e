"""The predict step every model file shares: letterbox, detections in model pixels (dense
outputs post-processed, or an ONNX's own detections), back to the image's pixels."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from PIL import Image

from core.predict.detections import Detections
from core.predict.images import letterbox
from core.predict.metadata import ModelMeta
from core.predict.postprocess import DensePostprocessor, PostprocessOptions
from core.predict.slicing import SliceOptions, sliced_predict


class Predictor(ABC):
    """A student that turns an image into detections in that image's pixels."""

    def __init__(self, meta: ModelMeta, *, source: str) -> None:
        self.meta = meta
        self.source = source
        self.postprocess = DensePostprocessor(meta)

    @abstractmethod
    def raw_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The dense head outputs (`cls_logits`, `bbox_regression`, ...) of a (1, 3, S, S) batch."""

    def options(
        self, *, score_threshold: float | None = None, max_detections: int | None = None
    ) -> PostprocessOptions:
        """The model's post-processing, with the score threshold and detection cap overridden."""
        return PostprocessOptions.of(
            self.meta, score_threshold=score_threshold, max_detections=max_detections
        )

    def predict(self, image: Image.Image, options: PostprocessOptions) -> Detections:
        """Detections of the whole image, letterboxed to the model's input size."""
        boxed = letterbox(image, self.meta.image_size, pad_value=self.meta.pad_value)
        found = self.model_detections(boxed.batch, options)
        return found.scaled(boxed.scale, boxed.pad).clipped(image.width, image.height)

    def model_detections(self, batch: np.ndarray, options: PostprocessOptions) -> Detections:
        """Detections of a letterboxed (1, 3, S, S) batch in model pixels: the dense outputs,
        post-processed (a model with its post-processing inside overrides this)."""
        outputs = self.raw_outputs(batch)
        self.postprocess.check(outputs, source=self.source)
        return self.postprocess(outputs, options)

    def detect(
        self,
        image: Image.Image,
        options: PostprocessOptions,
        slicing: SliceOptions | None = None,
    ) -> Detections:
        """Detections of the image: whole, or with sliced inference when `slicing` is given."""
        if slicing is None:
            return self.predict(image, options)
        return sliced_predict(
            lambda tile: self.predict(tile, options),
            image,
            slicing,
            max_detections=options.detections_per_image,
        )
