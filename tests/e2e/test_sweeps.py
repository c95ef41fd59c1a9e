"""Sweeps end to end on both deployments: the real API, a worker process, Optuna's tables in
the platform database; a completed and a pruned trial, pause/resume, team isolation."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from store import repositories as repo
from store.db import make_engine, make_session_factory, session_scope
from tests.e2e.live import JOB_TIMEOUT, Platform
from tests.worker.harness import distill_spec, wait_for

SWEEP_TIMEOUT = 3 * JOB_TIMEOUT


def _spec(inputs: dict[str, int]) -> dict[str, Any]:
    # 1 epoch (a trial may choose 2), 2 steps each, evaluated after every epoch.
    return distill_spec(inputs["dataset"], inputs["teacher"], epochs=1, steps=2, eval_every=1)


def _wait_sweep(platform: Platform, sweep_id: int, states: tuple[str, ...]) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        sweep = platform.get(f"/sweeps/{sweep_id}")
        assert sweep["state"] not in ("failed", "canceled") or sweep["state"] in states, sweep
        return sweep if sweep["state"] in states else None

    return wait_for(reached, timeout=SWEEP_TIMEOUT, interval=0.5, what=f"sweep {sweep_id}")  # type: ignore[no-any-return]


def test_sweep_with_a_completed_and_a_pruned_trial(
    platform: Platform, inputs: dict[str, int], tmp_path: Path
) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(_spec(inputs)))
    space_file = tmp_path / "space.yaml"
    # A grid of two trials: 1 epoch (evaluated once, inside the pruner's warm-up: completes)
    # and 2 epochs (its second evaluation is below the threshold: pruned).
    space_file.write_text(
        yaml.safe_dump(
            {
                "space": {
                    "schedule.epochs": {"type": "categorical", "choices": [1, 2]},
                    "distill.levels.p3.spatial": {"type": "categorical", "choices": [0.5]},
                },
                "pruner": {"kind": "threshold", "threshold": 2.0, "warmup_epochs": 2},
            }
        )
    )
    status, out = platform.cli(
        "sweep", str(spec_file), "--space", str(space_file), "--trials", "2", "--parallel", "2",
        "--method", "grid",
    )
    assert status == 0, out
    sweep_id = int(out.split()[1])

    sweep = _wait_sweep(platform, sweep_id, ("finished",))
    trials = {t["params"]["schedule.epochs"]: t for t in sweep["trials"]}
    assert set(trials) == {1, 2}
    done, pruned = trials[1], trials[2]
    assert done["state"] == "succeeded" and done["trial_state"] == "complete"
    assert isinstance(done["value"], float)
    assert pruned["trial_state"] == "pruned" and pruned["state"] == "canceled"
    assert sweep["counts"] == {"total": 2, "complete": 1, "pruned": 1}
    assert sweep["best_job_id"] == done["job_id"] and sweep["best_value"] == done["value"]
    job = platform.get(f"/jobs/{done['job_id']}")
    assert job["spec"]["distill"]["levels"]["p3"]["spatial"] == 0.5
    logs = platform.get(f"/jobs/{pruned['job_id']}/logs")["data"]
    assert any("pruned after epoch 2" in e["message"] for e in logs), logs

    best = platform.get(f"/sweeps/{sweep_id}/best")
    assert best["job_id"] == done["job_id"] and best["objective"] == "AP_small"
    assert "AP_small" in best["metrics"] and "grad" in best["diagnosis"]
    artifacts = platform.get(f"/jobs/{best['job_id']}/artifacts")["data"]
    assert any(a["kind"] == "student_safetensors" for a in artifacts)

    status, out = platform.cli("sweep", "show", str(sweep_id))
    assert status == 0 and "pruned" in out and "complete" in out, out
    status, out = platform.cli("sweeps")
    assert status == 0 and str(sweep_id) in out and "finished" in out, out

    final = platform.http.post(f"/sweeps/{sweep_id}/final-run", json={"split": "test"})
    assert final.status_code == 201, final.text
    final_job = platform.get(f"/jobs/{final.json()['job_id']}")
    assert final_job["spec"]["data"]["val_split"] == "test"
    assert final_job["spec"]["schedule"]["epochs"] == 1
    assert platform.get(f"/sweeps/{sweep_id}")["final_job_id"] == final_job["id"]
    platform.http.post(f"/jobs/{final_job['id']}/cancel")  # the tiny dataset has no test split


def test_sweep_pause_resume_and_team_isolation(platform: Platform, inputs: dict[str, int]) -> None:
    body = {
        "spec": _spec(inputs),
        "space": {"distill.lambda_kd": {"type": "float", "low": 0.5, "high": 4.0, "log": True}},
        "trials": 2,
        "parallel": 1,
        "method": "random",
        "pruner": {"kind": "none"},
        "name": "pause me",
    }
    created = platform.http.post("/sweeps", json=body)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]

    def first_trial_queued() -> bool:
        return bool(platform.get(f"/sweeps/{sweep_id}")["trials"])

    # One trial in flight (parallel 1): the next is asked only when it ends.
    wait_for(first_trial_queued, timeout=JOB_TIMEOUT, interval=0.2, what="the first trial")
    paused = platform.http.post(f"/sweeps/{sweep_id}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["state"] == "paused"
    assert platform.http.post(f"/sweeps/{sweep_id}/pause").status_code == 409

    # Another team sees nothing of it.
    settings = platform.deployment.settings
    engine = make_engine(settings.resolved_database_url)
    with session_scope(make_session_factory(engine)) as session:
        suffix = uuid.uuid4().hex[:8]
        team = repo.create_team(session, name=f"other-{suffix}")
        user = repo.create_user(session, email=f"o-{suffix}@example.test", password="pw-12345678")
        repo.add_member(session, team_id=team.id, user_id=user.id, role="admin")
        other_token, _ = repo.create_token(session, user_id=user.id)
    engine.dispose()
    other = {"Authorization": f"Bearer {other_token}"}
    with httpx.Client(base_url=str(platform.http.base_url), headers=other, timeout=30) as http:
        assert http.get(f"/sweeps/{sweep_id}").status_code == 404
        assert http.post(f"/sweeps/{sweep_id}/resume").status_code == 404
        assert http.get(f"/sweeps/{sweep_id}/best").status_code == 404
        assert sweep_id not in [s["id"] for s in http.get("/sweeps").json()["data"]]

    def first_trial_done() -> dict[str, Any] | None:
        sweep = platform.get(f"/sweeps/{sweep_id}")
        trials = sweep["trials"]
        return sweep if trials and trials[0]["state"] in ("succeeded", "failed") else None

    sweep = wait_for(first_trial_done, timeout=JOB_TIMEOUT, interval=0.5, what="the first trial")
    assert sweep["state"] == "paused" and len(sweep["trials"]) == 1

    resumed = platform.http.post(f"/sweeps/{sweep_id}/resume")
    assert resumed.status_code == 200, resumed.text
    sweep = _wait_sweep(platform, sweep_id, ("finished",))
    assert [t["number"] for t in sweep["trials"]] == [0, 1]
    assert all(t["trial_state"] == "complete" for t in sweep["trials"]), sweep["trials"]
    assert all(0.5 <= t["params"]["distill.lambda_kd"] <= 4.0 for t in sweep["trials"])


def test_bad_sweeps_are_refused_naming_the_field(
    platform: Platform, inputs: dict[str, int]
) -> None:
    spec = _spec(inputs)
    cases = [
        ({"space": {"distill.nope": {"type": "float", "low": 0, "high": 1}}},
         ["body", "space", "distill.nope"]),
        ({"space": {"schedule.lr": {"type": "float", "low": 0.1, "high": 1}}, "trials": 0},
         ["body", "trials"]),
        ({"space": {"schedule.lr": {"type": "float", "low": 0.1, "high": 1}}, "method": "grid"},
         ["body"]),
        ({"space": {"data.dataset_id": {"type": "int", "low": 1, "high": 2}}},
         ["body", "space", "data.dataset_id"]),
    ]
    for extra, loc in cases:
        response = platform.http.post("/sweeps", json={"spec": spec, **extra})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"][: len(loc)] == loc, response.text
    status, _ = platform.cli("sweep", "show", "999999")
    assert status == 1
