"""The job specification shared by the CLI, the API and the worker (imports pydantic only)."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

LEVEL_NAMES: tuple[str, ...] = ("p2", "p3", "p4", "p5")
"""Pyramid levels a student exposes: P2 (stride 4, small objects) ... P5 (stride 32)."""

TeacherArch = Literal[
    "retinanet_resnet50_fpn",
    "retinanet_resnet18_fpn",
    "fcos_resnet50_fpn",
    "fcos_resnet18_fpn",
    "torchvision_retinanet_resnet50_fpn",
    "torchvision_retinanet_resnet50_fpn_v2",
    "torchvision_fcos_resnet50_fpn",
    "torchvision_fasterrcnn_resnet50_fpn",
    "torchvision_fasterrcnn_resnet50_fpn_v2",
    "torchvision_fasterrcnn_mobilenet_v3_large_fpn",
]
"""Teacher architectures. `torchvision_*` take a state dict of torchvision's own builder as is."""

StudentArch = Literal[
    "retinanet_mobilenet_v2_fpn",
    "retinanet_shufflenet_v2_fpn",
    "retinanet_mobilenet_v3_fpn",
    "fcos_mobilenet_v2_fpn",
    "fcos_shufflenet_v2_fpn",
    "fcos_mobilenet_v3_fpn",
]

BackboneArch = Literal["resnet50", "resnet18", "mobilenet_v2", "shufflenet_v2", "mobilenet_v3"]
"""Backbone trunks (torchvision ImageNet classifiers) whose weights a team can upload."""

BACKBONE_OF_ARCH: dict[str, BackboneArch] = {
    "retinanet_resnet50_fpn": "resnet50",
    "retinanet_resnet18_fpn": "resnet18",
    "fcos_resnet50_fpn": "resnet50",
    "fcos_resnet18_fpn": "resnet18",
    "torchvision_retinanet_resnet50_fpn": "resnet50",
    "torchvision_retinanet_resnet50_fpn_v2": "resnet50",
    "torchvision_fcos_resnet50_fpn": "resnet50",
    "torchvision_fasterrcnn_resnet50_fpn": "resnet50",
    "torchvision_fasterrcnn_resnet50_fpn_v2": "resnet50",
    "torchvision_fasterrcnn_mobilenet_v3_large_fpn": "mobilenet_v3",
    "retinanet_mobilenet_v2_fpn": "mobilenet_v2",
    "retinanet_shufflenet_v2_fpn": "shufflenet_v2",
    "retinanet_mobilenet_v3_fpn": "mobilenet_v3",
    "fcos_mobilenet_v2_fpn": "mobilenet_v2",
    "fcos_shufflenet_v2_fpn": "shufflenet_v2",
    "fcos_mobilenet_v3_fpn": "mobilenet_v3",
}
"""The backbone trunk of every teacher and student architecture (tests/core/models checks it
against the builders): an uploaded backbone (`backbone_id`) must be of this trunk."""

LARGEST_STRIDES: dict[str, int] = {
    **{arch: 32 for arch in get_args(StudentArch)},  # P2..P5
    **{arch: 32 for arch in get_args(TeacherArch) if not arch.startswith("torchvision_")},
    "torchvision_retinanet_resnet50_fpn": 128,  # P3..P7
    "torchvision_retinanet_resnet50_fpn_v2": 128,
    "torchvision_fcos_resnet50_fpn": 128,
    "torchvision_fasterrcnn_resnet50_fpn": 64,  # P2..P6 (the max-pooled level)
    "torchvision_fasterrcnn_resnet50_fpn_v2": 64,
    "torchvision_fasterrcnn_mobilenet_v3_large_fpn": 64,  # two stride-32 taps, the pooled 64
}
"""Stride of each architecture's coarsest pyramid level (core/models; tests/core/test_spec_strides
checks the table against the models). `data.image_size` must be a multiple of it: otherwise the
last levels round up and their anchors sit at the wrong stride (400 px gives 30 at P5)."""


