"""Detections as COCO results records: image_id, file_name, category_id, bbox, score."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.predict.detections import Detections
from core.predict.metadata import ModelMeta

BOX_DECIMALS = 2
SCORE_DECIMALS = 5


def coco_records(
    found: Detections, meta: ModelMeta, *, image_id: int, file_name: str
) -> list[dict[str, Any]]:
    """One COCO results record per detection (category ids of the model's dataset)."""
    records = []
    for (x1, y1, x2, y2), score, label in zip(
        found.boxes.tolist(), found.scores.tolist(), found.labels.tolist(), strict=True
    ):
        records.append(
            {
                "image_id": image_id,
                "file_name": file_name,
                "category_id": meta.category(int(label)).id,
                "bbox": [
                    round(x1, BOX_DECIMALS),
                    round(y1, BOX_DECIMALS),
                    round(x2 - x1, BOX_DECIMALS),
                    round(y2 - y1, BOX_DECIMALS),
                ],
                "score": round(float(score), SCORE_DECIMALS),
            }
        )
    return records


def categories_of(meta: ModelMeta) -> list[dict[str, Any]]:
    """The model's categories as COCO `categories` entries."""
    return [{"id": c.id, "name": c.name} for c in meta.categories]


def write_records(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write the records as a JSON list (what pycocotools' loadRes reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(records), indent=1))
    return path
