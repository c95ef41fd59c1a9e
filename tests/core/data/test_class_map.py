"""`data.classes` applied when a job opens its dataset: merged and ignored categories in
training, in the evaluator's ground truth, in the warnings and in the job's metrics."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from core.data.class_map import apply_class_map, category_map
from core.data.issues import DatasetError
from core.data.loader import BatchLoader, DetectionDataset, build_loaders, open_dataset
from core.evaluation.coco import CocoEvaluator
from core.spec import ClassMapSpec, DataSpec
from core.structures import Detections

# The tiny dataset's classes are zero (id 1), one (2), two (3), three (4) and four (5).
MAPPING = {"merge": {"low": ["zero", "one"]}, "ignore": ["four"]}
MAPPED_ID = {1: 1, 2: 1, 3: 3, 4: 4}  # the dataset's category id -> its id under MAPPING


def _spec(path: Path, classes: dict[str, Any] | None = None) -> DataSpec:
    return DataSpec(
        path=str(path), image_size=64, batch_size=4, augment={"hflip": False}, classes=classes
    )


def _boxes(loader: BatchLoader, label_to_cat_id: dict[int, int]) -> Counter[tuple[int, int]]:
    """(image id, category id) of every training box the loader's dataset serves."""
    dataset = loader.dataset
    assert isinstance(dataset, DetectionDataset)
    found: Counter[tuple[int, int]] = Counter()
    for index in range(len(dataset)):
        sample = dataset[index]
        for label in sample.target["labels"].tolist():
            found[(sample.image_id, label_to_cat_id[label])] += 1
    return found


def test_merge_and_ignore_reach_the_training_targets(tiny_coco: Path) -> None:
    train, _, plain = build_loaders(_spec(tiny_coco), seed=0)
    mapped_train, _, info = build_loaders(_spec(tiny_coco, MAPPING), seed=0)
    assert info.class_names == ["low", "two", "three"]
    assert info.num_classes == 4
    assert info.label_to_cat_id == {1: 1, 2: 3, 3: 4}
    assert [c["id"] for c in info.categories] == [1, 3, 4]
    # every image stays, boxes of "four" (id 5) are gone, "zero" and "one" are one class
    assert (info.train_images, info.val_images) == (plain.train_images, plain.val_images)
    before = _boxes(train, plain.label_to_cat_id)
    assert any(cat == 5 for _, cat in before) and any(cat == 2 for _, cat in before)
    expected: Counter[tuple[int, int]] = Counter()
    for (image, cat), n in before.items():
        if cat in MAPPED_ID:
            expected[(image, MAPPED_ID[cat])] += n
    assert _boxes(mapped_train, info.label_to_cat_id) == expected


def test_the_evaluator_scores_the_mapped_classes(tiny_coco: Path) -> None:
    _, val, info = build_loaders(_spec(tiny_coco, MAPPING), seed=0)
    assert [c["name"] for c in info.val_gt["categories"]] == ["low", "two", "three"]
    assert {a["category_id"] for a in info.val_gt["annotations"]} <= {1, 3, 4}
    plain = build_loaders(_spec(tiny_coco), seed=0)[2].val_gt
    raw = Counter(MAPPED_ID.get(a["category_id"]) for a in plain["annotations"])
    assert Counter(a["category_id"] for a in info.val_gt["annotations"]) == Counter(
        {k: n for k, n in raw.items() if k is not None}
    )
    evaluator = CocoEvaluator(info.val_gt, info.label_to_cat_id)
    for batch in val:  # the ground truth itself as detections: every class present scores 1
        detections = [
            Detections(boxes=t["boxes"], scores=torch.ones(len(t["labels"])), labels=t["labels"])
            for t in batch.targets
        ]
        evaluator.process(batch, detections)
    result = evaluator.evaluate()
    per_class = result["per_class"]
    assert set(per_class) == {"low", "two", "three"}
    present = {
        info.class_names[info.cat_id_to_label[a["category_id"]] - 1]
        for a in info.val_gt["annotations"]
    }
    assert "low" in present  # the val split's "one" box is scored as "low"
    assert all(per_class[name] == pytest.approx(1.0) for name in present)
    assert all(per_class[name] == -1.0 for name in set(per_class) - present)
    assert result["bbox"]["AP"] == pytest.approx(1.0)


