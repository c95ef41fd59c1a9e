"""What the study runs: the scales, the variants and the job specs of every run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.spec import (
    ABLATION_PRESETS,
    LEVEL_NAMES,
    AugmentSpec,
    DataSpec,
    DistillSpec,
    JobSpec,
    LevelWeights,
    ScheduleSpec,
    StudentSpec,
    TeacherSpec,
    ablation_distill,
)

MAIN_VARIANTS: tuple[str, ...] = ABLATION_PRESETS
"""The main ablation: no KD, response KD, PKD, single-level (P3) and hierarchical KD."""
TERMS: tuple[str, ...] = ("spatial", "semantic", "context")
LEVEL_ABLATIONS: tuple[str, ...] = tuple(f"drop_{name}" for name in LEVEL_NAMES) + tuple(
    f"drop_{term}" for term in TERMS
)
"""Full hierarchical KD with one level or one term switched off."""
TEACHER = "teacher"
TUNING: dict[str, tuple[str, dict[str, Any]]] = {
    "tune_lambda_0.001": ("HKD, lambda_KD 0.001", {"lambda_kd": 0.001}),
    "tune_lambda_0.01": ("HKD, lambda_KD 0.01", {"lambda_kd": 0.01}),
    "tune_lambda_0.1": ("HKD, lambda_KD 0.1", {"lambda_kd": 0.1}),
    "tune_lambda_3": ("HKD, lambda_KD 3", {"lambda_kd": 3.0}),
    "tune_no_context": ("HKD without the context term", {"level_terms": {"context": 0.0}}),
    "tune_p2_p3": (
        "HKD on P2 and P3 only (P4, P5 off)",
        {"off_levels": ("p4", "p5")},
    ),
    "tune_p2_only": (
        "HKD on P2 only (P3, P4, P5 off)",
        {"off_levels": ("p3", "p4", "p5")},
    ),
    "tune_response_0.1": (
        "HKD with response KD (weight 1), lambda_KD 0.1",
        {"response": 1.0, "lambda_kd": 0.1},
    ),
}
"""Candidate changes to full HKD (weights, warm-up, masks, normalisation), compared on val."""
SCHEDULES: dict[str, tuple[str, int, int]] = {
    "sched_no_kd_x3": ("no_kd", 3, 0),
    "sched_hkd_x3": ("hierarchical", 3, 0),
    "sched_hkd_finetune": ("hierarchical", 1, 1),
}
"""The schedule study on val: (variant, student epochs as a multiple of the scale's, fine-tune
epochs as half the scale's student epochs per unit). The 1x runs are the tuning baselines."""
TUNING_BASELINES: tuple[str, ...] = ("no_kd", "hierarchical")
VARIANT_LABELS: dict[str, str] = {
    "teacher": "teacher",
    "no_kd": "no KD",
    "response": "response KD (LD / CrossKD normalisation)",
    "pkd": "PKD (Pearson feature KD, all cells)",
    "single_level": "single-level feature KD (P3)",
    "hierarchical": "hierarchical KD (all the scale's levels and terms)",
    **{f"drop_{n}": f"HKD without {n.upper()}" for n in LEVEL_NAMES},
    **{f"drop_{t}": f"HKD without the {t} term" for t in TERMS},
    **{name: label for name, (label, _) in TUNING.items()},
    "sched_no_kd_x3": "no KD, 3x the epochs",
    "sched_hkd_x3": "HKD, 3x the epochs",
    "sched_hkd_finetune": "HKD, then a label-only fine-tune stage (half the epochs)",
}

Track = Literal["coco", "voc"]
Group = Literal["teacher", "main", "ablation", "tuning"]


@dataclass(frozen=True)
class Scale:
    """Sizes and schedules of one study scale (smoke, cpu or gpu)."""

    name: str
    description: str
    image_size: int
    trainval_images: int  # generated with seed `data_seed`, split train/val
    val_fraction: float
    test_images: int  # generated apart with seed `test_seed`: the reported split
    batch_size: int
    teacher_arch: str
    teacher_fpn: int
    student_arch: str
    student_fpn: int
    teacher_epochs: int
    student_epochs: int
    lr: float
    seeds: tuple[int, ...]
    ablation_seeds: tuple[int, ...]
    voc_seeds: tuple[int, ...]
    voc_variants: tuple[str, ...]
    ablation_variants: tuple[str, ...] = LEVEL_ABLATIONS
    tuning_seeds: tuple[int, ...] = (0, 1)
    tuning_track: Track = "coco"
    teacher_lr: tuple[tuple[Track, float], ...] = ()
    """Per-track teacher learning rate where it is not `lr`."""
    distill: tuple[tuple[str, Any], ...] = ()
    """Changes to the default DistillSpec chosen by the val tuning (`--tune`) of this scale."""
    max_steps_per_epoch: int | None = None
    num_workers: int = 0
    data_seed: int = 0
    test_seed: int = 1000


SCALES: dict[str, Scale] = {
    "smoke": Scale(
        name="smoke",
        description="pipeline check only (tiny images, one epoch): its numbers mean nothing",
        image_size=64,
        trainval_images=20,
        val_fraction=0.2,
        test_images=8,
        batch_size=4,
        teacher_arch="retinanet_resnet18_fpn",
        teacher_fpn=64,
        student_arch="retinanet_mobilenet_v2_fpn",
        student_fpn=32,
        teacher_epochs=1,
        student_epochs=1,
        lr=1e-3,
        seeds=(0,),
        ablation_seeds=(0,),
        voc_seeds=(0,),
        voc_variants=("hierarchical",),
        ablation_variants=("drop_p2", "drop_context"),
        tuning_seeds=(0,),
        max_steps_per_epoch=2,
    ),
    "cpu": Scale(
        name="cpu",
        description="about three hours on 2 CPU cores (2 workers): 128 px, ResNet-18 FPN teacher",
        image_size=128,
        trainval_images=600,
        val_fraction=0.2,
        test_images=200,
        batch_size=8,
        teacher_arch="retinanet_resnet18_fpn",
        teacher_fpn=128,
        student_arch="retinanet_mobilenet_v2_fpn",
        student_fpn=64,
        teacher_epochs=12,
        # Chosen on val (docs/schedule.md, 3 seeds): the KD gain is the same at 4 and 12
        # epochs (+4.5, +4.8 AP_small), but HKD rises from 7.2 to 11.1 and no KD from 2.7 to
        # 6.4 (one seed of it stalls at 3.1); a fine-tune stage after 4 epochs added +1.0.
        student_epochs=12,
        lr=2e-3,
        seeds=(0, 1, 2),
        ablation_seeds=(0, 1, 2),
        voc_seeds=(0, 1, 2),
        voc_variants=("no_kd", "hierarchical"),
        num_workers=0,
        # At lr 2e-3 the COCO-track teacher collapsed (no detection above the score
        # threshold, AP 0 on val) while the VOC-track one, same images, reached AP 8.7.
        teacher_lr=(("coco", 1e-3),),
        tuning_seeds=(0,),
        # Chosen on val (docs/tuning-levels.md, 3 seeds): HKD on P2-P3 scored AP_small
        # 7.2 +- 0.2 against 6.0 +- 0.3 for all four levels; at 128 px P4 and P5 are 8x8 and
        # 4x4 maps with few small objects on them, and the test ablation of the all-level
        # default had found dropping either raised AP_small.
        distill=(("off_levels", ("p4", "p5")),),
    ),
    "gpu": Scale(
        name="gpu",
        description="one GPU, a few hours: 320 px, ResNet-50 FPN teacher",
        image_size=320,
        trainval_images=4000,
        val_fraction=0.1,
        test_images=600,
        batch_size=16,
        teacher_arch="retinanet_resnet50_fpn",
        teacher_fpn=256,
        student_arch="retinanet_mobilenet_v2_fpn",
        student_fpn=96,
        teacher_epochs=24,
        student_epochs=12,
        lr=1e-3,
        seeds=(0, 1, 2),
        ablation_seeds=(0, 1, 2),
        voc_seeds=(0,),
        voc_variants=MAIN_VARIANTS,
        num_workers=4,
    ),
}


@dataclass(frozen=True)
class StudyRun:
    """One training run of the study: a track (data path), a variant and a seed."""

    track: Track
    group: Group
    variant: str
    seed: int

    @property
    def key(self) -> str:
        """A unique, path-safe name: `coco/hierarchical/seed0`."""
        return f"{self.track}/{self.variant}/seed{self.seed}"


def plan_runs(scale: Scale, *, voc: bool = True, ablation: bool = True) -> list[StudyRun]:
    """Every run of the study in execution order: the teachers, the main ablation, the VOC
    track, then the per-level/per-term ablation (the longest part, so it comes last)."""
    runs = [StudyRun("coco", "teacher", TEACHER, scale.data_seed)]
    if voc:
        runs.append(StudyRun("voc", "teacher", TEACHER, scale.data_seed))
    runs += [StudyRun("coco", "main", v, s) for s in scale.seeds for v in MAIN_VARIANTS]
    if voc:
        runs += [StudyRun("voc", "main", v, s) for s in scale.voc_seeds for v in scale.voc_variants]
    if ablation:
        base = scale_distill(scale)
        full = variant_distill(base, "hierarchical")
        # Dropping a level or term that the scale's default already leaves off is full HKD.
        variants = [v for v in scale.ablation_variants if variant_distill(base, v) != full]
        runs += [StudyRun("coco", "ablation", v, s) for s in scale.ablation_seeds for v in variants]
    return runs


def plan_schedule(scale: Scale) -> list[StudyRun]:
    """The schedule study on val: the teacher, no KD and full HKD at the scale's epochs, then
    both at 3x the epochs and HKD followed by a fine-tune stage, per tuning seed."""
    track = scale.tuning_track
    runs = [StudyRun(track, "teacher", TEACHER, scale.data_seed)]
    runs += [
        StudyRun(track, "tuning", v, s)
        for s in scale.tuning_seeds
        for v in (*TUNING_BASELINES, *SCHEDULES)
    ]
    return runs


def student_schedule(scale: Scale, variant: str) -> tuple[int, int]:
    """(student epochs, fine-tune epochs) of a variant: the scale's, or a schedule candidate's."""
    if variant not in SCHEDULES:
        return scale.student_epochs, 0
    _, factor, finetune = SCHEDULES[variant]
    return scale.student_epochs * factor, finetune * max(1, scale.student_epochs // 2)


def plan_tuning(scale: Scale) -> list[StudyRun]:
    """The val tuning runs: the teacher, then no KD, full HKD and every candidate per seed."""
    track = scale.tuning_track
    runs = [StudyRun(track, "teacher", TEACHER, scale.data_seed)]
    runs += [
        StudyRun(track, "tuning", v, s)
        for s in scale.tuning_seeds
        for v in (*TUNING_BASELINES, *TUNING)
    ]
    return runs


def apply_changes(spec: DistillSpec, changes: dict[str, Any]) -> DistillSpec:
    """`spec` with top-level fields, option groups and per-level term weights replaced.

    `{"lambda_kd": 0.3}`, `{"spatial": {"normalize": False}}`, `{"level_terms":
    {"context": 0.5}}` (that term's weight at every level) and `{"off_levels": ("p4", "p5")}`
    (every term of those levels off) are the four forms.
    """
    update: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "off_levels":
            off = LevelWeights(spatial=0.0, semantic=0.0, context=0.0)
            update["levels"] = {
                name: (off if name in value else weights) for name, weights in spec.levels.items()
            }
        elif key == "level_terms":
            update["levels"] = {
                name: weights.model_copy(update=value) for name, weights in spec.levels.items()
            }
        elif isinstance(value, dict):
            update[key] = getattr(spec, key).model_copy(update=value)
        else:
            update[key] = value
    return DistillSpec.model_validate(spec.model_copy(update=update).model_dump())


def scale_distill(scale: Scale) -> DistillSpec:
    """The default DistillSpec with the scale's tuned changes."""
    return apply_changes(DistillSpec(), dict(scale.distill))


def variant_distill(base: DistillSpec, variant: str) -> DistillSpec:
    """The distillation weights of a main variant, a per-level/per-term ablation or a
    tuning candidate."""
    if variant in SCHEDULES:
        variant = SCHEDULES[variant][0]
    if variant in ABLATION_PRESETS:
        return ablation_distill(base, variant)  # type: ignore[arg-type]
    full = ablation_distill(base, "hierarchical")
    if variant in TUNING:
        return apply_changes(full, TUNING[variant][1])
    dropped = variant.removeprefix("drop_")
    if dropped in LEVEL_NAMES:
        levels = dict(full.levels)
        levels[dropped] = LevelWeights(spatial=0.0, semantic=0.0, context=0.0)
        return full.model_copy(update={"levels": levels})
    if dropped in TERMS:
        levels = {
            name: weights.model_copy(update={dropped: 0.0}) for name, weights in full.levels.items()
        }
        return full.model_copy(update={"levels": levels})
    raise ValueError(f"unknown study variant {variant!r}")


def _data(scale: Scale, path: Path, *, val_split: str) -> DataSpec:
    return DataSpec(
        path=str(path),
        image_size=scale.image_size,
        batch_size=scale.batch_size,
        num_workers=scale.num_workers,
        val_split=val_split,
        augment=AugmentSpec(hflip=True),
    )


def _schedule(
    scale: Scale, epochs: int, lr: float | None = None, *, finetune_epochs: int = 0
) -> ScheduleSpec:
    # Evaluate once, at the end: no checkpoint or setting is chosen by the evaluated split.
    return ScheduleSpec(
        epochs=epochs,
        lr=lr or scale.lr,
        eval_every=max(1, epochs),
        max_steps_per_epoch=scale.max_steps_per_epoch,
        warmup_steps=min(50, 5 * max(1, epochs)),
        finetune_epochs=finetune_epochs,
    )


def _teacher(scale: Scale, checkpoint: Path | None = None) -> TeacherSpec:
    return TeacherSpec(
        arch=scale.teacher_arch,  # type: ignore[arg-type]
        fpn_channels=scale.teacher_fpn,
        checkpoint=str(checkpoint) if checkpoint else None,
    )


def _student(scale: Scale, checkpoint: Path | None = None) -> StudentSpec:
    return StudentSpec(
        arch=scale.student_arch,  # type: ignore[arg-type]
        fpn_channels=scale.student_fpn,
        checkpoint=str(checkpoint) if checkpoint else None,
    )


def teacher_spec(scale: Scale, run: StudyRun, data: Path, *, eval_split: str) -> JobSpec:
    """The job that trains the track's teacher on train and scores it on `eval_split`."""
    return JobSpec(
        kind="teacher",
        name=f"study-{scale.name}-{run.key}",
        data=_data(scale, data, val_split=eval_split),
        teacher=_teacher(scale),
        schedule=_schedule(scale, scale.teacher_epochs, dict(scale.teacher_lr).get(run.track)),
        seed=run.seed,
    )


def student_spec(
    scale: Scale, run: StudyRun, data: Path, teacher_weights: Path, *, eval_split: str
) -> JobSpec:
    """The job that trains one student variant; every variant shares schedule and seed (but
    the schedule study's candidates)."""
    epochs, finetune = student_schedule(scale, run.variant)
    return JobSpec(
        kind="distill",
        name=f"study-{scale.name}-{run.key}",
        data=_data(scale, data, val_split=eval_split),
        teacher=_teacher(scale, teacher_weights),
        student=_student(scale),
        distill=variant_distill(scale_distill(scale), run.variant),
        schedule=_schedule(scale, epochs, finetune_epochs=finetune),
        seed=run.seed,
    )