def valid_image_sizes(size: int, stride: int, *, low: int = 32, high: int = 2048) -> list[int]:
    """The multiples of `stride` nearest to `size` (below and above) within [low, high]."""
    below = size // stride * stride
    return [s for s in (below, below + stride) if low <= s <= high and s != size] or [
        max(stride, low)
    ]


AblationPreset = Literal["no_kd", "response", "pkd", "single_level", "hierarchical"]
ABLATION_PRESETS: tuple[AblationPreset, ...] = (
    "no_kd",
    "response",
    "pkd",
    "single_level",
    "hierarchical",
)


DEFAULT_LAMBDA_KD = 1.0
"""Scale of the feature terms, chosen on val (docs/tuning.md, CPU scale, 2026-12-02): val
AP_small rose with lambda_KD, 3.4 at 1e-3, 3.9 at 1e-2, 5.2 at 0.1 and 6.2 at 1 (no KD 1.1,
teacher 13.4, one seed). At initialisation lambda 1e-3 is what puts the feature terms'
gradient on the student at the detection loss's order (their normalised terms are steep on
a fresh FPN while the focal head starts flat; `distill.diagnose_every` logs the ratio during
training), but a student pulled that gently learns little from the teacher in a short
schedule; at 1 the separate clipping (`schedule.clip_mode`) keeps KD from shrinking the
detection gradient."""

PKD_LAMBDA_KD = 3.0
"""PKD's published weight: 6 x MSE / 2 per FPN level (MMRazor's RetinaNet configs)."""


class _Spec(BaseModel):
    """Base for spec sections: unknown fields are errors, so a typo never disappears."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class AugmentSpec(_Spec):
    """Training-time augmentations; every one keeps the boxes right."""

    hflip: bool = True
    color_jitter: float = Field(0.0, ge=0.0, le=1.0, description="brightness/contrast strength")
    copy_paste: bool = Field(False, description="small-object copy-paste (Kisantal et al.)")
    copy_paste_prob: float = Field(0.5, ge=0.0, le=1.0)
    copy_paste_max_objects: int = Field(4, ge=1, le=32)


class TileSpec(_Spec):
    """Tiled training and sliced evaluation: large images cut into square chips on the fly.

    Training draws, per sample, one chip of the image's grid (core.data.tiles); boxes are
    clipped to the chip and kept when `min_visibility` of their area lies inside it. The
    chip is then letterboxed to `data.image_size` (usually equal to `size`). Evaluation
    runs sliced inference on the full val images with the same grid and merges the boxes.
    """

    size: int = Field(..., ge=32, le=8192, description="chip side in original pixels")
    overlap: float = Field(
        0.2, ge=0.0, lt=1.0, description="share of a chip's side shared with its neighbour"
    )
    min_visibility: float = Field(
        0.5, gt=0.0, le=1.0, description="share of a box's area inside a chip to keep it"
    )
    empty_rate: float = Field(
        0.1, ge=0.0, le=1.0, description="share of training samples drawn from chips without a box"
    )
    full_image: bool = Field(
        True, description="sliced evaluation also predicts the whole image (SAHI's default)"
    )


MAX_MAPPED_CLASSES = 10_000
"""Most names one list of `data.classes` may hold (LVIS has 1,203 categories)."""

CLASSES_LISTED = 50
"""Most dataset class names an unknown-class message lists (the rest are counted)."""

ClassName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""A category name as the dataset spells it (matched exactly)."""

HINTED_NAMES = 10
"""Unknown names that get a "did you mean" hint (the search is linear in the classes)."""

ClassMapProblem = tuple[tuple[str | int, ...], str]
"""(where in `data.classes`, e.g. ("merge", "vehicle"), what is wrong) for one dataset."""


def statistics_class_names(statistics: dict[str, Any] | None) -> list[str]:
    """The class names an uploaded dataset's statistics count (`boxes_per_class`); empty
    when they name none (then the run checks a mapping when it opens the dataset)."""
    return [str(name) for name in (statistics or {}).get("boxes_per_class") or {}]


