"""Grad-CAM: on a toy detector whose score reads one location, the map peaks on that object."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from core.evaluation.pictures import TILE, PictureSample
from core.explain.gradcam import cam_map, gradcam, render_gradcam
from core.explain.pictures import gradcam_pictures
from core.structures import Detections, DetectorOutput
from tests.core.predict.students import tiny_student

SIZE = 64
STRIDE = 4
RED = (8, 40, 16, 48)  # y1, x1, y2, x2 of the object the score reads (off the diagonal)
BLUE = (40, 8, 52, 20)  # a brighter object the score ignores


class ToyDetector(nn.Module):
    """Features: red and blue pooled to stride 4; one detection scored from the red object's
    centre cell only."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 2, kernel_size=1, bias=False)
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.weight[0, 0] = 1.0  # channel 0: red
            self.mix.weight[1, 2] = 1.0  # channel 1: blue

    def forward(self, images: Tensor) -> DetectorOutput:
        features = F.avg_pool2d(self.mix(images), STRIDE)  # (N, 2, 16, 16)
        y, x = (RED[0] + RED[2]) // 2 // STRIDE, (RED[1] + RED[3]) // 2 // STRIDE
        score = torch.sigmoid(4 * features[:, 0, y, x] - 2)
        box = torch.tensor([[RED[1], RED[0], RED[3], RED[2]]], dtype=torch.float32)
        found = Detections(boxes=box, scores=score[:1], labels=torch.ones(1, dtype=torch.int64))
        return DetectorOutput(features={"p2": features}, detections=[found])


def _image() -> Tensor:
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 0.1
    y1, x1, y2, x2 = RED
    image[0, y1:y2, x1:x2] = 0.8
    y1, x1, y2, x2 = BLUE
    image[2, y1:y2, x1:x2] = 1.0  # brighter: an activation map without gradients peaks here
    return image


def test_the_map_peaks_on_the_object_the_score_comes_from() -> None:
    cam = gradcam(ToyDetector(), _image(), top_k=1)
    assert cam.explained == 1
    heat = F.interpolate(cam.maps["p2"][None, None], size=(SIZE, SIZE), mode="nearest")[0, 0]
    y, x = divmod(int(heat.argmax()), SIZE)
    assert RED[0] <= y < RED[2] and RED[1] <= x < RED[3], (y, x)
    y1, x1, y2, x2 = BLUE
    assert float(heat[y1:y2, x1:x2].max()) < 0.15  # the ignored object: background noise only
    assert float(heat.max()) == 1.0


def test_cam_weights_are_the_mean_gradient() -> None:
    # Channel 0 is 1 everywhere; channel 1 is 2 on the left half, 0 on the right.
    features = torch.stack([torch.ones(4, 4), torch.zeros(4, 4)])
    features[1, :, :2] = 2.0
    gradient = torch.zeros(2, 4, 4)
    gradient[0, 3, 3] = 32.0  # channel 0 raises the score: weight 32 / 16 = 2
    gradient[1, 0, 0] = -16.0  # channel 1 lowers it: weight -1
    cam = cam_map(features, gradient)  # ReLU(2 * 1 - 1 * F1): 0 on the left, 2 -> 1 right
    assert torch.equal(cam[:, :2], torch.zeros(4, 2)) and torch.equal(cam[:, 2:], torch.ones(4, 2))
    assert torch.equal(cam_map(features, -gradient), torch.zeros(4, 4))  # ReLU(-2 + F1) <= 0


def test_a_frozen_student_in_inference_mode_gets_maps_per_level() -> None:
    student = tiny_student()
    student.train()
    for param in student.parameters():
        param.requires_grad_(False)  # like a frozen teacher
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        cam = gradcam(student, image, top_k=2)
    assert student.training  # its mode is given back
    assert all(p.grad is None for p in student.parameters())
    assert cam.explained == 2 and cam.boxes.shape == (2, 4)
    assert {name: tuple(m.shape) for name, m in cam.maps.items()} == {
        "p2": (16, 16),
        "p3": (8, 8),
        "p4": (4, 4),
        "p5": (2, 2),
    }
    assert all(float(m.min()) >= 0.0 and float(m.max()) <= 1.0 for m in cam.maps.values())
    assert max(float(m.max()) for m in cam.maps.values()) == 1.0


def test_pictures_have_a_row_per_model_and_a_tile_per_level(tmp_path: Path) -> None:
    image = _image()
    tiles = render_gradcam(image, gradcam(ToyDetector(), image), title="toy")
    assert len(tiles) == 2 and tiles[0].size == (TILE, TILE)
    sample = PictureSample(
        image=image,
        boxes=torch.tensor([[40.0, 8.0, 48.0, 16.0]]),
        labels=torch.ones(1, dtype=torch.int64),
        image_id=1,
        small_objects=1,
    )
    paths = gradcam_pictures(
        models=[("teacher", ToyDetector()), ("student", tiny_student())],
        samples=[sample],
        out_dir=tmp_path,
        device=torch.device("cpu"),
    )
    assert [p.name for p in paths] == ["gradcam_01.png"]
    with Image.open(paths[0]) as picture:
        assert picture.size == (5 * TILE, 2 * TILE)  # student: image + P2..P5
