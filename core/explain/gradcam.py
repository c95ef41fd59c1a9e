"""Grad-CAM (Selvaraju et al., ICCV 2017) of a detector's top detections, per pyramid level.

For the score S of the top detections (their sum) and each FPN level's map F (C, H, W), the
channel weights are the spatial mean of dS/dF, and the map is ReLU(sum_c w_c F_c), scaled to
[0, 1] per level. Any detector whose eval-mode forward returns a DetectorOutput with
`features` and differentiable `detections` works (core.models.detectors.Detector does: its
scores are sigmoid / softmax of the head outputs, gathered by the post-processing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor, nn

from core.evaluation.pictures import TILE, caption, draw_boxes, image_tile, overlay
from core.structures import DetectorOutput

DEFAULT_TOP_K = 3
"""Detections explained together by default."""

EXPLAINED_COLOUR = (255, 255, 255)
"""Outline of the explained detections in the pictures (ground truth stays green)."""


@dataclass
class GradCam:
    """Grad-CAM of one image: per level a (H, W) map in [0, 1] and the detections explained."""

    maps: dict[str, Tensor]
    boxes: Tensor  # (D, 4) model pixels, best first
    scores: Tensor  # (D,)
    labels: Tensor  # (D,)

    @property
    def explained(self) -> int:
        """How many detections the maps explain (0: nothing was detected, the maps are 0)."""
        return int(self.scores.numel())


def cam_map(features: Tensor, gradient: Tensor) -> Tensor:
    """ReLU(sum_c w_c F_c) with w_c the spatial mean of the gradient: (C, H, W) x2 -> (H, W)."""
    weights = gradient.mean(dim=(-2, -1), keepdim=True)
    cam = torch.relu((weights * features).sum(dim=-3))
    peak = cam.max()
    return cam / peak if peak > 0 else cam


def gradcam(
    model: nn.Module,
    image: Tensor,
    *,
    top_k: int = DEFAULT_TOP_K,
    levels: tuple[str, ...] | None = None,
) -> GradCam:
    """Grad-CAM maps of `model` on one (3, S, S) image for its `top_k` best detections.

    The model is put in eval mode and given back in its mode; no parameter gradient is
    accumulated (the gradient is taken with respect to the features only), so frozen
    teachers work as well (the image itself carries the graph).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            images = image.detach().clone()[None].requires_grad_(True)
            output = model(images)
            if not isinstance(output, DetectorOutput) or output.detections is None:
                raise TypeError("gradcam needs a detector returning a DetectorOutput in eval mode")
            names = [n for n in (levels or tuple(output.features)) if n in output.features]
            features = [output.features[n] for n in names]
            found = output.detections[0]
            order = torch.argsort(found["scores"].detach(), descending=True)[: max(top_k, 0)]
            scores = found["scores"][order]
            gradients: tuple[Tensor | None, ...] = tuple(None for _ in features)
            if scores.numel() and scores.requires_grad:
                gradients = torch.autograd.grad(scores.sum(), features, allow_unused=True)
            maps = {
                name: cam_map(
                    feature[0].detach(),
                    torch.zeros_like(feature[0]) if grad is None else grad[0].detach(),
                ).cpu()
                for name, feature, grad in zip(names, features, gradients, strict=True)
            }
    finally:
        model.train(was_training)
    return GradCam(
        maps=maps,
        boxes=found["boxes"][order].detach().cpu(),
        scores=scores.detach().cpu(),
        labels=found["labels"][order].detach().cpu(),
    )


def render_gradcam(
    image: Tensor,
    cam: GradCam,
    *,
    title: str = "",
    ground_truth: Tensor | None = None,
    side: int = TILE,
) -> list[Image.Image]:
    """Tiles of one model's Grad-CAM: the image with the explained boxes, then one per level."""
    image_size = int(image.shape[-1])
    base = image_tile(image, side)
    first = base.copy()
    if ground_truth is not None:
        draw_boxes(first, ground_truth, image_size)
    draw_boxes(first, cam.boxes, image_size, EXPLAINED_COLOUR)
    caption(first, f"{title} top {cam.explained}".strip())
    tiles = [first]
    for level, values in cam.maps.items():
        tile = overlay(base, values.float())
        draw_boxes(tile, cam.boxes, image_size, EXPLAINED_COLOUR)
        caption(tile, f"{title} {level}".strip())
        tiles.append(tile)
    return tiles


def grid(rows: list[list[Image.Image]], *, side: int = TILE) -> Image.Image:
    """Rows of equal square tiles pasted into one picture (short rows padded grey)."""
    width = max(len(row) for row in rows) * side
    canvas = Image.new("RGB", (width, len(rows) * side), (32, 32, 32))
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            canvas.paste(tile, (c * side, r * side))
    return canvas
