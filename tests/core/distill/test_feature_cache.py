"""The teacher-feature cache and the fused spatial term: the same losses, fewer passes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.distill.distiller import HierarchicalDistiller
from core.distill.feature_cache import TeacherFeatureCache, cache_refusal
from core.distill.masks import build_level_masks
from core.distill.spatial import spatial_loss
from core.models.detectors import build_student, build_teacher
from core.spec import AugmentSpec, DataSpec, DistillSpec, JobSpec, StudentSpec, TeacherSpec
from core.structures import Target

from ..conftest import IMAGE_SIZE


def _distiller(cache: TeacherFeatureCache | None) -> HierarchicalDistiller:
    torch.manual_seed(0)
    teacher = build_teacher(
        arch="retinanet_resnet18_fpn", num_classes=3, image_size=IMAGE_SIZE, fpn_channels=32
    )
    student = build_student(
        arch="retinanet_mobilenet_v2_fpn", num_classes=3, image_size=IMAGE_SIZE, fpn_channels=16
    )
    distiller = HierarchicalDistiller(teacher, student, weights=DistillSpec(lambda_kd=1.0))
    distiller.feature_cache = cache
    return distiller


def _values(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: float(value.detach()) for name, value in losses.items()}


def test_cached_and_uncached_steps_give_the_same_losses(
    images: torch.Tensor, targets: list[Target]
) -> None:
    views = [(index, index % 2 == 1) for index in range(images.shape[0])]
    plain = _values(_distiller(None)(images, targets, views=views))
    cache = TeacherFeatureCache("t", max_bytes=1 << 30)
    cached = _distiller(cache)
    first = _values(cached(images, targets, views=views))  # every view computed
    again = _values(cached(images, targets, views=views))  # every view read back
    assert cache.stats.misses == len(views) and cache.stats.hits == len(views)
    assert first.keys() == plain.keys() and any(k.startswith("kd/") for k in plain)
    for name, value in plain.items():
        # Features are float16-rounded (relative 2^-11) whether computed or read back.
        assert first[name] == pytest.approx(value, rel=2e-2, abs=1e-5), name
        assert again[name] == pytest.approx(first[name], rel=1e-6, abs=1e-7), name


def test_only_the_missing_views_are_computed(images: torch.Tensor) -> None:
    cache = TeacherFeatureCache("t", max_bytes=1 << 30)
    calls: list[int] = []

    def compute(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        calls.append(int(batch.shape[0]))
        return {"p3": batch[:, :1] * 2.0}

    two = images[:2]
    cache.features(two, [(1, False), (2, False)], compute)
    out = cache.features(two, [(1, False), (2, True)], compute)
    assert calls == [2, 1]  # the second batch computed only the unseen view
    assert cache.stats.hits == 1 and cache.stats.misses == 3
    assert cache.stats.hit_rate == pytest.approx(0.25)
    assert out["p3"].shape == (2, 1, *images.shape[2:])
    assert out["p3"].dtype == images.dtype


def test_memory_is_capped_least_recently_used_first(images: torch.Tensor) -> None:
    one_view = images[0, :1].numel() * 2  # bytes of one float16 view
    cache = TeacherFeatureCache("t", max_bytes=2 * one_view)
    for image_id in range(3):
        cache.put((image_id, False), {"p3": images[0, :1]})
    assert cache.stats.evicted == 1 and cache.stats.bytes_in_memory == 2 * one_view
    assert cache.get((0, False)) is None and cache.get((2, False)) is not None


def test_a_second_run_reads_the_views_back_from_disk(tmp_path: Path, images: torch.Tensor) -> None:
    first = TeacherFeatureCache("ns", max_bytes=0, directory=tmp_path)
    first.put((7, True), {"p3": images[0, :1]})
    second = TeacherFeatureCache("ns", max_bytes=1 << 20, directory=tmp_path)
    found = second.get((7, True))
    assert found is not None and second.stats.disk_hits == 1
    assert torch.equal(found["p3"], images[0, :1].half())
    other = TeacherFeatureCache("other", max_bytes=1 << 20, directory=tmp_path)
    assert other.get((7, True)) is None  # another teacher, data or transform


def _spec(**distill: object) -> JobSpec:
    return JobSpec(
        kind="distill",
        data=DataSpec(path="d", augment=AugmentSpec(hflip=True)),
        teacher=TeacherSpec(arch="retinanet_resnet18_fpn", checkpoint="t.safetensors"),
        student=StudentSpec(arch="retinanet_mobilenet_v2_fpn"),
        distill=DistillSpec.model_validate(distill),
    )


def test_the_cache_is_refused_where_the_teachers_input_or_outputs_vary() -> None:
    assert cache_refusal(_spec()) is None
    jitter = _spec()
    jitter.data.augment.color_jitter = 0.2
    assert "colour jitter" in (cache_refusal(jitter) or "")
    assert "head" in (cache_refusal(_spec(response=1.0)) or "")
    assert "off" in (cache_refusal(_spec(teacher_cache=False)) or "")


@pytest.mark.parametrize("masked", [True, False])
def test_the_fused_fitted_spatial_term_equals_the_explicit_projection(masked: bool) -> None:
    torch.manual_seed(0)
    student = torch.randn(4, 8, 16, 16, requires_grad=True)
    teacher = torch.randn(4, 12, 16, 16) + 0.5 * torch.randn(1, 12, 1, 1)
    teacher[:, :8] += 0.7 * student.detach()
    boxes = torch.tensor([[3.0, 4.0, 20.0, 30.0], [40.0, 40.0, 60.0, 50.0]])
    targets = [Target(boxes=boxes, labels=torch.tensor([1, 2])) for _ in range(4)]
    masks = build_level_masks(targets, (64, 64), {"p2": (16, 16)})["p2"] if masked else None
    fused = spatial_loss(student, teacher, masks, fitted=True, fused=True)
    (fused_grad,) = torch.autograd.grad(fused, student)
    explicit = spatial_loss(student, teacher, masks, fitted=True, fused=False)
    (explicit_grad,) = torch.autograd.grad(explicit, student)
    assert float(fused.detach()) == pytest.approx(float(explicit.detach()), rel=1e-4)
    assert torch.allclose(fused_grad, explicit_grad, rtol=1e-3, atol=1e-6)


def test_a_bf16_teacher_stays_close_to_float32(images: torch.Tensor) -> None:
    distiller = _distiller(None)
    distiller.spec = distiller.spec.model_copy(update={"teacher_precision": "fp32"})
    assert distiller.precision_gap(images) == {}
    distiller.spec = distiller.spec.model_copy(update={"teacher_precision": "bf16"})
    gap = distiller.precision_gap(images)
    assert set(gap) == set(distiller.teacher.output_shape())  # type: ignore[union-attr]
    # bf16 keeps 8 bits of mantissa: a few tenths of a percent per layer, a few percent deep.
    assert all(0.0 < value < 0.1 for value in gap.values()), gap
