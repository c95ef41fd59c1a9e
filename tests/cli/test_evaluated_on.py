"""The CLI's summaries say which split and how many images each job's AP comes from."""

from __future__ import annotations

from typing import Any

from cli import compare
from cli.figures import evaluated_on
from cli.follow import summary_lines
from cli.run import _summary

FIGURES = {"AP": 0.012, "AP_small": 0.004, "per_class": {"car": 0.01}}
WHOLE = {"mode": "whole", "split": "val", "images": 40, "image_size": 128}


def _metrics(**extra: Any) -> dict[str, Any]:
    return {"kind": "distill", "spec_hash": "abc", "student": FIGURES, "teacher": None, **extra}


def test_evaluated_on_names_the_split_and_the_count_only_where_known() -> None:
    assert evaluated_on(_metrics(evaluation=WHOLE)) == "val split, 40 images"
    sliced = {**WHOLE, "mode": "sliced", "split": "test", "images": 1, "tile_size": 64}
    assert evaluated_on(_metrics(evaluation=sliced)) == "test split, 1 image, sliced"
    # Older metrics.json: no `evaluation.images`; the dataset's val count is the same number.
    older = {k: v for k, v in WHOLE.items() if k != "images"}
    assert evaluated_on(_metrics(evaluation=older, dataset={"val_images": 12})) == (
        "val split, 12 images"
    )
    assert evaluated_on(_metrics(evaluation=older)) == "val split"
    assert evaluated_on(_metrics(dataset={"val_images": 12})) == "12 images"
    assert evaluated_on(_metrics()) is None
    assert evaluated_on(None) is None
    assert evaluated_on(_metrics(evaluation={"images": True, "split": ""})) is None


def test_run_summary_ends_with_the_split_and_image_count() -> None:
    lines = _summary(_metrics(evaluation=WHOLE)).splitlines()
    assert lines[0] == "distill job done (spec abc)"
    assert lines[1] == '  student: {"AP": 1.2, "AP_small": 0.4}'
    assert lines[-1] == "  evaluated on: val split, 40 images"
    assert "evaluated on" not in _summary(_metrics())


def test_follow_ends_with_the_split_and_image_count() -> None:
    job = {"id": 3, "state": "succeeded", "metrics": _metrics(evaluation=WHOLE)}
    assert summary_lines(job) == [
        "job 3 succeeded: AP 1.2 %, AP_small 0.4 % (val split, 40 images)"
    ]
    older = {**job, "metrics": _metrics()}
    assert summary_lines(older) == ["job 3 succeeded: AP 1.2 %, AP_small 0.4 %"]


def _body(*evaluations: dict[str, Any] | None) -> dict[str, Any]:
    jobs = [
        {"id": i + 1, "name": f"j{i + 1}", "kind": "distill", "state": "succeeded",
         "metrics": _metrics(evaluation=e) if e is not None else None}
        for i, e in enumerate(evaluations)
    ]  # fmt: skip
    return {"jobs": jobs, "metrics": {"student/AP": [0.012] * len(jobs)}, "spec_diff": []}


def _row(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(label))


def test_compare_shows_each_jobs_split_and_count_and_warns_when_they_differ() -> None:
    same = compare.compare_text(_body(WHOLE, WHOLE, None))
    row = _row(same, "evaluated on")
    assert row.split("  ")[0] == "evaluated on"
    assert [c.strip() for c in row.removeprefix("evaluated on").split("  ") if c.strip()] == [
        "val split, 40 images", "val split, 40 images", "-",
    ]  # fmt: skip
    assert compare.DIFFERENT_EVALUATIONS not in same
    fewer = {**WHOLE, "images": 10}
    differ = compare.compare_text(_body(WHOLE, fewer))
    assert "val split, 10 images" in _row(differ, "evaluated on")
    assert compare.DIFFERENT_EVALUATIONS in differ
    other_split = compare.compare_text(_body(WHOLE, {**WHOLE, "split": "test"}))
    assert compare.DIFFERENT_EVALUATIONS in other_split