def class_listing(names: Sequence[str]) -> str:
    """The dataset's class names for a message, at most CLASSES_LISTED of them."""
    shown = ", ".join(repr(n) for n in names[:CLASSES_LISTED])
    more = len(names) - CLASSES_LISTED
    return f"[{shown}" + (f", and {more} more]" if more > 0 else "]")


def _did_you_mean(name: str, known: set[str], index: int) -> str:
    """The hint for the `index`-th unknown name: its closest class, or "" (none, or too many)."""
    if index >= HINTED_NAMES:
        return ""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ClassMapSpec(_Spec):
    """The classes a job trains and is scored on, derived from the dataset's own categories.

    `merge` gathers categories under a new name (`{"vehicle": ["car", "van"]}`), `ignore` drops
    the boxes of categories from training and evaluation (their images stay); every other
    category is kept as it is. Names are the dataset's category names, matched exactly when
    the dataset is opened (core.data.class_map).
    """

    merge: dict[
        ClassName, Annotated[list[ClassName], Field(min_length=1, max_length=MAX_MAPPED_CLASSES)]
    ] = Field(
        default_factory=dict,
        max_length=MAX_MAPPED_CLASSES,
        description="new class name -> the dataset's category names it gathers",
    )
    ignore: list[ClassName] = Field(
        default_factory=list,
        max_length=MAX_MAPPED_CLASSES,
        description="category names whose boxes are dropped from training and evaluation",
    )

    @field_validator("merge")
    @classmethod
    def _each_source_once(cls, merge: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for new, sources in merge.items():
            for source in sources:
                if seen.get(source) == new:
                    raise ValueError(f"{new!r} lists {source!r} twice")
                if source in seen:
                    raise ValueError(
                        f"{source!r} is listed under both {seen[source]!r} and {new!r}; a "
                        "class merges into one new class"
                    )
                seen[source] = new
        for source, new in seen.items():
            if source in merge and source != new:
                raise ValueError(
                    f"{source!r} is a new class and merged into {new!r} as well; merge its "
                    f"sources into {new!r} directly"
                )
        return merge

    @field_validator("ignore")
    @classmethod
    def _each_ignored_once(cls, ignore: list[str]) -> list[str]:
        seen: set[str] = set()
        twice: set[str] = set()
        for name in ignore:
            (twice if name in seen else seen).add(name)
        if twice:
            raise ValueError(f"{sorted(twice)} listed more than once")
        return ignore

    @model_validator(mode="after")
    def _merged_or_ignored(self) -> ClassMapSpec:
        if not self.merge and not self.ignore:
            raise ValueError(
                "classes needs 'merge' or 'ignore'; leave 'classes' out to keep the "
                "dataset's classes as they are"
            )
        merged = set(self.merge) | set(self.sources())
        both = [name for name in self.ignore if name in merged]
        if both:
            raise ValueError(
                f"ignore: {both} also appear in merge; a class is either merged or ignored"
            )
        return self

    def sources(self) -> dict[str, str]:
        """Dataset category name -> the new name `merge` gives it."""
        return {source: new for new, names in self.merge.items() for source in names}

    def problems(self, names: Sequence[str]) -> list[ClassMapProblem]:
        """What does not fit a dataset whose categories are `names`: a merged or ignored name
        it lacks, a new name that is one of its classes kept as it is, or no class left.

        Messages do not list the dataset's classes; callers add `class_listing(names)`.
        """
        known = set(names)
        missing: list[tuple[tuple[str | int, ...], str]] = [
            (("merge", new), name)
            for new, listed in self.merge.items()
            for name in listed
            if name not in known
        ]
        missing += [
            (("ignore", i), name) for i, name in enumerate(self.ignore) if name not in known
        ]
        found = [
            (loc, f"the dataset has no class {name!r}{_did_you_mean(name, known, index)}")
            for index, (loc, name) in enumerate(missing)
        ]
        sources = self.sources()
        found += [
            (
                ("merge", new),
                f"{new!r} is already a class of the dataset; list it among the classes merged "
                "into it, or choose another name",
            )
            for new in self.merge
            if new in known and new not in sources
        ]
        if not found and not self.mapped_names(names):
            found.append((("ignore",), "no class of the dataset would be left"))
        return found

    def mapped_names(self, names: Sequence[str]) -> list[str]:
        """The class names after the mapping, in the order of `names` (the dataset's); a new
        class stands where its first source does."""
        sources, ignored = self.sources(), set(self.ignore)
        out: dict[str, None] = {}
        for name in names:
            if name not in ignored:
                out.setdefault(sources.get(name, name), None)
        return list(out)


class DataSpec(_Spec):
    """Where the dataset is and how images are fed to the models."""

    path: str | None = Field(None, description="folder or .zip/.tar archive (local runs)")
    dataset_id: int | None = Field(None, description="a platform dataset; the worker sets path")
    format: Literal["auto", "coco", "voc"] = "auto"
    train_split: str = "train"
    val_split: str = "val"
    image_size: int = Field(160, ge=32, le=2048, description="square letterbox side, pixels")
    batch_size: int = Field(8, ge=1, le=1024)
    num_workers: int = Field(0, ge=0, le=64)
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    max_train_images: int | None = Field(None, ge=1, description="cap for quick runs")
    max_val_images: int | None = Field(None, ge=1)
    voc_coordinates: Literal["auto", "one_based", "zero_based"] = Field(
        "auto",
        description="VOC <bndbox> convention: one_based (the VOC devkit's: pixels 1..W, "
        "inclusive), zero_based (corners in COCO's pixel coordinates, 0..W); auto: zero_based "
        "when any box has xmin or ymin 0, else one_based",
    )
    tile: TileSpec | None = Field(
        None, description="train on chips of the full images, evaluate sliced (large images)"
    )
    classes: ClassMapSpec | None = Field(
        None,
        description="merge or ignore the dataset's classes for this job (the upload is kept)",
    )

    @model_validator(mode="after")
    def _needs_a_source(self) -> DataSpec:
        if self.path is None and self.dataset_id is None:
            raise ValueError("data needs either 'path' or 'dataset_id'")
        return self


class TeacherSpec(_Spec):
    """The frozen teacher: an architecture and (for distillation) its trained weights."""

    arch: TeacherArch = "retinanet_resnet50_fpn"
    checkpoint: str | None = Field(None, description="safetensors or torch state dict path")
    teacher_id: int | None = Field(None, description="a platform teacher; the worker sets path")
    fpn_channels: int = Field(256, ge=8, le=1024)
    pretrained_backbone: str | None = Field(
        None, description="local torchvision ImageNet weights file for the backbone"
    )
    backbone_id: int | None = Field(
        None, description="uploaded backbone weights (platform); the worker sets the path"
    )
    score_threshold: float = Field(
        0.05, ge=0.0, lt=1.0, description="detections scoring below it are dropped (eval, export)"
    )
    detections_per_image: int = Field(
        100, ge=1, le=10_000, description="detection cap per image (raise it for dense scenes)"
    )


class StudentSpec(_Spec):
    """The compact student detector."""

    arch: StudentArch = "retinanet_mobilenet_v2_fpn"
    fpn_channels: int = Field(96, ge=8, le=1024)
    pretrained_backbone: str | None = Field(
        None, description="local torchvision ImageNet weights file for the backbone"
    )
    backbone_id: int | None = Field(
        None, description="uploaded backbone weights (platform); the worker sets the path"
    )
    checkpoint: str | None = Field(None, description="student weights (evaluate jobs)")
    score_threshold: float = Field(
        0.05, ge=0.0, lt=1.0, description="detections scoring below it are dropped (eval, export)"
    )
    detections_per_image: int = Field(
        100, ge=1, le=10_000, description="detection cap per image (raise it for dense scenes)"
    )


class LevelWeights(_Spec):
    """Weights of the three feature terms at one pyramid level (alpha_i, beta_i, gamma_i)."""

    spatial: float = Field(1.0, ge=0.0, description="alpha_i")
    semantic: float = Field(1.0, ge=0.0, description="beta_i")
    context: float = Field(1.0, ge=0.0, description="gamma_i")


def _all_levels() -> dict[str, LevelWeights]:
    return {name: LevelWeights() for name in LEVEL_NAMES}


class SpatialOptions(_Spec):
    """Options of the spatial (feature imitation) term."""

    fg_weight: float = Field(1.0, ge=0.0)
    bg_weight: float = Field(0.5, ge=0.0)
    adapter: Literal["fitted", "learned"] = Field(
        "fitted",
        description="fitted: the affine least-squares map that fits the batch best (no adapter "
        "can absorb the term); learned: a trained 1x1 conv (FitNets / PKD)",
    )
    masked: bool = Field(
        True, description="fg/bg means from the boxes; off: the mean over every cell (PKD)"
    )
    scale_aware: bool = Field(
        True, description="each object weighs 1 per level, spread over its cells (FGD)"
    )
    normalize: bool = Field(
        True, description="each channel standardised over batch and positions (PKD)"
    )


class SemanticOptions(_Spec):
    """Options of the semantic term (on the student's own features, before any adapter)."""

    p: float = Field(2.0, gt=0.0, description="exponent of |F|^p in the attention map")
    channel: bool = Field(
        False,
        description="also match image-to-image correlations of channel attention (needs "
        "batches of 2+; its gradient at init is ~25x the attention map's, so off by default)",
    )


class ContextOptions(_Spec):
    """Options of the contextual term (on the student's own features, before any adapter)."""

    global_context: bool = Field(True, description="affinity of each position to the context")
    relation: bool = Field(True, description="similarities between grid regions")
    relation_grid: int = Field(4, ge=1, le=32, description="regions per side for relation KD")


class DistillSpec(_Spec):
    """Hierarchical KD weights.

    L = L_det + lambda_kd * sum_i (alpha_i L_s + beta_i L_m + gamma_i L_c)
        + response * L_resp + box * L_box + head * L_head,
    every KD part ramped in over `warmup_steps`. The response, box and head weights are
    absolute (like a loss weight of MMDetection), not scaled by lambda_kd.
    """

    lambda_kd: float = Field(
        DEFAULT_LAMBDA_KD,
        ge=0.0,
        description="scale of the feature terms: at init their gradient on the student is "
        "of the order of the detection loss's",
    )
    levels: dict[str, LevelWeights] = Field(default_factory=_all_levels)
    response: float = Field(0.0, ge=0.0, description="weight of response (logit) KD")
    response_beta: float = Field(
        1.0, ge=0.0, description="quality-focal exponent of response KD (CrossKD: 1; 0: off)"
    )
    box: float = Field(0.0, ge=0.0, description="weight of box-regression imitation (L1)")
    head: float = Field(
        0.0, ge=0.0, description="weight of head KD: student features through the teacher head"
    )
    temperature: float = Field(2.0, gt=0.0)
    spatial: SpatialOptions = Field(default_factory=SpatialOptions)
    semantic: SemanticOptions = Field(default_factory=SemanticOptions)
    context: ContextOptions = Field(default_factory=ContextOptions)
    balance_levels: bool = Field(
        True,
        description="scale each level's feature-term gradient by the RMS of the student's map "
        "(values unchanged): scale-free terms otherwise pull hardest where it is smallest",
    )
    warmup_steps: int = Field(0, ge=0, description="ramp the KD terms in over these steps")
    diagnose_every: int = Field(
        50, ge=0, description="log each KD term's gradient norm every N steps (0: off)"
    )
    teacher_precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="the frozen teacher's forward: auto is bf16 where the device computes it "
        "natively (a GPU that supports it, a CPU with AVX-512 BF16 or AMX) and fp32 elsewhere",
    )
    teacher_cache: bool = Field(
        True,
        description="compute the teacher's features once per (image, flip) and reuse them "
        "when the augmentation allows (flip only; feature terms only): fp16, in memory",
    )
    teacher_cache_mb: int = Field(
        2048, ge=0, le=1 << 20, description="memory cap of the teacher-feature cache, MiB"
    )

    @model_validator(mode="after")
    def _known_levels(self) -> DistillSpec:
        unknown = sorted(set(self.levels) - set(LEVEL_NAMES))
        if unknown:
            raise ValueError(f"unknown level(s) {unknown}; levels are {list(LEVEL_NAMES)}")
        return self

    @property
    def feature_kd_enabled(self) -> bool:
        """True if any feature term at any level has a non-zero weight."""
        if self.lambda_kd == 0.0:
            return False
        return any(w.spatial or w.semantic or w.context for w in self.levels.values())

    @property
    def head_kd_enabled(self) -> bool:
        """True if any term reads the teacher's head (response, box or head KD)."""
        return self.response > 0.0 or self.box > 0.0 or self.head > 0.0

    @property
    def enabled(self) -> bool:
        """True if distillation contributes anything to the loss."""
        return self.feature_kd_enabled or self.head_kd_enabled


