"""The run table and the job page a team trusts, in headless Chromium against a real server.

Jobs with known metrics are written straight to the store (no training: the figures are the
point here), with a picture artifact for the lightbox. Each test saves screenshots to
test-artifacts/screenshots/. Tests run in file order; each stands on the seeded jobs only.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from sqlalchemy import update

from store import repositories as repo
from store.blob_keys import job_artifact_key
from store.blobs import make_blob_store
from store.db import make_engine, make_session_factory, session_scope
from store.models import Job, utcnow
from tests.web.conftest import WebPlatform, shot, sign_in

pytestmark = pytest.mark.browser

AP_TEXT = re.compile(r"^(\d+\.\d %|n/a|—)†?$")
"""Every AP figure on every page: percent with one decimal, or why there is none."""


WHOLE_VAL = {"mode": "whole", "split": "val", "images": 12, "image_size": 128}
"""metrics.json `evaluation` of a letterboxed job; jobs seeded without it read as older ones."""


def _metrics(
    ap_small: float, *, latency: float, evaluation: dict[str, Any] | None = None
) -> dict[str, Any]:
    student = {
        "AP": ap_small + 0.1,
        "AP50": ap_small + 0.2,
        "AP75": ap_small + 0.05,
        "AP_small": ap_small,
        "AP_medium": ap_small + 0.15,
        "AP_large": -1.0,
        "per_class": {"car": ap_small + 0.1, "pedestrian": ap_small},
    }
    efficiency = {"params": 2_000_000, "gflops": 3.0, "latency_ms": latency, "device": "cpu"}
    extra = {"evaluation": evaluation} if evaluation is not None else {}
    return {
        **extra,
        "kind": "distill",
        "student": student,
        "teacher": {**student, "AP": 0.5, "AP_small": 0.3},
        "efficiency": {
            "student": {**efficiency, "onnx_latency_ms": latency / 2},
            "teacher": {**efficiency, "params": 20_000_000, "gflops": 30.0},
            "ratios": {"params": 0.1, "gflops": 0.1, "latency": 1.0},
        },
        "export": {"onnx_max_abs_diff": 2e-6},
        "dataset": {"train_images": 40, "val_images": 12, "categories": ["car", "pedestrian"]},
    }


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 48), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def seeded(distillery: WebPlatform) -> dict[str, int]:
    """Three finished jobs with known AP_small (one with a picture), and one queued job."""
    engine = make_engine(distillery.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    blobs = make_blob_store(distillery.settings)
    ids: dict[str, int] = {}
    spec = {"kind": "distill", "data": {"dataset_id": 999}, "schedule": {"epochs": 1}}
    evaluations = {"rt-high": WHOLE_VAL}
    with session_scope(sessions) as s:
        for name, small, ms in (
            ("rt-low", 0.02, 30.0),
            ("rt-high", 0.25, 31.0),
            ("rt-mid", 0.12, 29.0),
        ):
            job = repo.create_job(
                s,
                team_id=distillery.me.team_id,
                created_by=distillery.me.user_id,
                kind="distill",
                spec=spec,
                spec_hash=f"hash{name[-3:]}",
                name=name,
            )
            s.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(
                    state="succeeded",
                    # rt-high as metrics.json is written now; the others as older jobs' are.
                    metrics=_metrics(small, latency=ms, evaluation=evaluations.get(name)),
                    finished_at=utcnow(),
                )
            )
            ids[name] = job.id
        for name in ("pictures/gradcam_00.png", "pictures/boxes_00.png"):
            key = job_artifact_key(ids["rt-high"], name)
            size = blobs.put_stream(key, io.BytesIO(_png()))
            repo.add_artifact(
                s,
                job_id=ids["rt-high"],
                kind="picture",
                name=name,
                key=key,
                size_bytes=size,
                content_type="image/png",
            )
        # One validation point, and a loss whose steps restart (a fine-tune stage after distill).
        losses = [(1, 3.0), (2, 2.5), (3, 2.0), (1, 1.8), (2, 1.6)]
        repo.add_metric_points(
            s,
            job_id=ids["rt-mid"],
            points=[{"name": "eval/AP_small", "value": 0.12, "step": 3}]
            + [{"name": "loss/total", "value": v, "step": step} for step, v in losses],
        )
        queued = repo.create_job(
            s,
            team_id=distillery.me.team_id,
            created_by=distillery.me.user_id,
            kind="distill",
            spec=spec,
            name="rt-queued",
        )
        ids["rt-queued"] = queued.id
    engine.dispose()
    return ids


def _names(page: Page) -> list[str]:
    rows = page.locator("#jobs-table tbody tr .col-name a")
    return [t.split(" ", 1)[1] for t in rows.all_inner_texts()]


def test_sort_a_column_and_filter_by_a_metric_range(
    page: Page, distillery: WebPlatform, seeded: dict[str, int]
) -> None:
    """Sort by AP small (server-side, both ways); AP small ≥ 10 % keeps two jobs."""
    sign_in(page, distillery, "#/jobs?q=rt-")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(4)
    header = page.locator('th[data-sort="metric:AP_small"] button')
    header.click()
    expect(page.locator('th[data-sort="metric:AP_small"]')).to_have_attribute(
        "aria-sort", "descending"
    )
    expect(page.locator("#jobs-table tbody tr").first).to_contain_text("rt-high")
    assert _names(page)[:3] == ["rt-high", "rt-mid", "rt-low"]
    assert "sort=-metric" in page.url
    page.locator('th[data-sort="metric:AP_small"] button').click()
    expect(page.locator('th[data-sort="metric:AP_small"]')).to_have_attribute(
        "aria-sort", "ascending"
    )
    expect(page.locator("#jobs-table tbody tr").first).to_contain_text("rt-low")
    shot(page, "20-run-table-sorted")

    page.locator("#filter-min").fill("10")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(2)
    assert sorted(_names(page)) == ["rt-high", "rt-mid"]
    expect(page.locator("#jobs-count")).to_contain_text("of 2")
    shot(page, "21-run-table-filtered")


def test_choose_columns_then_save_and_restore_a_view(
    page: Page, distillery: WebPlatform, seeded: dict[str, int]
) -> None:
    """Add the λ KD column and the note, save the view; a fresh visit restores it."""
    sign_in(page, distillery, "#/jobs?q=rt-&sort=name")
    page.locator("#column-chooser summary").click()
    page.locator('[data-column="spec_lambda_kd"]').check()
    expect(page.locator("#jobs-table thead")).to_contain_text("λ KD")
    page.locator("#column-chooser summary").click()
    page.once("dialog", lambda dialog: dialog.accept("by name with λ"))
    page.locator("#save-view").click()
    expect(page.locator("#saved-views option", has_text="by name with λ")).to_have_count(1)

    page.goto(f"{distillery.url}/#/jobs")
    expect(page.locator("#jobs-table thead")).not_to_contain_text("λ KD")
    page.locator("#saved-views").select_option("by name with λ")
    expect(page.locator("#jobs-table thead")).to_contain_text("λ KD")
    expect(page.locator('th[data-sort="name"]')).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(4)
    assert _names(page) == ["rt-high", "rt-low", "rt-mid", "rt-queued"]
    shot(page, "22-run-table-view-restored")


def test_add_a_tag_and_a_note_then_filter_by_the_tag(
    page: Page, distillery: WebPlatform, seeded: dict[str, int]
) -> None:
    job_id = seeded["rt-mid"]
    sign_in(page, distillery, f"#/jobs/{job_id}")
    page.locator("#tag-input").fill("has space")
    page.locator("#tag-add").click()
    expect(page.locator("#tag-error")).to_contain_text("no spaces")
    page.locator("#tag-input").fill("baseline")
    page.locator("#tag-add").click()
    expect(page.locator('#job-tags [data-tag="baseline"]')).to_be_visible()
    page.locator("#job-note").fill("p2 weights doubled")
    page.locator("#note-save").click()
    expect(page.locator(".toast", has_text="Note saved")).to_be_visible()
    stored = distillery.api("GET", f"/jobs/{job_id}")
    assert (stored["tags"], stored["note"]) == (["baseline"], "p2 weights doubled")
    shot(page, "23-job-tag-added")

    page.goto(f"{distillery.url}/#/jobs?tag=baseline")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    expect(page.locator("#jobs-table tbody tr")).to_contain_text("rt-mid")
    expect(page.locator('#jobs-table [data-tag="baseline"]')).to_be_visible()


def test_filter_jobs_by_user(page: Page, distillery: WebPlatform, seeded: dict[str, int]) -> None:
    sign_in(page, distillery, "#/jobs?q=rt-")
    page.locator("#filter-user").select_option(str(distillery.me.user_id))
    expect(page).to_have_url(re.compile(f"user={distillery.me.user_id}"))
    expect(page.locator("#jobs-table tbody tr")).to_have_count(4)
    users = set(page.locator("#jobs-table tbody .col-user").all_inner_texts())
    assert users == {distillery.me.email}


def test_job_page_units_latency_onnx_and_per_class_ap(
    page: Page, distillery: WebPlatform, seeded: dict[str, int]
) -> None:
    job_id = seeded["rt-high"]
    sign_in(page, distillery, f"#/jobs/{job_id}")
    expect(page.locator('#metrics-table tr[data-metric="AP_small"] .ap').first).to_have_text(
        "25.0 %"
    )
    expect(page.locator('#metrics-table tr[data-metric="AP_large"] .ap').first).to_have_text("n/a")
    title = page.locator('#metrics-table tr[data-metric="AP_large"] .ap').first.get_attribute(
        "title"
    )
    assert title is not None and "no object of this size" in title
    # Which split and how many images the figures come from, and how they were scored.
    evaluated = page.locator("#evaluated-on")
    expect(evaluated.locator(".eval-caption")).to_have_text("val · 12 images")
    expect(evaluated).to_contain_text("letterboxed to 128 px")
    expect(evaluated).to_contain_text("trained on 40 images")
    latency = page.locator('#efficiency-table tr[data-row="latency"]')
    expect(latency).to_contain_text("cpu")
    expect(latency).to_contain_text("spread not measured")  # an older job: one median
    expect(page.locator('#efficiency-table tr[data-row="onnx-latency"]')).to_contain_text("15.5 ms")
    expect(page.locator("#onnx-parity")).to_contain_text("2.0e-6")
    expect(page.locator('#per-class-ap tr[data-class="pedestrian"] .ap').first).to_have_text(
        "25.0 %"
    )
    expect(page.locator("#spec-hash")).to_have_text("hashigh")
    # The predicted-box picture sits in the predictions view, not among the attention maps.
    expect(page.locator('#box-pictures [data-picture="pictures/boxes_00.png"]')).to_be_visible()
    expect(page.locator('#job-pictures [data-picture="pictures/boxes_00.png"]')).to_have_count(0)
    for text in page.locator("[data-ap]:visible").all_inner_texts():
        assert AP_TEXT.match(text.strip()), text
    shot(page, "24-job-page-metrics")


def test_attention_picture_opens_in_a_lightbox_and_escape_closes_it(
    page: Page, distillery: WebPlatform, seeded: dict[str, int]
) -> None:
    sign_in(page, distillery, f"#/jobs/{seeded['rt-high']}")
    caption = page.locator("#attention-caption")
    expect(caption).to_contain_text("blue")
    expect(caption).to_contain_text("red")
    expect(caption).not_to_contain_text("brighter")
    thumb = page.locator('#job-pictures [data-picture="pictures/gradcam_00.png"] img')
    expect(thumb).to_have_attribute("src", re.compile("^blob:"))
    thumb.click()
    box = page.locator("#lightbox")
    expect(box).to_be_visible()
    big = box.locator("img").bounding_box()
    small = thumb.bounding_box()
    assert big is not None and small is not None and big["width"] > small["width"]
    shot(page, "25-lightbox", full_page=False)
    page.keyboard.press("Escape")
    expect(box).to_have_count(0)


def test_cancel_asks_for_confirmation_first(
    page: Page, distillery: WebPlatform, seeded: dict[str, int]
) -> None:
    job_id = seeded["rt-queued"]
    sign_in(page, distillery, f"#/jobs/{job_id}")
    page.locator("#cancel-job").click()
    dialog = page.locator(".confirm-dialog")
    expect(dialog).to_be_visible()
    shot(page, "26-cancel-confirmation", full_page=False)
    dialog.locator("[data-confirm=no]").click()
    expect(dialog).to_have_count(0)
    assert distillery.api("GET", f"/jobs/{job_id}")["state"] == "queued"
    page.locator("#cancel-job").click()
    page.locator(".confirm-dialog [data-confirm=yes]").click()
    expect(page.locator("h1 .badge")).to_have_text("Canceled")
    assert distillery.api("GET", f"/jobs/{job_id}")["state"] == "canceled"
    # Delete asks too, and "Keep it" keeps it.
    page.locator("#delete-job").click()
    page.locator(".confirm-dialog [data-confirm=no]").click()
    assert distillery.api("GET", f"/jobs/{job_id}")["id"] == job_id


def test_compare_stars_only_real_leads_and_lists_only_real_differences(
    page: Page, distillery: WebPlatform, seeded: dict[str, int]
) -> None:
    ids = ",".join(str(seeded[n]) for n in ("rt-low", "rt-high"))
    sign_in(page, distillery, f"#/compare?jobs={ids}")
    table = page.locator("#compare-metrics")
    expect(table).to_be_visible()
    # AP small differs by 23 points: starred; latency is one median figure each: never.
    expect(table.locator('tr td[data-best="true"]').first).to_be_visible()
    latency_col = page.locator('#compare-metrics th[data-metric="efficiency/student/latency_ms"]')
    if latency_col.count():
        index = latency_col.evaluate("th => th.cellIndex")
        stars = page.locator(f"#compare-metrics tbody tr td:nth-child({index + 1})[data-best]")
        expect(stars).to_have_count(0)
    # Each job's split and image count: rt-low's older metrics carry the count in `dataset`.
    captions = table.locator("tbody tr td.eval-caption")
    expect(captions).to_have_text(["val · 12 images", "val · 12 images"])
    expect(page.locator("#compare-evaluations-differ")).to_have_count(0)
    # Same stored spec (defaults filled on both sides): nothing differs.
    expect(page.locator("#spec-diff")).to_have_count(0)
    expect(page.locator("#spec-hashes")).to_contain_text("hashlow")
    for text in page.locator("[data-ap]:visible").all_inner_texts():
        assert AP_TEXT.match(text.strip()), text
    shot(page, "27-compare-real-differences")


def test_one_ap_unit_on_the_jobs_list(
    page: Page, distillery: WebPlatform, seeded: dict[str, int]
) -> None:
    sign_in(page, distillery, "#/jobs?q=rt-")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(4)
    texts = page.locator("#jobs-table [data-ap]").all_inner_texts()
    assert texts and all(AP_TEXT.match(t.strip()) for t in texts), texts
    expect(page.locator("#jobs-table thead")).to_contain_text("AP small (%)")


def test_teacher_page_is_a_table_that_fits_a_phone(
    page: Page, distillery: WebPlatform, seeded: dict[str, int]
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, distillery, f"#/teachers/{distillery.teacher_id}")
    expect(page.locator("#teacher-summary")).to_be_visible()
    expect(page.locator('#teacher-summary [data-field="classes"]')).to_contain_text(
        "(+ background)"
    )
    expect(page.locator("#teacher-summary")).to_contain_text("you")
    assert page.locator("main pre").count() == 0  # no JSON dump
    assert "{" not in page.locator("main").inner_text()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    for text in page.locator("[data-ap]:visible").all_inner_texts():
        assert AP_TEXT.match(text.strip()), text
    shot(page, "28-teacher-phone")
    page.goto(f"{distillery.url}/#/teachers")
    expect(page.locator("#teachers-table .col-user").first).to_contain_text("you")


def test_one_validation_point_and_stages_in_sequence(
    page: Page, distillery: WebPlatform, seeded: dict[str, int]
) -> None:
    """One AP point gets an axis around its value (not -1..1); a restarted stage continues."""
    sign_in(page, distillery, f"#/jobs/{seeded['rt-mid']}")
    chart = page.locator('[data-chart="eval"]')
    expect(chart).to_have_attribute("data-points", "1")
    y_min, y_max = (
        float(chart.get_attribute("data-y-min") or "nan"),
        float(chart.get_attribute("data-y-max") or "nan"),
    )
    assert 0 <= y_min < 12.0 < y_max, (y_min, y_max)
    loss = page.locator('[data-chart="loss-total"]')
    expect(loss).to_have_attribute("data-points", "5")
    # Steps 1-3 then 1-2 again: drawn as 1..5 on one axis, and said so.
    assert float(loss.get_attribute("data-x-max") or 0) >= 5
    expect(page.locator("#stage-note")).to_contain_text("stage 2 from step 4")
    chart.scroll_into_view_if_needed()
    shot(page, "29-one-point-and-stages", full_page=False)


# --- latency spread, stages, the compare grid, PR curves, team history ---------------------


def _spread(median: float, low: float, high: float, *, onnx: tuple[float, float, float]) -> dict:
    return {
        "params": 2_000_000,
        "gflops": 3.0,
        "latency_ms": median,
        "latency_p10_ms": low,
        "latency_p90_ms": high,
        "latency_repeats": 10,
        "latency_warmup": 3,
        "device": "cpu (2 threads)",
        "onnx_latency_ms": onnx[0],
        "onnx_latency_p10_ms": onnx[1],
        "onnx_latency_p90_ms": onnx[2],
        "onnx_latency_repeats": 10,
        "onnx_latency_warmup": 3,
        "onnx_device": "cpu (onnxruntime)",
    }


def _pr_curve() -> dict[str, Any]:
    recall = [round(i / 100, 2) for i in range(101)]
    car = [1.0 if r <= 0.6 else 0.0 for r in recall]
    walker = [0.5 if r <= 0.3 else 0.0 for r in recall]
    mean = [(a + b) / 2 for a, b in zip(car, walker, strict=True)]
    return {"iou": 0.5, "recall": recall, "all": mean, "per_class": {"car": car, "walker": walker}}


SLICED_TEST = {"mode": "sliced", "split": "test", "images": 3, "image_size": 64, "tile_size": 64,
               "overlap": 0.25, "full_image": True, "merge": "nmm (ios > 0.5)"}  # fmt: skip


@pytest.fixture(scope="module")
def insights(distillery: WebPlatform) -> dict[str, int]:
    """Two jobs with latency spreads (PyTorch ranges overlap, ONNX ones do not), staged
    points (fine-tune after distill, steps restarting), a noisy shared loss, a PR curve; a
    colleague with a job of their own."""
    engine = make_engine(distillery.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    ids: dict[str, int] = {}
    spec = {"kind": "distill", "data": {"dataset_id": 999}, "schedule": {"epochs": 1}}
    with session_scope(sessions) as s:
        efficiencies = {
            "ins-fast": _spread(10.0, 9.0, 11.0, onnx=(5.0, 4.8, 5.2)),
            "ins-slow": _spread(12.0, 10.5, 13.0, onnx=(8.0, 7.5, 8.5)),
        }
        evaluations = {"ins-fast": WHOLE_VAL, "ins-slow": SLICED_TEST}
        for name, efficiency in efficiencies.items():
            metrics = _metrics(0.1, latency=efficiency["latency_ms"], evaluation=evaluations[name])
            metrics["efficiency"]["student"] = efficiency
            metrics["student"]["pr_curve"] = _pr_curve()
            job = repo.create_job(
                s, team_id=distillery.me.team_id, created_by=distillery.me.user_id,
                kind="distill", spec=spec, spec_hash=f"h-{name}", name=name,
            )  # fmt: skip
            s.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(state="succeeded", metrics=metrics, finished_at=utcnow())
            )
            ids[name] = job.id
            # A noisy loss both jobs share: 1, 3, 1, 3 ... over distill steps 1-8, then a
            # fine-tune whose steps restart at 1 (stored with its stage).
            points = [
                {"name": "loss/total", "value": 1.0 if step % 2 else 3.0, "step": step,
                 "stage": "distill"}
                for step in range(1, 9)
            ] + [
                {"name": "loss/total", "value": 0.5, "step": step, "stage": "finetune"}
                for step in (1, 2)
            ]  # fmt: skip
            points.append({"name": "eval/AP_small", "value": 0.1, "step": 8, "stage": "distill"})
            repo.add_metric_points(s, job_id=job.id, points=points)
        colleague = repo.create_user(
            s, email=f"grace-{distillery.me.team_id}@example.test", name="Grace Hopper",
            password="pw-grace-123456",
        )  # fmt: skip
        repo.add_member(s, team_id=distillery.me.team_id, user_id=colleague.id, role="member")
        theirs = repo.create_job(
            s, team_id=distillery.me.team_id, created_by=colleague.id, kind="distill",
            spec=spec, name="ins-graces",
        )  # fmt: skip
        ids["colleague"], ids["ins-graces"] = colleague.id, theirs.id
    engine.dispose()
    return ids


def test_latency_is_shown_with_its_spread_repeats_and_device(
    page: Page, distillery: WebPlatform, insights: dict[str, int]
) -> None:
    sign_in(page, distillery, f"#/jobs/{insights['ins-fast']}")
    latency = page.locator('#efficiency-table tr[data-row="latency"] .latency').first
    expect(latency).to_have_text("10 ms ± 1 (p10–p90, n = 10, cpu (2 threads))")
    expect(latency).to_have_attribute("data-spread", "measured")
    onnx = page.locator('#efficiency-table tr[data-row="onnx-latency"] .latency').first
    expect(onnx).to_contain_text("5 ms ± 0.2")
    expect(onnx).to_contain_text("onnxruntime")
    expect(page.locator("#onnx-parity")).to_be_visible()
    shot(page, "40-latency-spread")


def test_compare_gives_no_latency_star_when_the_spreads_overlap(
    page: Page, distillery: WebPlatform, insights: dict[str, int]
) -> None:
    fast, slow = insights["ins-fast"], insights["ins-slow"]
    sign_in(page, distillery, f"#/compare?jobs={fast},{slow}")
    table = page.locator("#compare-metrics")
    expect(table).to_be_visible()

    def stars(metric: str) -> list[str]:
        column = table.locator(f'th[data-metric="{metric}"]')
        index = column.evaluate("th => th.cellIndex")
        cells = table.locator(f"tbody tr td:nth-child({index + 1})")
        return [c.get_attribute("data-best") or "" for c in cells.all()]

    # PyTorch: 9-11 ms against 10.5-13 ms overlap: no star, though the medians differ.
    assert stars("efficiency/student/latency_ms") == ["", ""]
    # ONNX Runtime: 4.8-5.2 ms against 7.5-8.5 ms: a real lead, starred.
    assert stars("efficiency/student/onnx_latency_ms") == ["true", ""]
    # Scored on different splits and counts: each row says which, and a warning says so.
    expect(table.locator("tbody tr td.eval-caption")).to_have_text(
        ["val · 12 images", "test · 3 images · sliced"]
    )
    expect(page.locator("#compare-evaluations-differ")).to_contain_text("not directly comparable")
    row = table.locator(f'tr[data-job-id="{fast}"]')
    expect(row).to_contain_text("10 ± 1 ms")
    expect(row).to_contain_text("n = 10, cpu (2 threads)")
    shot(page, "41-compare-latency-spreads")


def test_compare_grid_of_shared_scalars_with_smoothing(
    page: Page, distillery: WebPlatform, insights: dict[str, int]
) -> None:
    fast, slow = insights["ins-fast"], insights["ins-slow"]
    sign_in(page, distillery, f"#/compare?jobs={fast},{slow}&smoothing=0")
    grid = page.locator("#compare-grid")
    expect(grid.locator("[data-chart]")).to_have_count(2)  # loss/total and eval/AP_small
    loss = grid.locator('[data-chart="cmp:loss/total"]')
    expect(loss).to_have_attribute("data-points", "20")
    expect(loss).to_have_attribute("data-data-max", "3")
    # The fine-tune continues after the distillation's 8 steps: x runs to 10.
    assert float(loss.get_attribute("data-x-max") or 0) >= 10
    page.locator("#compare-smoothing").fill("0.9")
    expect(page.locator("#compare-smoothing-value")).to_have_text("0.90")
    expect(grid).to_have_attribute("data-smoothing", "0.9")
    page.wait_for_function(
        "() => Number(document.querySelector('[data-chart=\"cmp:loss/total\"]')"
        ".dataset.dataMax) < 2.5"
    )
    page.locator("#compare-xaxis").select_option("epoch")
    expect(grid).to_have_attribute("data-x", "epoch")
    shot(page, "42-compare-grid-smoothed")


def test_stages_are_labelled_on_one_global_step_axis(
    page: Page, distillery: WebPlatform, insights: dict[str, int]
) -> None:
    sign_in(page, distillery, f"#/jobs/{insights['ins-fast']}")
    loss = page.locator('[data-chart="loss-total"]')
    expect(loss).to_have_attribute("data-points", "10")
    expect(loss).to_have_attribute("data-stages", "distill,finetune")
    assert float(loss.get_attribute("data-x-max") or 0) >= 10
    note = page.locator("#stage-note")
    expect(note).to_contain_text("distill from step 1")
    expect(note).to_contain_text("fine-tune from step 9")
    loss.scroll_into_view_if_needed()
    shot(page, "43-stages-labelled", full_page=False)


def test_pr_curve_on_the_job_page_all_classes_and_one(
    page: Page, distillery: WebPlatform, insights: dict[str, int]
) -> None:
    sign_in(page, distillery, f"#/jobs/{insights['ins-fast']}")
    chart = page.locator('[data-chart="pr-curve"]')
    expect(chart).to_have_attribute("data-points", "101")
    expect(chart).to_have_attribute("data-data-max", "0.75")
    page.locator("#pr-class").select_option("car")
    expect(chart).to_have_attribute("data-points", "202")
    expect(chart).to_have_attribute("data-pr-class", "car")
    expect(chart).to_have_attribute("data-data-max", "1")
    expect(page.locator('#per-class-ap tr[data-class="car"]')).to_be_visible()
    chart.scroll_into_view_if_needed()
    shot(page, "44-pr-curve", full_page=False)


def test_filter_jobs_by_a_colleague(
    page: Page, distillery: WebPlatform, insights: dict[str, int]
) -> None:
    sign_in(page, distillery, "#/jobs?q=ins-")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(3)
    colleague = str(insights["colleague"])
    # Members are offered whether or not a job of theirs is on the page.
    expect(page.locator(f'#filter-user option[value="{colleague}"]')).to_have_count(1)
    page.locator("#filter-user").select_option(colleague)
    expect(page).to_have_url(re.compile(f"user={colleague}"))
    expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    expect(page.locator("#jobs-table tbody tr")).to_contain_text("ins-graces")


def test_activity_view_says_who_did_what_and_filters_by_user(
    page: Page, distillery: WebPlatform, insights: dict[str, int]
) -> None:
    graces = insights["ins-graces"]
    distillery.api("POST", f"/jobs/{graces}/cancel")  # I cancel Grace's queued job
    sign_in(page, distillery, "#/activity")
    table = page.locator("#activity-table")
    canceled = table.locator(f'tr[data-action="canceled"][data-subject="job:{graces}"]')
    expect(canceled).to_have_count(1)
    expect(canceled.locator(".col-user")).to_have_text("you")
    submitted = table.locator(f'tr[data-action="submitted"][data-subject="job:{graces}"]')
    expect(submitted.locator(".col-user")).to_contain_text("grace-")
    expect(table.locator('tr[data-action="uploaded_teacher"]')).to_have_count(1)
    shot(page, "45-activity")
    page.locator("#activity-user").select_option(str(insights["colleague"]))
    expect(page).to_have_url(re.compile(f"activity\\?user={insights['colleague']}"))
    rows = page.locator("#activity-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-action", "submitted")
