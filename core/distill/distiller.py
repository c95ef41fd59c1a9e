"""The hierarchical distiller: frozen teacher + student + adapters -> dict of named losses."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from core.distill.context import context_loss
from core.distill.feature_cache import TeacherFeatureCache
from core.distill.map_statistics import (
    StatisticsPlan,
    context_value,
    map_statistics,
    semantic_value,
    teacher_statistics,
)
from core.distill.masks import LevelMasks, build_level_masks
from core.distill.response import (
    ResponseDistillation,
    box_loss,
    response_loss,
    teacher_foreground,
)
from core.distill.semantic import semantic_loss
from core.distill.spatial import spatial_loss
from core.models.adapters import build_adapters, pair_levels
from core.models.detectors import DenseOutput, Detector
from core.spec import DistillSpec, LevelWeights
from core.structures import Target


@dataclass(frozen=True)
class LevelPlan:
    """One distilled level: the student level, the teacher level teaching it, its weights.

    `resized`: the teacher level has another stride (a P3-P7 teacher teaching P2 from P3); its
    map is bilinearly resized to the student level's size, by `ratio` = teacher / student stride.
    """

    student: str
    teacher: str
    weights: LevelWeights
    needs_adapter: bool  # the spatial term compares channels through a learned adapter
    resized: bool = False
    ratio: float = 1.0

    def describe(self) -> str:
        """The pairing as the run reports it: `p3`, or `p3 (resized x2)`."""
        return f"{self.teacher} (resized x{self.ratio:g})" if self.resized else self.teacher


@dataclass(frozen=True)
class TeacherPass:
    """What the frozen teacher computed for a batch: pyramid features and dense head outputs."""

    features: dict[str, Tensor]
    head: dict[str, Tensor] | None = None


def native_bf16(device: torch.device) -> bool:
    """True if `device` computes in bf16 natively: a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 or AMX (where oneDNN's bf16 convolutions beat float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def teacher_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the teacher's forward for `distill.teacher_precision`, or None
    for float32: `auto` is bf16 where the device computes it natively (`native_bf16`)."""
    if precision == "fp32":
        return None
    if precision == "bf16" or native_bf16(device):
        return torch.bfloat16
    return None


def scale_gradient(value: Tensor, factor: Tensor | float) -> Tensor:
    """`value` unchanged, its gradient multiplied by `factor` (a detached scalar)."""
    detached = value.detach()
    return detached + factor * (value - detached)


def _plain_copy(value: Tensor) -> Tensor:
    """A float32, contiguous (NCHW) copy of an inference-mode tensor, usable by autograd: the
    terms compute in float32, so a bf16 map is converted once here, not once per term."""
    out = torch.empty_like(value, dtype=torch.float32, memory_format=torch.contiguous_format)
    return out.copy_(value)


def feature_scale(features: Tensor) -> Tensor:
    """Detached root mean square of a feature map (N, C, H, W): its scale."""
    values = features.detach().float()
    return torch.linalg.vector_norm(values) / values.numel() ** 0.5


def resize_to(features: Tensor, size: tuple[int, int]) -> Tensor:
    """(N, C, H, W) bilinearly resized to `size` (H, W) when it differs."""
    if tuple(features.shape[-2:]) == tuple(size):
        return features
    return F.interpolate(features, size=size, mode="bilinear", align_corners=False)


def frozen_forward(
    teacher: Detector, images: Tensor, *, dtype: torch.dtype | None, dense: bool = False
) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
    """A frozen teacher's pyramid features (and dense head outputs with `dense`): in inference
    mode, channels-last input, under `dtype` autocast (None: float32); the outputs copied out
    of inference mode (`_plain_copy`) so that the KD terms may save them for backward."""
    with (
        torch.inference_mode(),
        torch.autocast(images.device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
    ):
        images = images.contiguous(memory_format=torch.channels_last)
        if dense:
            features, head = teacher.dense_outputs(images)
        else:
            features, head = teacher.extract_features(images), None
    features = {k: _plain_copy(v) for k, v in features.items()}
    return features, ({k: _plain_copy(v) for k, v in head.items()} if head is not None else None)


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
        self.head_pairs: list[tuple[str, str]] = []  # (teacher level, student level)
        self.feature_cache: TeacherFeatureCache | None = None  # set by the job when allowed
        if teacher is not None:
            self._freeze(teacher)
            self.plans = self._plan_levels(teacher, student)
            self.response = self._plan_response(teacher, student)
            self.head_pairs = self._plan_head(teacher, student)
        wanted = self.adapted_levels()
        if adapters is None:
            adapters = (
                build_adapters(student.output_shape(), teacher.output_shape(), only=wanted)
                if teacher is not None and wanted
                else nn.ModuleDict()
            )
        missing = [level for level in wanted if level not in adapters]
        if missing:
            raise ValueError(f"adapters: none given for distilled level(s) {missing}")
        self.adapters = adapters

    @staticmethod
    def _freeze(teacher: Detector) -> None:
        teacher.eval()
        teacher.requires_grad_(False)
        # Channels-last convolutions are faster on CPUs (oneDNN) and GPUs alike; the
        # teacher's inputs are converted in `frozen_forward`, its outputs back.
        teacher.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def _plan_levels(self, teacher: Detector, student: Detector) -> list[LevelPlan]:
        spec = self.spec
        if spec.lambda_kd == 0.0:
            return []
        student_shape, teacher_shape = student.output_shape(), teacher.output_shape()
        pairs = dict(pair_levels(student_shape, teacher_shape, nearest=True))
        plans = []
        for level, weights in spec.levels.items():
            if not (weights.spatial or weights.semantic or weights.context):
                continue
            if level not in pairs:
                self.skipped_levels.append(level)  # the student has no such level
                continue
            ratio = teacher_shape[pairs[level]].stride / student_shape[level].stride
            plans.append(
                LevelPlan(
                    student=level,
                    teacher=pairs[level],
                    weights=weights,
                    needs_adapter=weights.spatial > 0 and spec.spatial.adapter == "learned",
                    resized=ratio != 1.0,
                    ratio=ratio,
                )
            )
        return sorted(plans, key=lambda p: student_shape[p.student].stride)

    def _plan_response(self, teacher: Detector, student: Detector) -> ResponseDistillation | None:
        spec = self.spec
        if spec.response == 0.0 and spec.box == 0.0:
            return None
        for role, model in (("teacher", teacher), ("student", student)):
            if not model.has_dense_head:
                raise ValueError(
                    f"distill.response: response KD needs one-stage dense logits; the {role} "
                    f"{model.arch} is a two-stage detector (use feature KD only)"
                )
        return ResponseDistillation(
            teacher.anchor_layout(),
            student.anchor_layout(),
            temperature=spec.temperature,
            beta=spec.response_beta,
        )

    def _plan_head(self, teacher: Detector, student: Detector) -> list[tuple[str, str]]:
        if self.spec.head == 0.0:
            return []
        if not teacher.has_dense_head:
            raise ValueError(
                f"distill.head: head KD runs the teacher's dense head; {teacher.arch} has none"
            )
        by_stride = {spec.stride: name for name, spec in student.output_shape().items()}
        teacher_shape = teacher.output_shape()
        lacking = [n for n, s in teacher_shape.items() if s.stride not in by_stride]
        if lacking:
            raise ValueError(
                f"distill.head: the head of {teacher.arch} reads level(s) {lacking} that the "
                f"student {student.arch} does not have (it has {list(by_stride.values())})"
            )
        return [(name, by_stride[spec.stride]) for name, spec in teacher_shape.items()]

    def adapted_levels(self) -> list[str]:
        """Student levels that go through an adapter (spatial term or head KD)."""
        levels = [p.student for p in self.plans if p.needs_adapter]
        levels += [s for _, s in self.head_pairs if s not in levels]
        return levels

    @property
    def pairs(self) -> dict[str, str]:
        """Student level -> the teacher level teaching it, as reported (`p3 (resized x2)`)."""
        return {plan.student: plan.describe() for plan in self.plans}

    @property
    def kd_enabled(self) -> bool:
        """True if any KD term is computed."""
        return bool(self.plans) or self.response is not None or bool(self.head_pairs)

    def train(self, mode: bool = True) -> HierarchicalDistiller:
        """Set the student and adapters to `mode`; the teacher always stays in eval mode."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def trainable_modules(self) -> dict[str, nn.Module]:
        """The modules an optimiser updates: the student and the adapters."""
        return {"student": self.student, "adapters": self.adapters}

    def ramp(self, step: int) -> float:
        """The warm-up factor of every KD term at `step` (linear over `warmup_steps`)."""
        warmup = self.spec.warmup_steps
        return 1.0 if warmup == 0 else min(1.0, (step + 1) / warmup)

    accepts_views = True  # the trainer passes each batch's (image id, flipped) views
    fused_terms = True
    """Semantic and context terms from `core.distill.map_statistics` (few passes over the
    maps); False: the plain one-statistic-at-a-time forms (the reference the tests compare)."""

    def forward(
        self,
        images: Tensor,
        targets: list[Target] | None = None,
        *,
        step: int = 0,
        views: list[tuple[int, bool]] | None = None,
    ) -> dict[str, Tensor]:
        """Named, already weighted losses: det/* from the student and kd/* per term and level.

        `views` ((image id, flipped) per image) lets the teacher-feature cache, when set,
        read the teacher's features back instead of computing them.
        """
        if self.teacher is None or not self.kd_enabled:
            return dict(self.student(images, targets).losses)
        student = self.student_pass(images, targets)
        losses = dict(student.output.losses)
        teacher = self.teacher_pass(images, views)
        ramp = self.ramp(step)
        for name, value in self.kd_terms(images, targets, student, teacher).items():
            losses[name] = ramp * value
        return losses

    def student_pass(self, images: Tensor, targets: list[Target] | None) -> DenseOutput:
        """The student's pass, with head outputs and anchor matches when it is one-stage."""
        if self.student.has_dense_head:
            return self.student.forward_dense(images, targets)
        return DenseOutput(output=self.student(images, targets), head={})

    def teacher_pass(
        self, images: Tensor, views: list[tuple[int, bool]] | None = None
    ) -> TeacherPass:
        """The frozen teacher's features (and head outputs when a term reads them), from the
        feature cache where it is set and the batch's views are known."""
        assert self.teacher is not None
        if self.response is not None or self.head_pairs:
            features, head = self._teacher_forward(images, dense=True)
            return TeacherPass(features=features, head=head)
        if self.feature_cache is not None and views is not None:
            features = self.feature_cache.features(
                images, views, lambda sub: self._teacher_forward(sub, dense=False)[0]
            )
            return TeacherPass(features=features)
        return TeacherPass(features=self._teacher_forward(images, dense=False)[0])

    def precision_gap(self, images: Tensor) -> dict[str, float]:
        """Per teacher level, the relative L2 difference of its features in the configured
        precision from float32 (0 when the teacher runs in float32): what bf16 costs."""
        assert self.teacher is not None
        if teacher_dtype(self.spec.teacher_precision, images.device) is None:
            return {}
        reduced, _ = self._teacher_forward(images, dense=False)
        with torch.inference_mode():
            exact = self.teacher.extract_features(images.float())
        gaps = {}
        for level, want in exact.items():
            error = (reduced[level].float() - want).norm()
            gaps[level] = float(error / want.norm().clamp_min(1e-12))
        return gaps

    def _teacher_forward(
        self, images: Tensor, *, dense: bool
    ) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
        assert self.teacher is not None
        dtype = teacher_dtype(self.spec.teacher_precision, images.device)
        return frozen_forward(self.teacher, images, dtype=dtype, dense=dense)

    def kd_terms(
        self,
        images: Tensor,
        targets: list[Target] | None,
        student: DenseOutput,
        teacher: TeacherPass,
    ) -> dict[str, Tensor]:
        """Every weighted KD term (before the warm-up ramp) from the two passes."""
        spec = self.spec
        terms: dict[str, Tensor] = {}
        features = student.output.features
        masks = self._masks(images, targets, features)
        for plan in self.plans:
            student_map = features[plan.student]
            size = (int(student_map.shape[-2]), int(student_map.shape[-1]))
            teacher_map = resize_to(teacher.features[plan.teacher], size)
            for term, value in self._level_terms(plan, student_map, teacher_map, masks).items():
                terms[f"kd/{term}/{plan.student}"] = spec.lambda_kd * value
        if self.response is not None or self.head_pairs:
            assert teacher.head is not None
            terms.update(self._head_terms(student, teacher.head))
        return terms

    def _head_terms(
        self, student: DenseOutput, teacher_head: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Response, box and head KD, normalised by the foreground anchors."""
        spec = self.spec
        terms: dict[str, Tensor] = {}
        matched = student.positives()
        if self.response is not None:
            if "cls_logits" not in student.head:
                raise ValueError(f"response KD: student {self.student.arch} returned no logits")
            foreground = (
                matched if matched is not None else teacher_foreground(teacher_head["cls_logits"])
            )
            if spec.response > 0:
                terms["kd/response"] = spec.response * self.response(
                    student.head["cls_logits"], teacher_head["cls_logits"], foreground
                )
            if spec.box > 0:
                terms["kd/box"] = spec.box * box_loss(
                    student.head["bbox_regression"], teacher_head["bbox_regression"], foreground
                )
        if self.head_pairs:
            assert self.teacher is not None
            crossed = self.teacher.head_outputs(
                {t: self.adapters[s](student.output.features[s]) for t, s in self.head_pairs}
            )
            same_anchors = self.teacher.anchor_layout() == self.student.anchor_layout()
            foreground = (
                matched
                if matched is not None and same_anchors
                else teacher_foreground(teacher_head["cls_logits"])
            )
            value = response_loss(
                crossed["cls_logits"],
                teacher_head["cls_logits"],
                spec.temperature,
                positives=foreground.sum(),
                beta=spec.response_beta,
            ) + box_loss(crossed["bbox_regression"], teacher_head["bbox_regression"], foreground)
            terms["kd/head"] = spec.head * value
        return terms

    def _masks(
        self,
        images: Tensor,
        targets: list[Target] | None,
        features: dict[str, Tensor],
    ) -> dict[str, LevelMasks] | None:
        spatial = self.spec.spatial
        levels = [p.student for p in self.plans if p.weights.spatial > 0]
        if targets is None or not levels or not spatial.masked:
            return None
        sizes = {
            name: (int(features[name].shape[-2]), int(features[name].shape[-1])) for name in levels
        }
        image_size = (int(images.shape[-2]), int(images.shape[-1]))
        return build_level_masks(targets, image_size, sizes, scale_aware=spatial.scale_aware)

    def _level_terms(
        self,
        plan: LevelPlan,
        student_map: Tensor,
        teacher_map: Tensor,
        masks: dict[str, LevelMasks] | None,
    ) -> dict[str, Tensor]:
        """Weighted spatial / semantic / context terms of one level (zero weights skipped).

        Only the spatial term maps channels (a map fitted on the batch's other images, or a
        learned adapter); semantic and context compare statistics of the student's own map
        that no adapter can produce for it.
        """
        spec, weights = self.spec, plan.weights
        terms: dict[str, Tensor] = {}
        # Every feature term is invariant to the scale of the student's map, so its gradient
        # grows as 1 / scale: at init the small P5 maps would pull hardest. Balancing puts
        # the gradient back in the student's own units, the values unchanged.
        balance = feature_scale(student_map) if spec.balance_levels else 1.0
        if weights.spatial > 0:
            compared = (
                self.adapters[plan.student](student_map) if plan.needs_adapter else student_map
            )
            terms["spatial"] = weights.spatial * spatial_loss(
                compared,
                teacher_map,
                None if masks is None else masks[plan.student],
                fg_weight=spec.spatial.fg_weight,
                bg_weight=spec.spatial.bg_weight,
                normalize=spec.spatial.normalize,
                fitted=not plan.needs_adapter,
            )
        stats = self._statistics_plan(weights)
        terms.update(
            self._fused_terms(stats, weights, student_map, teacher_map)
            if self.fused_terms
            else self._plain_terms(stats, weights, student_map, teacher_map)
        )
        return {name: scale_gradient(value, balance) for name, value in terms.items()}

    @staticmethod
    def _fused_terms(
        stats: StatisticsPlan, weights: LevelWeights, student_map: Tensor, teacher_map: Tensor
    ) -> dict[str, Tensor]:
        """Semantic and context terms from shared map statistics (`map_statistics`)."""
        if stats.empty:
            return {}
        mine, theirs = map_statistics(student_map, stats), teacher_statistics(teacher_map, stats)
        terms: dict[str, Tensor] = {}
        if stats.semantic:
            terms["semantic"] = weights.semantic * semantic_value(mine, theirs)
        if stats.global_context or stats.relation:
            terms["context"] = weights.context * context_value(mine, theirs)
        return terms

    @staticmethod
    def _plain_terms(
        stats: StatisticsPlan, weights: LevelWeights, student_map: Tensor, teacher_map: Tensor
    ) -> dict[str, Tensor]:
        """The same terms by their plain definitions (`semantic.py`, `context.py`)."""
        terms: dict[str, Tensor] = {}
        if stats.semantic:
            terms["semantic"] = weights.semantic * semantic_loss(
                student_map, teacher_map, stats.p, channel=stats.channel
            )
        if stats.global_context or stats.relation:
            terms["context"] = weights.context * context_loss(
                student_map,
                teacher_map,
                use_global=stats.global_context,
                use_relation=stats.relation,
                grid=stats.grid,
            )
        return terms

    def _statistics_plan(self, weights: LevelWeights) -> StatisticsPlan:
        """The semantic and context statistics a level with these weights compares."""
        semantic, context = self.spec.semantic, self.spec.context
        contextual = weights.context > 0
        return StatisticsPlan(
            semantic=weights.semantic > 0,
            channel=semantic.channel,
            p=semantic.p,
            global_context=contextual and context.global_context,
            relation=contextual and context.relation,
            grid=context.relation_grid,
        )