class ScheduleSpec(_Spec):
    """Optimisation schedule for one training stage (and the optional fine-tune)."""

    epochs: int = Field(12, ge=0, le=10_000)
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    lr_schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_steps: int = Field(50, ge=0)
    grad_clip: float | None = Field(10.0, gt=0.0)
    clip_mode: Literal["separate", "joint"] = Field(
        "separate",
        description="separate: the detection and the KD gradients are clipped each on its own "
        "(KD never shrinks the detection gradient); joint: one norm over their sum",
    )
    amp: bool = Field(True, description="mixed precision on CUDA; ignored on CPU")
    channels_last: bool = Field(True, description="on CUDA only")
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap for quick runs")
    eval_every: int = Field(1, ge=1, description="evaluate every N epochs and at the end")
    log_every: int = Field(
        10,
        ge=1,
        description="write loss curves (and check them for NaN on a GPU) every N steps: "
        "reading a loss waits for the device",
    )
    finetune_epochs: int = Field(0, ge=0, description="third stage: label-only fine-tune")
    finetune_lr: float | None = Field(None, gt=0.0)
    device: Literal["auto", "cpu", "cuda"] = "auto"


HASH_SKIPS_NONE: tuple[tuple[str, str], ...] = (("data", "classes"),)
"""(section, field) added after hashes were stored: out of `JobSpec.spec_hash` while None."""


