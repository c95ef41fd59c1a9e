"""Grad-CAM pictures of several models (teacher above, student below) on chosen val images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from core.evaluation.pictures import PictureSample
from core.explain.gradcam import DEFAULT_TOP_K, gradcam, grid, render_gradcam

PICTURE_LEVELS = ("p2", "p3", "p4", "p5")
"""Levels drawn (the students' pyramid; P6 / P7 of torchvision teachers are left out)."""


def gradcam_pictures(
    *,
    models: Sequence[tuple[str, nn.Module]],
    samples: Sequence[PictureSample],
    out_dir: Path,
    device: torch.device,
    top_k: int = DEFAULT_TOP_K,
) -> list[Path]:
    """PNGs `gradcam_NN.png`, one per sample: a row per model (image, then one tile per level)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, sample in enumerate(samples, start=1):
        image = sample.image.to(device)
        rows = []
        for role, model in models:
            cam = gradcam(model, image, top_k=top_k, levels=PICTURE_LEVELS)
            rows.append(
                render_gradcam(sample.image.cpu(), cam, title=role, ground_truth=sample.boxes)
            )
        path = out_dir / f"gradcam_{number:02d}.png"
        grid(rows).save(path)
        paths.append(path)
    return paths
