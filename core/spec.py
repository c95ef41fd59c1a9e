"""The job specification shared by the CLI, the API and the worker (imports pydantic only)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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

AblationPreset = Literal["no_kd", "response", "single_level", "hierarchical"]
ABLATION_PRESETS: tuple[AblationPreset, ...] = (
    "no_kd",
    "response",
    "single_level",
    "hierarchical",
)


DEFAULT_LAMBDA_KD = 0.1
"""At initialisation the summed KD terms are about ten times the detection loss."""


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


class StudentSpec(_Spec):
    """The compact student detector."""

    arch: StudentArch = "retinanet_mobilenet_v2_fpn"
    fpn_channels: int = Field(96, ge=8, le=1024)
    pretrained_backbone: str | None = Field(
        None, description="local torchvision ImageNet weights file for the backbone"
    )
    checkpoint: str | None = Field(None, description="student weights (evaluate jobs)")


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
    scale_aware: bool = Field(True, description="weight small boxes up (inverse area)")
    normalize: bool = Field(True, description="per-channel normalisation before L2 (PKD)")


class SemanticOptions(_Spec):
    """Options of the semantic (attention transfer) term."""

    p: float = Field(2.0, gt=0.0, description="exponent of |F|^p in the attention map")
    channel: bool = Field(True, description="also match channel attention")


class ContextOptions(_Spec):
    """Options of the contextual term."""

    global_context: bool = True
    relation: bool = True
    relation_grid: int = Field(4, ge=1, le=32, description="regions per side for relation KD")


class DistillSpec(_Spec):
    """Hierarchical KD weights: L = L_det + lambda_kd * sum_i (alpha L_s + beta L_m + gamma L_c)."""

    lambda_kd: float = Field(
        DEFAULT_LAMBDA_KD,
        ge=0.0,
        description="KD terms start about 10x the detection loss; 0.1 balances them",
    )
    levels: dict[str, LevelWeights] = Field(default_factory=_all_levels)
    response: float = Field(0.0, ge=0.0, description="weight of response (logit) KD")
    temperature: float = Field(2.0, gt=0.0)
    spatial: SpatialOptions = Field(default_factory=SpatialOptions)
    semantic: SemanticOptions = Field(default_factory=SemanticOptions)
    context: ContextOptions = Field(default_factory=ContextOptions)
    warmup_steps: int = Field(0, ge=0, description="ramp lambda_kd linearly over these steps")

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
    def enabled(self) -> bool:
        """True if distillation contributes anything to the loss."""
        return self.lambda_kd > 0.0 and (self.feature_kd_enabled or self.response > 0.0)


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
    amp: bool = Field(True, description="mixed precision on CUDA; ignored on CPU")
    channels_last: bool = Field(True, description="on CUDA only")
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap for quick runs")
    eval_every: int = Field(1, ge=1, description="evaluate every N epochs and at the end")
    finetune_epochs: int = Field(0, ge=0, description="third stage: label-only fine-tune")
    finetune_lr: float | None = Field(None, gt=0.0)
    device: Literal["auto", "cpu", "cuda"] = "auto"


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

    def spec_hash(self) -> str:
        """A stable short hash of the spec, for provenance."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


def ablation_distill(base: DistillSpec, preset: AblationPreset) -> DistillSpec:
    """The DistillSpec of one of the paper's ablation variants, derived from `base`."""
    zero = LevelWeights(spatial=0.0, semantic=0.0, context=0.0)
    if preset == "no_kd":
        return base.model_copy(
            update={"levels": {n: zero for n in LEVEL_NAMES}, "response": 0.0, "lambda_kd": 0.0}
        )
    if preset == "response":
        weight = base.response if base.response > 0 else 1.0
        return base.model_copy(
            update={
                "levels": {n: zero for n in LEVEL_NAMES},
                "response": weight,
                "lambda_kd": base.lambda_kd or DEFAULT_LAMBDA_KD,
            }
        )
    if preset == "single_level":
        p3 = base.levels.get("p3", LevelWeights())
        if not (p3.spatial or p3.semantic or p3.context):
            p3 = LevelWeights()
        levels = {n: (p3 if n == "p3" else zero) for n in LEVEL_NAMES}
        lambda_kd = base.lambda_kd or DEFAULT_LAMBDA_KD
        return base.model_copy(update={"levels": levels, "response": 0.0, "lambda_kd": lambda_kd})
    if preset == "hierarchical":
        levels = {n: base.levels.get(n, LevelWeights()) for n in LEVEL_NAMES}
        if not any(w.spatial or w.semantic or w.context for w in levels.values()):
            levels = _all_levels()
        lambda_kd = base.lambda_kd or DEFAULT_LAMBDA_KD
        return base.model_copy(update={"levels": levels, "response": 0.0, "lambda_kd": lambda_kd})
    raise ValueError(f"unknown ablation preset {preset!r}")


def spec_from_mapping(data: dict[str, Any]) -> JobSpec:
    """Validate a parsed YAML/JSON mapping into a JobSpec (raises pydantic.ValidationError)."""
    return JobSpec.model_validate(data)
