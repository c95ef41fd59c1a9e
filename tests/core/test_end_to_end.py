"""End to end on the tiny synthetic benchmark: CLI teacher run, distillation, resume, evaluation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from cli.main import main
from core.data.synthetic import generate_synthetic
from core.engine.hooks import ListSink, MetricSinkHook
from core.export.weights import decode_metadata, load_safetensors
from core.pipeline.run import run_job
from core.predict.loading import load_predictor
from core.predict.onnx_model import OnnxPredictor
from core.spec import JobSpec

SCHEDULE = {"epochs": 1, "max_steps_per_epoch": 2, "warmup_steps": 1, "device": "cpu"}
TEACHER = {"arch": "retinanet_resnet18_fpn", "fpn_channels": 16}
STUDENT = {"arch": "retinanet_mobilenet_v2_fpn", "fpn_channels": 16}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # On a few shared cores, several torch threads spin against each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("synth"), images=12, size=64, seed=0)


def _data(dataset: Path) -> dict[str, object]:
    return {"path": str(dataset), "image_size": 64, "batch_size": 4, "augment": {"hflip": False}}


def test_cli_spec_errors_name_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({"kind": "teacher", "data": {"path": "x", "image_size": 8},
                                    "teacher": {"arch": "resnet9000"}}))  # fmt: skip
    assert main(["run", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "data.image_size" in err and "teacher.arch" in err
    assert main(["run", str(spec), "--out", str(tmp_path / "out"), "--set", "nope"]) == 2
    assert "KEY.PATH=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_teacher_then_distill_then_resume_and_evaluate(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1. The teacher, through the command line with an override.
    teacher_yaml = tmp_path / "teacher.yaml"
    teacher_yaml.write_text(yaml.safe_dump(
        {"kind": "teacher", "data": _data(dataset), "teacher": TEACHER, "schedule": SCHEDULE}
    ))  # fmt: skip
    teacher_out = tmp_path / "teacher"
    status = main(["run", str(teacher_yaml), "--out", str(teacher_out), "--quiet",
                   "--set", "schedule.max_steps_per_epoch=1"])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    teacher_weights = teacher_out / "teacher.safetensors"
    teacher_metrics = json.loads((teacher_out / "metrics.json").read_text())
    assert teacher_metrics["kind"] == "teacher" and teacher_metrics["student"] is None
    assert set(teacher_metrics["teacher"]) >= {"AP", "AP50", "AP75", "AP_small", "per_class"}

    # 2. Distillation with a fine-tune stage; a metric sink sees every KD term.
    spec = JobSpec.model_validate(
        {
            "kind": "distill",
            "data": _data(dataset),
            "teacher": {**TEACHER, "checkpoint": str(teacher_weights)},
            "student": STUDENT,
            "schedule": {**SCHEDULE, "finetune_epochs": 1},
        }
    )
    out = tmp_path / "distill"
    sink = ListSink()
    checkpoints: list[Path] = []
    result = run_job(spec, out, hooks=[MetricSinkHook(sink)], on_checkpoint=checkpoints.append)
    kinds = sorted({a.kind for a in result.artifacts})
    assert kinds == ["checkpoint", "metrics", "picture", "report", "student_onnx",
                     "student_onnx_detections", "student_safetensors"]  # fmt: skip
    assert all(a.path.is_file() for a in result.artifacts)
    assert checkpoints == [out / "checkpoints" / "last.pt"] * 2  # distill epoch, finetune epoch
    names = {name for _, _, values in sink.records for name in values}
    assert {"kd/spatial/p2", "kd/semantic/p3", "det/classification", "loss/total", "lr"} <= names
    assert any(name.startswith("eval/AP") for name in names)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert metrics["spec_hash"] == spec.spec_hash()
    assert metrics["teacher"]["AP"] == pytest.approx(teacher_metrics["teacher"]["AP"])
    eff = metrics["efficiency"]
    assert eff["student"]["params"] < eff["teacher"]["params"]
    assert 0 < eff["ratios"]["params"] < 1
    assert metrics["export"]["onnx_max_abs_diff"] < 1e-3
    # The export with the post-processing inside, checked on a val image, read by predict.
    assert metrics["export"]["detections_max_abs_diff"] < 1e-3
    assert metrics["export"]["detections_checked"] >= 0
    report = (out / "report.md").read_text()
    assert "| student |" in report and "`student_detections.onnx`" in report
    inside = load_predictor(out / "student_detections.onnx")
    assert isinstance(inside, OnnxPredictor) and inside.detections_inside
    assert inside.meta == load_predictor(out / "student.safetensors").meta

    tensors, raw = load_safetensors(out / "student.safetensors")
    provenance = decode_metadata(raw)
    assert provenance["teacher_arch"] == TEACHER["arch"]
    assert provenance["teacher_checksum"].startswith("sha256:")
    assert provenance["spec_hash"] == spec.spec_hash()
    assert provenance["metrics"]["AP"] == metrics["student"]["AP"]
    assert [c["name"] for c in provenance["categories"]] == metrics["dataset"]["categories"]

    # 3. Resuming from the last checkpoint (fine-tune, all epochs done) keeps the weights.
    resumed = run_job(spec, tmp_path / "resumed", resume=out / "checkpoints" / "last.pt")
    again, _ = load_safetensors(tmp_path / "resumed" / "student.safetensors")
    assert all(torch.equal(again[k], v) for k, v in tensors.items())
    assert resumed.metrics["student"]["AP"] == metrics["student"]["AP"]

    # 4. An evaluate job of the exported student finds the same AP.
    evaluate = JobSpec.model_validate(
        {
            "kind": "evaluate",
            "data": _data(dataset),
            "student": {**STUDENT, "checkpoint": str(out / "student.safetensors")},
        }
    )
    evaluated = run_job(evaluate, tmp_path / "evaluate")
    assert evaluated.metrics["student"]["AP"] == pytest.approx(metrics["student"]["AP"])
    assert evaluated.metrics["teacher"] is None


@pytest.mark.parametrize("name", ["teacher", "distill", "ablation"])
def test_example_specs_are_valid(name: str) -> None:
    from cli.run import load_spec

    examples = Path(__file__).resolve().parents[2] / "examples"
    spec = load_spec(examples / f"{name}.yaml")
    assert spec.data.path == "runs/synth"
    assert spec.kind == ("teacher" if name == "teacher" else "distill")
