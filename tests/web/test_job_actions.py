"""The dashboard's actions on a job, in headless Chromium against a real server and worker.

The tests run in file order and build on each other: upload a dataset (its progress bar
shows while the request is held), watch a long job's loss curve fill live, then cancel it
and retry it from its page, all without a reload.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.web.conftest import WebPlatform, shot, sign_in
from tests.worker.harness import distill_spec

pytestmark = pytest.mark.browser

WAIT_MS = 180_000  # CPU training on a shared 2-core machine; never asserted as a duration
# Many short epochs: running for minutes, so it is still running whenever a test looks.
LONG_EPOCHS = 200
POINTS = '[data-chart="loss-total"]'


def wait_status(distillery: WebPlatform, path: str, done: str, *, timeout: float) -> dict[str, Any]:
    """Poll an API resource until its `status`/`state` is `done`; fail on a dead end."""
    deadline = time.monotonic() + timeout
    while True:
        row = distillery.api("GET", path)
        status = row.get("status") or row.get("state")
        if status == done:
            return row
        if status in ("invalid", "failed"):
            pytest.fail(f"{path} ended {status}: {row.get('errors') or row.get('error')}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} still {status} after {timeout:.0f} s")
        time.sleep(0.5)


def chart_points(page: Page) -> int:
    """How many points the total-loss chart draws (0 before its first draw)."""
    return int(page.locator(POINTS).get_attribute("data-points") or 0)


def test_upload_shows_progress_until_the_server_answers(
    page: Page, distillery: WebPlatform
) -> None:
    """While the upload is in flight a progress bar and a cancel button show; then the row."""
    held: list[Route] = []

    def hold_upload(route: Route) -> None:
        if route.request.method == "POST":
            held.append(route)  # answered below, once the page has been looked at
        else:
            route.continue_()

    def is_upload(url: str) -> bool:
        return url.endswith("/api/v1/datasets")

    sign_in(page, distillery, "#/datasets")
    page.route(is_upload, hold_upload)
    form = page.locator("#dataset-upload")
    form.get_by_label("Name").fill("live-drones")
    form.get_by_label("File").set_input_files(str(distillery.dataset_zip))
    upload_button = form.get_by_role("button", name="Upload", exact=True)
    upload_button.click()
    bar = form.get_by_role("progressbar", name="Upload progress")
    expect(bar).to_be_visible()
    expect(form.get_by_role("button", name="Cancel upload")).to_be_visible()
    expect(upload_button).to_be_disabled()
    expect(form.locator(".upload-status")).to_contain_text(distillery.dataset_zip.name)
    shot(page, "15-upload-in-progress")
    assert len(held) == 1

    held[0].continue_()
    expect(form.locator(".upload-status")).to_contain_text("Uploaded.")
    expect(bar).to_have_count(0)
    expect(form.get_by_role("button", name="Cancel upload")).to_be_hidden()
    expect(upload_button).to_be_enabled()
    page.unroute(is_upload)
    row = page.locator("#datasets-table tbody tr", has_text="live-drones")
    expect(row.locator(".badge")).to_have_text("Ready", timeout=WAIT_MS)
    distillery.state["dataset_id"] = int(row.get_attribute("data-dataset-id") or 0)


def test_loss_curve_fills_live_without_reload(page: Page, distillery: WebPlatform) -> None:
    """On a running job's page the total-loss chart gains points from the live stream."""
    dataset_id = distillery.need("dataset_id")
    wait_status(distillery, f"/teachers/{distillery.teacher_id}", "ready", timeout=WAIT_MS / 1000)
    spec = distill_spec(dataset_id, distillery.teacher_id, epochs=LONG_EPOCHS, steps=4)
    job = distillery.api("POST", "/jobs", json={"name": "long to cancel", "spec": spec})
    distillery.state["long_job_id"] = job["id"]

    sign_in(page, distillery, f"#/jobs/{job['id']}")
    page.evaluate("window.__sameDocument = true")
    badge = page.locator("h1 .badge")
    expect(badge).to_have_text("Running", timeout=WAIT_MS)
    chart = page.locator(POINTS)
    expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"), timeout=WAIT_MS)
    first = chart_points(page)
    page.wait_for_function(
        f"Number(document.querySelector('{POINTS}').dataset.points) > {first}",
        timeout=WAIT_MS,
    )
    assert chart_points(page) > first
    expect(chart.locator(".chart-empty")).to_be_hidden()
    expect(page.locator("#job-progress")).to_contain_text("Epoch")
    assert page.evaluate("window.__sameDocument === true")  # the points came without a reload
    shot(page, "16-job-curves-live")


def test_cancel_then_retry_from_the_job_page(page: Page, distillery: WebPlatform) -> None:
    """Cancel a running job: it turns Canceled, Retry appears and queues it again, live."""
    job_id = distillery.need("long_job_id")
    page.on("dialog", lambda dialog: dialog.accept())  # in case the page asks to confirm
    sign_in(page, distillery, f"#/jobs/{job_id}")
    page.evaluate("window.__sameDocument = true")
    badge = page.locator("h1 .badge")
    expect(badge).to_have_text("Running", timeout=WAIT_MS)
    assert distillery.api("GET", f"/jobs/{job_id}")["state"] == "running"

    page.locator("#cancel-job").click()
    page.locator(".confirm-dialog [data-confirm=yes]").click()  # the page asks first
    expect(badge).to_have_text("Canceled", timeout=WAIT_MS)
    expect(page.locator("#cancel-job")).to_have_count(0)
    retry = page.locator("#retry-job")
    expect(retry).to_be_visible()
    canceled = distillery.api("GET", f"/jobs/{job_id}")
    assert canceled["state"] == "canceled" and canceled["cancel_requested"], canceled
    shot(page, "17-job-canceled")

    retry.click()
    expect(badge).to_have_text(re.compile("^(Queued|Running)$"), timeout=WAIT_MS)
    expect(retry).to_have_count(0)
    expect(page.locator("#cancel-job")).to_be_visible()
    # The page follows the new attempt live: the worker takes it and the badge says so.
    expect(badge).to_have_text("Running", timeout=WAIT_MS)
    again = distillery.api("GET", f"/jobs/{job_id}")
    assert again["state"] == "running" and again["attempt"] > canceled["attempt"], again
    assert page.evaluate("window.__sameDocument === true")
    shot(page, "18-job-retried")
    distillery.api("POST", f"/jobs/{job_id}/cancel")  # leave the worker idle for teardown
