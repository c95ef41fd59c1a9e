"""COCO results records and the pictures with the boxes drawn."""

from __future__ import annotations

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from core.predict.detections import Detections
from core.predict.drawing import colour_of, draw_detections
from core.predict.metadata import Category, ModelMeta
from core.predict.results import coco_records

META = ModelMeta(
    arch="retinanet_mobilenet_v2_fpn",
    family="retinanet",
    image_size=64,
    num_classes=3,
    categories=(Category(7, "car"), Category(9, "person")),
)
FOUND = Detections(
    boxes=np.array([[10.0, 20.0, 40.0, 35.5], [50.0, 5.0, 60.0, 25.0]], dtype=np.float32),
    scores=np.array([0.9, 0.4], dtype=np.float32),
    labels=np.array([2, 1]),
)


def test_records_are_coco_results_with_the_datasets_category_ids() -> None:
    records = coco_records(FOUND, META, image_id=3, file_name="street.jpg")
    assert records[0] == {
        "image_id": 3,
        "file_name": "street.jpg",
        "category_id": 9,
        "bbox": [10.0, 20.0, 30.0, 15.5],
        "score": 0.9,
    }
    assert records[1]["category_id"] == 7
    ground_truth = COCO()
    ground_truth.dataset = {
        "images": [{"id": 3, "file_name": "street.jpg", "width": 80, "height": 60}],
        "annotations": [],
        "categories": [{"id": 7, "name": "car"}, {"id": 9, "name": "person"}],
    }
    ground_truth.createIndex()
    results = ground_truth.loadRes(records)  # pycocotools reads them as they are
    assert len(results.getAnnIds(imgIds=[3])) == 2


def test_pictures_show_each_box_in_its_class_colour() -> None:
    image = Image.new("RGB", (80, 60), (0, 0, 0))
    drawn = draw_detections(image, FOUND, META)
    assert drawn.size == image.size
    assert image.getpixel((10, 30)) == (0, 0, 0)  # the input is left alone
    assert drawn.getpixel((10, 30)) == colour_of(2)  # left edge of the person's box
    assert drawn.getpixel((55, 25)) == colour_of(1)  # bottom edge of the car's box
    assert drawn.getpixel((75, 55)) == (0, 0, 0)
