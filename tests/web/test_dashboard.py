"""The dashboard in headless Chromium against a real server and worker on tiny data.

The tests run in file order and build on each other: sign in, upload a dataset, start jobs,
watch one run, download its student, compare two jobs; isolation between teams last.
"""

from __future__ import annotations

import json
import re
import struct
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import WebPlatform, shot, sign_in
from tests.worker.harness import IMAGE_SIZE, STUDENT_ARCH, STUDENT_FPN, TEACHER_ARCH, TEACHER_FPN

pytestmark = pytest.mark.browser

JOB_TIMEOUT_S = 400  # CPU training on a shared 2-core machine; never asserted as a duration


def wait_api(distillery: WebPlatform, path: str, done: str, *, timeout: float) -> dict:
    """Poll a resource of the API until its `status`/`state` is `done` (fail on invalid/failed)."""
    deadline = time.monotonic() + timeout
    while True:
        row = distillery.api("GET", path)
        status = row.get("status") or row.get("state")
        if status == done:
            return row
        if status in ("invalid", "failed", "canceled"):
            pytest.fail(f"{path} ended {status}: {row.get('errors') or row.get('error')}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} still {status} after {timeout:.0f} s")
        time.sleep(0.5)


def test_sign_in_with_a_token_or_a_password(page: Page, distillery: WebPlatform) -> None:
    """A wrong token is refused in words; a password or the right token opens the jobs."""
    page.goto(f"{distillery.url}/")
    token_box = page.get_by_label("API token")
    expect(token_box).to_be_visible()
    shot(page, "01-sign-in")
    token_box.fill("dst_not-a-real-token")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#login-error")).to_contain_text("not valid")

    page.get_by_text("Use email and password instead").click()
    page.get_by_label("Email").fill(distillery.me.email)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in with password").click()
    expect(page.locator("#login-error")).to_contain_text("Email or password is wrong")
    page.get_by_label("Password").fill(distillery.me.password)
    page.get_by_role("button", name="Sign in with password").click()
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(token_box).to_be_visible()

    token_box.fill(distillery.me.token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    switcher = page.locator("#team-switcher")
    expect(switcher).to_contain_text(distillery.me.team_name)
    expect(switcher.locator("option")).to_have_count(2)
    expect(page.get_by_text("No jobs yet")).to_be_visible()
    shot(page, "02-jobs-empty")


def test_upload_dataset_and_see_statistics(page: Page, distillery: WebPlatform) -> None:
    """Upload through the page with a progress bar; the worker validates; statistics show."""
    sign_in(page, distillery, "#/datasets")
    form = page.locator("#dataset-upload")
    # A broken archive first: every error is listed under the file it is in.
    form.get_by_label("Name").fill("broken-drones")
    form.get_by_label("File").set_input_files(str(distillery.broken_zip))
    form.get_by_role("button", name="Upload").click()
    broken = page.locator("#datasets-table tbody tr", has_text="broken-drones")
    expect(broken.locator(".badge")).to_have_text("Invalid", timeout=120_000)
    broken.get_by_role("link", name="broken-drones").click()
    errors = page.locator("#validation-errors")
    expect(errors).to_contain_text("2 problems found")
    expect(errors.locator("summary", has_text="annotations/instances_train.json")).to_be_visible()
    expect(errors).to_contain_text("non-positive size")
    expect(errors.locator("summary", has_text="images/train/")).to_be_visible()
    expect(errors).to_contain_text("image file is missing")
    shot(page, "03a-dataset-invalid")

    page.get_by_role("link", name="Datasets").click()
    form.get_by_label("Name").fill("tiny-drones")
    form.get_by_label("File").set_input_files(str(distillery.dataset_zip))
    form.get_by_role("button", name="Upload").click()
    row = page.locator("#datasets-table tbody tr", has_text="tiny-drones")
    expect(row.locator(".badge")).to_have_text("Ready", timeout=120_000)
    dataset_id = int(row.get_attribute("data-dataset-id") or 0)
    distillery.state["dataset_id"] = dataset_id
    shot(page, "03-datasets")

    row.get_by_role("link", name="tiny-drones").click()
    stats = distillery.api("GET", f"/datasets/{dataset_id}")["statistics"]
    buckets = stats["size_buckets"]
    expect(page.locator("#dataset-stats")).to_be_visible()
    for bucket in ("small", "medium", "large"):
        expect(page.locator(f'[data-bucket="{bucket}"] .stat-value')).to_have_text(
            str(buckets[bucket])
        )
    assert buckets["small"] > 0  # the synthetic benchmark is about small objects
    histogram = page.locator('[data-chart="size-histogram"] canvas')
    expect(histogram).to_be_visible()
    expect(histogram).to_have_attribute("aria-label", re.compile(rf"{buckets['small']} small"))
    assert (histogram.bounding_box() or {}).get("height", 0) > 100
    expect(page.locator('[data-chart="boxes-per-class"] canvas')).to_be_visible()
    shot(page, "04-dataset-statistics")


def test_new_job_shows_errors_at_the_field_then_starts(page: Page, distillery: WebPlatform) -> None:
    """Errors sit under their field (the browser's checks and the server's 422); then submit."""
    dataset_id = distillery.need("dataset_id")
    wait_api(distillery, f"/teachers/{distillery.teacher_id}", "ready", timeout=120)
    # A job of another recipe goes first (no KD, a wider student), so that the job started
    # from the page waits in the queue and the tests can watch it change state.
    baseline = distillery.api(
        "POST",
        "/jobs",
        json={
            "name": "no-kd baseline",
            "spec": {
                "kind": "distill",
                "data": {"dataset_id": dataset_id, "image_size": IMAGE_SIZE, "batch_size": 2},
                "teacher": {
                    "teacher_id": distillery.teacher_id,
                    "arch": TEACHER_ARCH,
                    "fpn_channels": TEACHER_FPN,
                },
                "student": {"arch": STUDENT_ARCH, "fpn_channels": STUDENT_FPN + 8},
                "distill": {"lambda_kd": 0.0},
                "schedule": {
                    "epochs": 1,
                    "max_steps_per_epoch": 1,
                    "warmup_steps": 0,
                    "device": "cpu",
                    "amp": False,
                },
            },
        },
    )
    distillery.state["baseline_id"] = baseline["id"]

    sign_in(page, distillery, "#/teachers")
    teacher_row = page.locator(f'#teachers-table tr[data-teacher-id="{distillery.teacher_id}"]')
    expect(teacher_row.locator(".badge")).to_have_text("Ready")
    shot(page, "05a-teachers")

    page.get_by_role("link", name="New job").click()
    expect(page.get_by_role("heading", name="New job", exact=True)).to_be_visible()
    page.get_by_label("Name").fill("hkd tiny from the page")
    page.locator('select[name="data.dataset_id"]').select_option(str(dataset_id))
    page.locator('select[name="teacher.teacher_id"]').select_option(str(distillery.teacher_id))
    page.get_by_label("Image size (px)").fill(str(IMAGE_SIZE))
    page.get_by_label("Batch size").fill("2")
    page.get_by_label("Student FPN channels").fill(str(STUDENT_FPN))
    page.get_by_label("Single-level").check()
    expect(page.locator('input[name="distill.levels.p2.spatial"]')).to_have_value("0")
    page.get_by_label("Hierarchical").check()
    expect(page.locator('input[name="distill.levels.p2.spatial"]')).to_have_value("1")
    page.get_by_label("Steps per epoch (max)").fill("2")
    page.get_by_label("Warm-up steps", exact=True).fill("0")
    page.get_by_label("Device").select_option("cpu")
    page.get_by_label("Mixed precision").uncheck()

    # The browser's own range check, at the field.
    page.get_by_label("Epochs", exact=True).fill("-1")
    page.get_by_role("button", name="Start job").click()
    epochs_error = page.locator('[data-path="schedule.epochs"] .field-error')
    expect(epochs_error).not_to_be_empty()
    expect(page.locator('[data-path="schedule.epochs"]')).to_have_class(re.compile("has-error"))
    # The server's 422 for the same field, with the browser's check taken away.
    page.get_by_label("Epochs", exact=True).evaluate("el => el.removeAttribute('min')")
    page.get_by_role("button", name="Start job").click()
    expect(epochs_error).to_contain_text("greater than or equal to 0")
    expect(page.locator("#form-errors")).to_contain_text("not created")
    shot(page, "05-new-job-errors")

    page.get_by_label("Epochs", exact=True).fill("1")
    page.get_by_role("button", name="Start job").click()
    expect(page).to_have_url(re.compile(r"#/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    distillery.state["job_id"] = job_id
    job = distillery.api("GET", f"/jobs/{job_id}")
    assert job["spec"]["distill"]["levels"]["p2"] == {
        "spatial": 1.0,
        "semantic": 1.0,
        "context": 1.0,
    }
    assert job["spec"]["schedule"]["max_steps_per_epoch"] == 2
    assert job["spec"]["teacher"]["teacher_id"] == distillery.teacher_id
    expect(page.locator("h1 .badge")).to_have_text(re.compile("Queued|Running|Succeeded"))
    shot(page, "06-job-submitted")


def test_progress_updates_live_without_reload(page: Page, distillery: WebPlatform) -> None:
    """The list sees the job leave the queue; its page follows it to the end, same document."""
    job_id = distillery.need("job_id")
    sign_in(page, distillery, "#/jobs")
    row = page.locator(f'#jobs-table tr[data-job-id="{job_id}"]')
    expect(row).to_be_visible()
    first_state = row.get_attribute("data-state")
    page.evaluate("window.__sameDocument = true")
    if first_state == "queued":
        expect(row).not_to_have_attribute("data-state", "queued", timeout=JOB_TIMEOUT_S * 1000)
    if row.get_attribute("data-state") == "running":
        expect(row.get_by_role("progressbar")).to_be_visible()
        shot(page, "07-jobs-running")

    # Into the job page by a link (no page load): the live stream carries it to the end.
    row.get_by_role("link").first.click()
    badge = page.locator("h1 .badge")
    expect(badge).to_be_visible()
    states = {badge.inner_text()}
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while "Succeeded" not in states:
        if time.monotonic() > deadline:
            log = distillery.worker.log()[-3000:]
            pytest.fail(f"job {job_id} states seen: {states}; worker log:\n{log}")
        states.add(badge.inner_text())
        assert not states & {"Failed", "Canceled"}, distillery.api("GET", f"/jobs/{job_id}")
        page.wait_for_timeout(250)
    assert first_state != "succeeded" and len(states | {first_state}) >= 2, states
    expect(page.locator('[data-chart="loss-total"] .chart-empty')).to_be_hidden()

    page.get_by_role("link", name="Jobs", exact=True).click()
    metrics = distillery.api("GET", f"/jobs/{job_id}")["metrics"]
    expect(row.locator(".col-ap")).to_have_text(f"{metrics['student']['AP'] * 100:.1f} %")
    expect(row.locator(".col-user")).to_have_text(distillery.me.email)
    assert page.evaluate("window.__sameDocument === true")  # never reloaded on the way
    shot(page, "08-jobs-done")


def test_done_job_page_and_student_download(page: Page, distillery: WebPlatform) -> None:
    """Metrics beside the teacher, efficiency, curves per KD term and level; download works."""
    job_id = distillery.need("job_id")
    sign_in(page, distillery, f"#/jobs/{job_id}")
    expect(page.locator("h1 .badge")).to_have_text("Succeeded")
    expect(page.locator('#metrics-table tr[data-metric="AP_small"]')).to_be_visible()
    expect(page.locator("#metrics-table thead")).to_contain_text("Teacher")
    expect(page.locator("#efficiency-table")).to_contain_text("Parameters")
    for chart in ("loss-total", "kd-spatial", "kd-semantic", "kd-context", "lr"):
        expect(page.locator(f'[data-chart="{chart}"] .chart-empty')).to_be_hidden()
    expect(page.locator("#kd-matrix tbody tr")).to_have_count(4)  # P2..P5
    expect(page.locator("#job-logs li").first).to_be_visible()
    pictures = page.locator("#job-pictures img")
    if pictures.count():
        expect(pictures.first).to_have_attribute("src", re.compile("^blob:"))
    shot(page, "09-job-done")

    button = page.locator('#downloads [data-kind="student_safetensors"]')
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename.endswith(".safetensors")
    path = Path(download.path())
    data = path.read_bytes()
    assert len(data) > 1000
    # A safetensors file: 8-byte little-endian header length, then a JSON header of tensors.
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    assert any(key != "__metadata__" for key in header)
    expect(page.locator('#downloads [data-kind="student_onnx"]')).to_be_visible()


def test_compare_two_jobs(page: Page, distillery: WebPlatform) -> None:
    """Pick two jobs in the list: metrics with the best marked, and the spec differences."""
    job_id = distillery.need("job_id")
    baseline_id = distillery.need("baseline_id")
    wait_api(distillery, f"/jobs/{baseline_id}", "succeeded", timeout=JOB_TIMEOUT_S)
    sign_in(page, distillery, "#/jobs")
    for jid in (baseline_id, job_id):
        page.locator(f'#jobs-table tr[data-job-id="{jid}"] input[type="checkbox"]').check()
    page.locator("#compare-selected").click()
    expect(page).to_have_url(re.compile(r"#/compare\?jobs="))
    table = page.locator("#compare-metrics")
    expect(table.locator("tbody tr")).to_have_count(2)
    # The students differ in width, so one has fewer parameters: marked best.
    params_col = table.locator('thead th[data-metric="efficiency/student/params"]')
    expect(params_col).to_be_visible()
    best = table.locator('td[data-best="true"]')
    expect(best.first).to_be_visible()
    expect(best.first).to_contain_text("★")
    diff = page.locator("#spec-diff")
    expect(diff.locator('tr[data-path="distill.lambda_kd"]')).to_be_visible()
    expect(diff.locator('tr[data-path="student.fpn_channels"]')).to_contain_text(str(STUDENT_FPN))
    # The grid of every series both jobs share, the total loss among them, drawn.
    expect(page.locator('#compare-grid [data-chart="cmp:loss/total"] .chart-empty')).to_be_hidden()
    shot(page, "10-compare")


def test_another_teams_jobs_never_appear(page: Page, distillery: WebPlatform) -> None:
    """Rows of a team the user is not in stay out of lists, search, links; the switcher works."""
    sign_in(page, distillery, "#/jobs")
    expect(page.locator("#jobs-table tbody tr").first).to_be_visible()
    expect(page.locator("#jobs-table")).not_to_contain_text(distillery.other_job_name)
    expect(page.locator(f'#jobs-table tr[data-job-id="{distillery.other_job_id}"]')).to_have_count(
        0
    )

    page.goto(f"{distillery.url}/#/jobs?q={distillery.other_job_name}")
    expect(page.get_by_text("No jobs match")).to_be_visible()

    page.goto(f"{distillery.url}/#/jobs/{distillery.other_job_id}")
    expect(
        page.get_by_text(f"Job #{distillery.other_job_id} was not found in this team.")
    ).to_be_visible()
    expect(page.locator("body")).not_to_contain_text(distillery.other_job_name)
    shot(page, "11-other-team-not-found")

    # The user's second team shows its own job, and none of the first team's.
    page.goto(f"{distillery.url}/#/jobs")
    page.locator("#team-switcher").select_option(str(distillery.second_team_id))
    expect(page.locator("#jobs-table")).to_contain_text(distillery.second_team_job)
    expect(page.locator("#jobs-table")).not_to_contain_text("hkd tiny from the page")
    expect(page.locator("#jobs-table")).not_to_contain_text(distillery.other_job_name)
    shot(page, "12-second-team")


def test_narrow_window_layout(page: Page, distillery: WebPlatform) -> None:
    """At 420 px the pages fit the width (tables scroll inside), and the nav is reachable."""
    job_id = distillery.need("job_id")
    page.set_viewport_size({"width": 420, "height": 860})
    sign_in(page, distillery, "#/jobs")
    expect(page.locator("#jobs-table tbody tr").first).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 420, width
    page.keyboard.press("Tab")  # the skip link, then the navigation, by keyboard alone
    expect(page.locator(".skip-link")).to_be_focused()
    shot(page, "13-narrow-jobs", full_page=False)
    page.goto(f"{distillery.url}/#/jobs/{job_id}")
    expect(page.locator("#metrics-table")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    shot(page, "14-narrow-job")
