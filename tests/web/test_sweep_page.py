"""The sweep pages in headless Chromium: the list, and one sweep's trials, plots, importance
and the diagnosis of its best trial (rows written to the store: no training needed)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from store import repositories as repo
from store.db import make_engine, make_session_factory, session_scope
from store.repositories import sweeps as sweep_repo
from tests.web.conftest import WebPlatform, shot, sign_in

pytestmark = pytest.mark.browser

WAIT_MS = 60_000
CONFIG = {
    "space": {
        "distill.lambda_kd": {"type": "float", "low": 0.5, "high": 4.0, "log": True},
        "schedule.lr": {"type": "categorical", "choices": [0.001, 0.002]},
    },
    "method": "tpe",
    "objective": "AP_small",
    "direction": "maximize",
    "trials": 3,
    "parallel": 1,
}
GRAD = {"steps": [1, 2], "kd/grad/spatial/p2": {"first": 0.5, "last": 0.25, "mean": 0.4}}


def _sweep(distillery: WebPlatform, *, team_id: int, user_id: int, name: str) -> int:
    engine = make_engine(distillery.settings.resolved_database_url)
    with session_scope(make_session_factory(engine)) as session:
        sweep = sweep_repo.create_sweep(
            session, team_id=team_id, created_by=user_id, name=name,
            spec={"kind": "distill"}, config=CONFIG, dataset_id=None, teacher_id=None,
        )
        outcomes = [("succeeded", "complete", 0.31, 1.0), ("canceled", "pruned", 0.05, 3.0),
                    ("succeeded", "complete", 0.42, 2.0)]
        best = None
        for number, (state, trial_state, value, lam) in enumerate(outcomes):
            job = repo.create_job(
                session, team_id=team_id, created_by=user_id, kind="distill",
                spec={"kind": "distill"}, name=f"{name} #{number}",
            )
            job.state, job.sweep_id, job.trial_number = state, sweep.id, number
            job.trial_state, job.trial_value = trial_state, value
            job.trial_params = {"distill.lambda_kd": lam, "schedule.lr": 0.001 * (1 + number % 2)}
            job.metrics = {"student": {"AP_small": value}, "kd/grad": GRAD}
            best = job if value == 0.42 else best
        session.flush()
        assert best is not None
        sweep.state, sweep.best_job_id, sweep.best_value = "finished", best.id, 0.42
        sweep.importance = {"distill.lambda_kd": 0.8, "schedule.lr": 0.2}
        sweep_id = sweep.id
    engine.dispose()
    return sweep_id


def test_sweep_pages_show_trials_plots_importance_and_diagnosis(
    page: Page, distillery: WebPlatform
) -> None:
    me, other = distillery.me, distillery.other
    sweep_id = _sweep(distillery, team_id=me.team_id, user_id=me.user_id, name="kd weights")
    _sweep(distillery, team_id=other.team_id, user_id=other.user_id, name="rival sweep")

    sign_in(page, distillery, "#/sweeps")
    listing = page.locator("#sweep-list")
    expect(listing).to_contain_text("kd weights", timeout=WAIT_MS)
    expect(listing).not_to_contain_text("rival sweep")
    expect(page.locator('nav a[href="#/sweeps"]')).to_have_attribute("aria-current", "page")

    listing.get_by_role("link", name="kd weights").click()
    expect(page).to_have_url(f"{distillery.url}/#/sweeps/{sweep_id}")
    rows = page.locator(".sweep-trials tbody tr")
    expect(rows).to_have_count(3, timeout=WAIT_MS)
    expect(rows.nth(1)).to_contain_text("pruned")
    expect(page.locator(".sweep-trials tr.best")).to_contain_text("0.420")
    expect(page.locator(".sweep-objective circle")).to_have_count(3)
    expect(page.locator(".sweep-parallel polyline")).to_have_count(3)
    expect(page.locator(".sweep-importance tr").first).to_contain_text("distill.lambda_kd")
    expect(page.locator(".sweep-diagnosis")).to_contain_text("kd/grad/spatial/p2")
    expect(page.locator("#sweep-final")).to_be_visible()
    shot(page, "sweep")

    page.goto(f"{distillery.url}/#/sweeps/{sweep_id + 1}")  # the rival team's sweep
    expect(page.locator("main")).to_contain_text("not found", timeout=WAIT_MS)
