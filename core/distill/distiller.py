"""The hierarchical distiller: frozen teacher + student + adapters -> dict of named losses."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.distill.context import context_loss
from core.distill.masks import LevelMasks, build_level_masks
from core.distill.response import ResponseDistillation
from core.distill.semantic import attention_loss, channel_attention_loss
from core.distill.spatial import spatial_loss
from core.models.adapters import build_adapters, pair_levels
from core.models.detectors import Detector
from core.spec import DistillSpec, LevelWeights
from core.structures import Target


@dataclass(frozen=True)
class LevelPlan:
    """One distilled level: the student level, its teacher level and non-zero term weights."""

    student: str
    teacher: str
    weights: LevelWeights
    needs_adapter: bool  # a term compares channels: spatial, context or channel attention


class HierarchicalDistiller(nn.Module):
    """Student detection losses plus weighted per-level KD terms from a frozen teacher.

    With `teacher=None`, or every weight zero, it is plain detection training of the student:
    nothing else is built, run, or drawn from the random stream.
    """

    def __init__(
        self,
        teacher: Detector | None,
        student: Detector,
        adapters: nn.ModuleDict | None = None,
        weights: DistillSpec | None = None,
    ) -> None:
        super().__init__()
        self.student = student
        self.spec = weights if weights is not None else DistillSpec.model_validate({})
        self.teacher = teacher
        self.plans: list[LevelPlan] = []
        self.skipped_levels: list[str] = []
        self.response: ResponseDistillation | None = None
        if teacher is not None:
            self._freeze(teacher)
            self.plans = self._plan_levels(teacher, student)
            self.response = self._plan_response(teacher, student)
        if adapters is None:
            adapters = (
                build_adapters(
                    student.output_shape(),
                    teacher.output_shape(),
                    only=[p.student for p in self.plans if p.needs_adapter],
                )
                if teacher is not None
                else nn.ModuleDict()
            )
        missing = [p.student for p in self.plans if p.needs_adapter and p.student not in adapters]
        if missing:
            raise ValueError(f"adapters: none given for distilled level(s) {missing}")
        self.adapters = adapters

    @staticmethod
    def _freeze(teacher: Detector) -> None:
        teacher.eval()
        teacher.requires_grad_(False)

    def _plan_levels(self, teacher: Detector, student: Detector) -> list[LevelPlan]:
        spec = self.spec
        if spec.lambda_kd == 0.0:
            return []
        pairs = dict(pair_levels(student.output_shape(), teacher.output_shape()))
        plans = []
        for level, weights in spec.levels.items():
            if not (weights.spatial or weights.semantic or weights.context):
                continue
            if level not in pairs:
                self.skipped_levels.append(level)
                continue
            channels_compared = (
                weights.spatial > 0
                or (weights.context > 0 and (spec.context.global_context or spec.context.relation))
                or (weights.semantic > 0 and spec.semantic.channel)
            )
            plans.append(
                LevelPlan(
                    student=level,
                    teacher=pairs[level],
                    weights=weights,
                    needs_adapter=channels_compared,
                )
            )
        if self.skipped_levels:
            warnings.warn(
                f"feature KD skips level(s) {self.skipped_levels}: teacher {teacher.arch} has "
                f"no level of the same stride (it has {list(teacher.output_shape())})",
                stacklevel=3,
            )
        return sorted(plans, key=lambda p: student.output_shape()[p.student].stride)

    def _plan_response(self, teacher: Detector, student: Detector) -> ResponseDistillation | None:
        spec = self.spec
        if spec.lambda_kd == 0.0 or spec.response == 0.0:
            return None
        for role, model in (("teacher", teacher), ("student", student)):
            if not model.has_dense_head:
                raise ValueError(
                    f"distill.response: response KD needs one-stage dense logits; the {role} "
                    f"{model.arch} is a two-stage detector (use feature KD only)"
                )
        return ResponseDistillation(
            teacher.anchor_layout(), student.anchor_layout(), temperature=spec.temperature
        )

    @property
    def kd_enabled(self) -> bool:
        """True if any KD term is computed."""
        return bool(self.plans) or self.response is not None

    def train(self, mode: bool = True) -> HierarchicalDistiller:
        """Set the student and adapters to `mode`; the teacher always stays in eval mode."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def trainable_modules(self) -> dict[str, nn.Module]:
        """The modules an optimiser updates: the student and the adapters."""
        return {"student": self.student, "adapters": self.adapters}

    def kd_scale(self, step: int) -> float:
        """lambda_KD at `step`, ramped linearly over the spec's warm-up steps."""
        warmup = self.spec.warmup_steps
        ramp = 1.0 if warmup == 0 else min(1.0, (step + 1) / warmup)
        return self.spec.lambda_kd * ramp

    def forward(
        self, images: Tensor, targets: list[Target] | None = None, *, step: int = 0
    ) -> dict[str, Tensor]:
        """Named, already weighted losses: det/* from the student and kd/* per term and level."""
        output = self.student(images, targets)
        losses = dict(output.losses)
        if self.teacher is None or not self.kd_enabled:
            return losses
        teacher_logits: Tensor | None = None
        with torch.no_grad():
            if self.response is not None:
                teacher_features, heads = self.teacher.dense_outputs(images)
                teacher_logits = heads["cls_logits"]
            else:
                teacher_features = self.teacher.extract_features(images)
        scale = self.kd_scale(step)
        masks = self._masks(images, targets, teacher_features)
        for plan in self.plans:
            student_map = output.features[plan.student]
            teacher_map = teacher_features[plan.teacher]
            for term, value in self._level_terms(plan, student_map, teacher_map, masks).items():
                losses[f"kd/{term}/{plan.student}"] = scale * value
        if self.response is not None and teacher_logits is not None:
            if output.cls_logits is None:
                raise ValueError(f"response KD: student {self.student.arch} returned no logits")
            losses["kd/response"] = (
                scale * self.spec.response * self.response(output.cls_logits, teacher_logits)
            )
        return losses

    def _masks(
        self,
        images: Tensor,
        targets: list[Target] | None,
        teacher_features: dict[str, Tensor],
    ) -> dict[str, LevelMasks] | None:
        spatial_levels = [p.teacher for p in self.plans if p.weights.spatial > 0]
        if targets is None or not spatial_levels:
            return None
        sizes = {
            name: (int(teacher_features[name].shape[-2]), int(teacher_features[name].shape[-1]))
            for name in spatial_levels
        }
        image_size = (int(images.shape[-2]), int(images.shape[-1]))
        return build_level_masks(
            targets, image_size, sizes, scale_aware=self.spec.spatial.scale_aware
        )

    def _level_terms(
        self,
        plan: LevelPlan,
        student_map: Tensor,
        teacher_map: Tensor,
        masks: dict[str, LevelMasks] | None,
    ) -> dict[str, Tensor]:
        """Weighted spatial / semantic / context terms of one level (zero weights skipped)."""
        spec, weights = self.spec, plan.weights
        size = (int(teacher_map.shape[-2]), int(teacher_map.shape[-1]))
        adapted = self.adapters[plan.student](student_map, size) if plan.needs_adapter else None
        terms: dict[str, Tensor] = {}
        if weights.spatial > 0 and adapted is not None:
            terms["spatial"] = weights.spatial * spatial_loss(
                adapted,
                teacher_map,
                None if masks is None else masks[plan.teacher],
                fg_weight=spec.spatial.fg_weight,
                bg_weight=spec.spatial.bg_weight,
                normalize=spec.spatial.normalize,
            )
        if weights.semantic > 0:
            semantic = attention_loss(student_map, teacher_map, spec.semantic.p)
            if spec.semantic.channel and adapted is not None:
                semantic = semantic + channel_attention_loss(adapted, teacher_map, spec.semantic.p)
            terms["semantic"] = weights.semantic * semantic
        context = spec.context
        if (
            weights.context > 0
            and adapted is not None
            and (context.global_context or context.relation)
        ):
            terms["context"] = weights.context * context_loss(
                adapted,
                teacher_map,
                use_global=context.global_context,
                use_relation=context.relation,
                grid=context.relation_grid,
            )
        return terms