def test_an_unknown_name_is_an_error_naming_the_field_and_the_classes(tiny_coco: Path) -> None:
    classes = {"merge": {"low": ["zero", "nine"]}, "ignore": ["fuor"]}
    with pytest.raises(DatasetError) as info:
        build_loaders(_spec(tiny_coco, classes), seed=0)
    message = str(info.value)
    assert "data.classes.merge.low: the dataset has no class 'nine'" in message
    assert "data.classes.ignore: the dataset has no class 'fuor' (did you mean 'four'?)" in message
    assert message.endswith("the dataset's classes are ['zero', 'one', 'two', 'three', 'four']")
    with pytest.raises(DatasetError, match=r"data\.classes\.merge\.two: 'two' is already a class"):
        build_loaders(_spec(tiny_coco, {"merge": {"two": ["zero"]}}), seed=0)
    everything = {"ignore": ["zero", "one", "two", "three", "four"]}
    with pytest.raises(DatasetError, match=r"data\.classes\.ignore: no class of the dataset"):
        build_loaders(_spec(tiny_coco, everything), seed=0)


def test_warnings_follow_the_mapping(tiny_coco: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_coco, data)
    for split in ("train", "val"):  # "four" declared, without a box anywhere
        path = data / "annotations" / f"instances_{split}.json"
        coco = json.loads(path.read_text())
        coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] != 5]
        path.write_text(json.dumps(coco))

    def warned(classes: dict[str, Any] | None) -> list[tuple[str, str]]:
        warnings = build_loaders(_spec(data, classes), seed=0)[2].warnings
        return [(w.code, w.details.get("class", "")) for w in warnings]

    assert ("class_without_boxes", "four") in warned(None)
    assert not [w for w in warned({"ignore": ["four"]}) if w[0] == "class_without_boxes"]
    assert not [
        w for w in warned({"merge": {"big": ["three", "four"]}}) if w[0] == "class_without_boxes"
    ]


def test_a_merged_class_takes_the_smallest_id_and_kept_classes_keep_theirs() -> None:
    categories = [
        {"id": 3, "name": "car", "supercategory": "vehicle"},
        {"id": 7, "name": "van", "supercategory": "vehicle"},
        {"id": 9, "name": "person", "supercategory": "human"},
        {"id": 12, "name": "tree"},
    ]
    classes = ClassMapSpec(merge={"auto": ["van", "car"]}, ignore=["tree"])
    mapping = category_map(categories, classes)
    assert mapping.categories == {
        3: {"id": 3, "name": "auto", "supercategory": "vehicle"},
        9: {"id": 9, "name": "person", "supercategory": "human"},
    }
    assert mapping.new_id == {3: 3, 7: 3, 9: 9} and mapping.ignored == {12}
    anns = [{"id": i, "image_id": 1, "category_id": c} for i, c in enumerate([3, 7, 9, 12])]
    assert [(a["id"], a["category_id"]) for a in mapping.annotations(anns)] == [
        (0, 3),
        (1, 3),
        (2, 9),
    ]
    assert anns[1]["category_id"] == 7  # the records read from the dataset are not changed
    mixed = category_map(categories, ClassMapSpec(merge={"thing": ["car", "person"]}))
    assert mixed.categories[3] == {"id": 3, "name": "thing"}  # no common supercategory


def test_the_opened_dataset_is_left_as_it_was(tiny_coco: Path) -> None:
    source = open_dataset(tiny_coco)
    before = json.dumps({name: s.coco for name, s in source.splits.items()}, sort_keys=True)
    mapped = apply_class_map(source, ClassMapSpec(**MAPPING))
    assert json.dumps({n: s.coco for n, s in source.splits.items()}, sort_keys=True) == before
    assert [c["name"] for c in mapped.categories] == ["low", "two", "three"]
    assert apply_class_map(source, None) is source


def test_a_voc_dataset_is_mapped_by_its_class_names(tiny_voc: Path) -> None:
    _, _, info = build_loaders(_spec(tiny_voc, {"merge": {"high": ["three", "four"]}}), seed=0)
    assert sorted(info.class_names) == ["high", "one", "two", "zero"]
    assert info.num_classes == 5


def test_an_evaluate_job_reports_the_mapped_classes(tiny_coco: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from core.models.detectors import build_teacher
    from core.pipeline.run import run_job
    from core.spec import JobSpec

    arch, fpn = "retinanet_resnet18_fpn", 16
    # num_classes follows the mapping: a teacher of the 3 mapped classes loads strictly
    model = build_teacher(arch=arch, num_classes=4, image_size=64, fpn_channels=fpn)
    weights = tmp_path / "teacher.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    spec = JobSpec.model_validate(
        {
            "kind": "evaluate",
            "data": _spec(tiny_coco, MAPPING).model_dump(),
            "teacher": {
                "arch": arch,
                "fpn_channels": fpn,
                "checkpoint": str(weights),
                "score_threshold": 0.0,  # an untrained head scores below the default
            },
            "schedule": {"device": "cpu"},
        }
    )
    run_job(spec, tmp_path / "out")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["dataset"]["categories"] == ["low", "two", "three"]
    assert set(metrics["teacher"]["per_class"]) == {"low", "two", "three"}