class JobSpec(_Spec):
    """One job: train a teacher, distil a student, or evaluate a model."""

    kind: Literal["teacher", "distill", "evaluate"]
    name: str | None = Field(None, max_length=200)
    data: DataSpec
    teacher: TeacherSpec | None = None
    student: StudentSpec | None = None
    distill: DistillSpec = Field(default_factory=DistillSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _parts_for_kind(self) -> JobSpec:
        if self.kind == "teacher" and self.teacher is None:
            raise ValueError("a 'teacher' job needs the 'teacher' section")
        if self.kind == "distill":
            if self.teacher is None or self.student is None:
                raise ValueError("a 'distill' job needs both 'teacher' and 'student' sections")
            if self.distill.enabled and not (self.teacher.checkpoint or self.teacher.teacher_id):
                raise ValueError("teacher: distillation needs 'checkpoint' or 'teacher_id'")
        if self.kind == "evaluate" and self.student is None and self.teacher is None:
            raise ValueError("an 'evaluate' job needs a 'student' or a 'teacher' section")
        return self

    @model_validator(mode="after")
    def _image_size_fits_strides(self) -> JobSpec:
        models: list[tuple[str, TeacherSpec | StudentSpec | None]] = [("teacher", self.teacher)]
        if self.kind != "teacher":
            models.append(("student", self.student))
        strides = [
            (LARGEST_STRIDES.get(m.arch, 1), name, m.arch) for name, m in models if m is not None
        ]
        if not strides:
            return self
        stride, section, arch = max(strides)
        sizes_to_check = [("data.image_size", self.data.image_size)]
        if self.data.tile is not None:
            sizes_to_check.append(("data.tile.size", self.data.tile.size))
        for field, size in sizes_to_check:
            if size % stride:
                cells = -(-size // stride)
                sizes = " or ".join(str(s) for s in valid_image_sizes(size, stride, high=8192))
                raise ValueError(
                    f"{field}: {size} px is not a multiple of {stride}, the largest stride "
                    f"of {section}.arch {arch} (its coarsest level would be {cells} cell(s) at "
                    f"a stride of {size // cells} px); use {sizes}"
                )
        return self

    def spec_hash(self) -> str:
        """A stable short hash of the spec, for provenance.

        Fields of HASH_SKIPS_NONE are left out while None, so that a spec that does not use
        them keeps the hash it had before they existed (stored jobs, the study's caches).
        """
        dumped = self.model_dump(mode="json")
        for section, name in HASH_SKIPS_NONE:
            part = dumped.get(section)
            if isinstance(part, dict) and part.get(name, 0) is None:
                del part[name]
        payload = json.dumps(dumped, sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


def ablation_distill(base: DistillSpec, preset: AblationPreset) -> DistillSpec:
    """The DistillSpec of one of the ablation variants, derived from `base`.

    `response`: response KD alone (weight 1 unless `base` sets one; `base.box` kept);
    `pkd`: PKD's recipe, Pearson-correlation feature imitation through a learned adapter on
    every cell of every level at PKD's weight, without level balancing; `single_level`: the
    feature terms at P3 only; `hierarchical`: the feature terms at every level (and
    `base.head`).
    """
    zero = LevelWeights(spatial=0.0, semantic=0.0, context=0.0)
    no_head = {"response": 0.0, "box": 0.0, "head": 0.0}
    lambda_kd = base.lambda_kd or DEFAULT_LAMBDA_KD
    if preset == "no_kd":
        levels = {n: zero for n in LEVEL_NAMES}
        return base.model_copy(update={"levels": levels, "lambda_kd": 0.0, **no_head})
    if preset == "response":
        weight = base.response if base.response > 0 else 1.0
        return base.model_copy(
            update={
                "levels": {n: zero for n in LEVEL_NAMES},
                **no_head,
                "response": weight,
                "box": base.box,
                "lambda_kd": lambda_kd,
            }
        )
    if preset == "pkd":
        levels = {n: LevelWeights(spatial=1.0, semantic=0.0, context=0.0) for n in LEVEL_NAMES}
        spatial = base.spatial.model_copy(
            update={"adapter": "learned", "masked": False, "normalize": True}
        )
        update = {"levels": levels, "spatial": spatial, "balance_levels": False}
        return base.model_copy(update={**update, "lambda_kd": PKD_LAMBDA_KD, **no_head})
    if preset == "single_level":
        p3 = base.levels.get("p3", LevelWeights())
        if not (p3.spatial or p3.semantic or p3.context):
            p3 = LevelWeights()
        levels = {n: (p3 if n == "p3" else zero) for n in LEVEL_NAMES}
        return base.model_copy(update={"levels": levels, "lambda_kd": lambda_kd, **no_head})
    if preset == "hierarchical":
        levels = {n: base.levels.get(n, LevelWeights()) for n in LEVEL_NAMES}
        if not any(w.spatial or w.semantic or w.context for w in levels.values()):
            levels = _all_levels()
        return base.model_copy(
            update={"levels": levels, "lambda_kd": lambda_kd, **no_head, "head": base.head}
        )
    raise ValueError(f"unknown ablation preset {preset!r}")


def spec_from_mapping(data: dict[str, Any]) -> JobSpec:
    """Validate a parsed YAML/JSON mapping into a JobSpec (raises pydantic.ValidationError)."""
    return JobSpec.model_validate(data)
