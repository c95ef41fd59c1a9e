"""Detectors on torchvision building blocks, and the keyword-only teacher / student builders."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection._utils import BoxLinearCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import (
    FCOSClassificationHead,
    FCOSHead,
    FCOSRegressionHead,
)
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import box_iou

from core.models.backbones import (
    LEVEL_STRIDES,
    BackboneName,
    build_backbone,
    load_backbone_weights,
)
from core.spec import BACKBONE_OF_ARCH
from core.structures import Detections, DetectorOutput, LevelSpec, Target

Family = Literal["retinanet", "fcos", "fasterrcnn"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Our own architectures: arch -> (head family, backbone trunk).
TEACHER_ARCHS: dict[str, tuple[Family, BackboneName]] = {
    "retinanet_resnet50_fpn": ("retinanet", "resnet50"),
    "retinanet_resnet18_fpn": ("retinanet", "resnet18"),
    "fcos_resnet50_fpn": ("fcos", "resnet50"),
    "fcos_resnet18_fpn": ("fcos", "resnet18"),
}
STUDENT_ARCHS: dict[str, tuple[Family, BackboneName]] = {
    "retinanet_mobilenet_v2_fpn": ("retinanet", "mobilenet_v2"),
    "retinanet_shufflenet_v2_fpn": ("retinanet", "shufflenet_v2"),
    "retinanet_mobilenet_v3_fpn": ("retinanet", "mobilenet_v3"),
    "fcos_mobilenet_v2_fpn": ("fcos", "mobilenet_v2"),
    "fcos_shufflenet_v2_fpn": ("fcos", "shufflenet_v2"),
    "fcos_mobilenet_v3_fpn": ("fcos", "mobilenet_v3"),
}
# torchvision's own builders, so that a user's torchvision state dict loads as is.
TORCHVISION_ARCHS: dict[str, Family] = {
    "torchvision_retinanet_resnet50_fpn": "retinanet",
    "torchvision_retinanet_resnet50_fpn_v2": "retinanet",
    "torchvision_fcos_resnet50_fpn": "fcos",
    "torchvision_fasterrcnn_resnet50_fpn": "fasterrcnn",
    "torchvision_fasterrcnn_resnet50_fpn_v2": "fasterrcnn",
    "torchvision_fasterrcnn_mobilenet_v3_large_fpn": "fasterrcnn",
}
# Level names of torchvision's FPN outputs, in their order (their strides are fixed by design).
TORCHVISION_LEVELS: dict[Family, tuple[str, ...]] = {
    "retinanet": ("p3", "p4", "p5", "p6", "p7"),
    "fcos": ("p3", "p4", "p5", "p6", "p7"),
    "fasterrcnn": ("p2", "p3", "p4", "p5", "p6"),
}
# torchvision's MobileNetV3 FPN taps two stride-32 layers (block 13 and the last 1x1 conv) and
# max-pools a stride-64 level: the features by name keep the later tap as p5, as the RPN sees
# all three. Measured: at 64 px the maps are 2x2, 2x2 and 1x1.
TORCHVISION_ARCH_LEVELS: dict[str, tuple[str, ...]] = {
    "torchvision_fasterrcnn_mobilenet_v3_large_fpn": ("p5", "p5", "p6"),
}

# Small-object anchors: 16 px on P2 doubling per level, 3 scales x 3 ratios per location.
RETINANET_ANCHOR_BASE = 16
ANCHOR_SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
ANCHOR_RATIOS = (0.5, 1.0, 2.0)
DETECTIONS_PER_IMAGE = 100
SCORE_THRESHOLD = 0.05

LOSS_NAMES = {
    "classification": "det/classification",
    "bbox_regression": "det/bbox_regression",
    "bbox_ctrness": "det/bbox_ctrness",
    "loss_classifier": "det/classification",
    "loss_box_reg": "det/bbox_regression",
    "loss_objectness": "det/rpn_objectness",
    "loss_rpn_box_reg": "det/rpn_bbox_regression",
}


@dataclass
class DenseOutput:
    """A one-stage detector's pass with what distillation reads beside the DetectorOutput."""

    output: DetectorOutput
    head: dict[str, Tensor]  # cls_logits (N, A, K), bbox_regression (N, A, 4), ...
    matched: list[Tensor] | None = None  # per image (A,): matched box index, < 0 background
    anchors: list[Tensor] = field(default_factory=list)  # per image (A, 4)

    def positives(self) -> Tensor | None:
        """(N, A) True at anchors matched to a ground-truth box (the head's foreground)."""
        if self.matched is None:
            return None
        return torch.stack(self.matched) >= 0


class GroupNormFCOSHead(FCOSHead):
    """torchvision's FCOS head (same keys and loss) with GroupNorm groups dividing any width."""

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, num_convs: int = 4):
        # FCOSHead hard-codes GroupNorm(32, C); skip its __init__ so narrow students can build.
        nn.Module.__init__(self)
        norm = partial(nn.GroupNorm, math.gcd(32, in_channels))
        self.box_coder = BoxLinearCoder(normalize_by_size=True)
        self.classification_head = FCOSClassificationHead(
            in_channels, num_anchors, num_classes, num_convs, norm_layer=norm
        )
        self.regression_head = FCOSRegressionHead(
            in_channels, num_anchors, num_convs, norm_layer=norm
        )


class Detector(nn.Module):
    """An FPN detector (RetinaNet, FCOS, or features-only Faster R-CNN) on fixed-size images.

    It holds the public parts of a torchvision detector (backbone, head, anchor generator or
    rpn/roi_heads) under the same names, so torchvision state dicts load unchanged, and skips
    torchvision's resizing transform: images arrive letterboxed to `image_size` in [0, 1].
    """

    pixel_mean: Tensor
    pixel_std: Tensor

    def __init__(
        self,
        model: RetinaNet | FCOS | FasterRCNN,
        *,
        family: Family,
        arch: str,
        num_classes: int,
        image_size: int,
        level_names: tuple[str, ...],
    ) -> None:
        super().__init__()
        self.family: Family = family
        self.arch = arch
        self.num_classes = num_classes
        self.image_size = image_size
        self.level_names = level_names
        self.backbone = model.backbone
        if isinstance(model, FasterRCNN):
            self.rpn = model.rpn
            self.roi_heads = model.roi_heads
        else:
            self.head = model.head
            self.anchor_generator = model.anchor_generator
        # The torchvision model lends its loss and post-processing; a tuple keeps it out of the
        # module tree so the state dict has torchvision's keys exactly once.
        self._torchvision: tuple[RetinaNet | FCOS | FasterRCNN] = (model,)
        self.register_buffer(
            "pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False
        )

    @property
    def has_dense_head(self) -> bool:
        """True for one-stage heads with dense per-anchor logits (RetinaNet, FCOS)."""
        return self.family != "fasterrcnn"

    def output_shape(self) -> dict[str, LevelSpec]:
        """Level name (p2..p7) -> LevelSpec(channels, stride), finest first."""
        channels = int(self.backbone.out_channels)
        return {
            name: LevelSpec(name=name, channels=channels, stride=LEVEL_STRIDES[name])
            for name in self.level_names
        }

    def anchor_layout(self) -> tuple[object, ...]:
        """What must match for two detectors' dense logits to align one to one."""
        if not self.has_dense_head:
            return (self.family,)
        generator: AnchorGenerator = self.anchor_generator
        return (
            self.family,
            self.image_size,
            self.num_classes,
            self.level_names,
            tuple(generator.sizes),
            tuple(generator.aspect_ratios),
        )

    def set_postprocess(
        self, *, score_threshold: float | None = None, detections_per_image: int | None = None
    ) -> None:
        """Set the eval-mode post-processing: score threshold and detection cap per image."""
        model = self._torchvision[0]
        holder = model.roi_heads if isinstance(model, FasterRCNN) else model
        if score_threshold is not None:
            if not 0.0 <= score_threshold < 1.0:
                raise ValueError(f"score_threshold must be in [0, 1) (got {score_threshold})")
            holder.score_thresh = float(score_threshold)
        if detections_per_image is not None:
            if detections_per_image < 1:
                raise ValueError(
                    f"detections_per_image must be positive (got {detections_per_image})"
                )
            holder.detections_per_img = int(detections_per_image)

    def postprocess_settings(self) -> dict[str, float | int]:
        """The eval-mode post-processing: score_threshold, detections_per_image, nms_threshold
        and (one-stage heads) topk_candidates, the best candidates kept per level before NMS."""
        model = self._torchvision[0]
        holder = model.roi_heads if isinstance(model, FasterRCNN) else model
        settings: dict[str, float | int] = {
            "score_threshold": float(holder.score_thresh),
            "detections_per_image": int(holder.detections_per_img),
            "nms_threshold": float(holder.nms_thresh),
        }
        if not isinstance(model, FasterRCNN):
            settings["topk_candidates"] = int(model.topk_candidates)
        return settings

    def normalize(self, images: Tensor) -> Tensor:
        """ImageNet-normalised images from [0, 1] images."""
        return (images - self.pixel_mean) / self.pixel_std

    def _pyramid(self, images: Tensor) -> list[Tensor]:
        """Backbone + neck outputs, finest level first."""
        return list(self.backbone(self.normalize(images)).values())

    def extract_features(self, images: Tensor) -> dict[str, Tensor]:
        """Pyramid features by level name (backbone + neck only)."""
        return dict(zip(self.level_names, self._pyramid(images), strict=True))

    def dense_outputs(self, images: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Pyramid features and the dense head outputs (cls_logits (N, sum H*W*A, K), ...)."""
        if not self.has_dense_head:
            raise ValueError(f"{self.arch} is a two-stage detector: it has no dense head outputs")
        pyramid = self._pyramid(images)
        return dict(zip(self.level_names, pyramid, strict=True)), self.head(pyramid)

    def head_outputs(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        """The dense head run on given pyramid features (one map per level of `level_names`)."""
        if not self.has_dense_head:
            raise ValueError(f"{self.arch} is a two-stage detector: it has no dense head outputs")
        return self.head([features[name] for name in self.level_names])

    def raw_outputs(self, images: Tensor) -> dict[str, Tensor]:
        """Dense head outputs only, no post-processing (traceable, for ONNX export parity)."""
        return self.dense_outputs(images)[1]

    def forward(self, images: Tensor, targets: list[Target] | None = None) -> DetectorOutput:
        """Losses (with targets), features and logits; detections too in eval mode."""
        if not self.has_dense_head:
            return self._forward_two_stage(images, targets)
        return self.forward_dense(images, targets).output

    def forward_dense(self, images: Tensor, targets: list[Target] | None = None) -> DenseOutput:
        """`forward` of a one-stage detector, also handing back head outputs and anchor matches."""
        if not self.has_dense_head:
            raise ValueError(f"{self.arch} is a two-stage detector: it has no dense head outputs")
        pyramid = self._pyramid(images)
        features = dict(zip(self.level_names, pyramid, strict=True))
        head_outputs: dict[str, Tensor] = self.head(pyramid)
        output = DetectorOutput(features=features, cls_logits=head_outputs["cls_logits"])
        dense = DenseOutput(output=output, head=head_outputs)
        if targets is None and self.training:
            return dense
        image_list = self._image_list(images)
        anchors: list[Tensor] = self.anchor_generator(image_list, pyramid)
        dense.anchors = anchors
        hw_per_level = [f.shape[-2] * f.shape[-1] for f in pyramid]
        anchors_per_location = head_outputs["cls_logits"].shape[1] // sum(hw_per_level)
        per_level = [hw * anchors_per_location for hw in hw_per_level]
        model = self._torchvision[0]
        if targets is not None:
            tv_targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
            dense.matched = self.match_anchors(tv_targets, anchors, per_level)
            raw = self.head.compute_loss(tv_targets, head_outputs, anchors, dense.matched)
            output.losses = {LOSS_NAMES[k]: v for k, v in raw.items()}
        if not self.training:
            split_outputs = {k: list(v.split(per_level, dim=1)) for k, v in head_outputs.items()}
            split_anchors = [list(a.split(per_level)) for a in anchors]
            found = model.postprocess_detections(  # type: ignore[union-attr]
                split_outputs, split_anchors, image_list.image_sizes
            )
            output.detections = [_drop_background(d) for d in found]
        return dense

    def match_anchors(
        self, targets: list[dict[str, Tensor]], anchors: list[Tensor], per_level: list[int]
    ) -> list[Tensor]:
        """Per image (A,) the box each anchor is matched to (< 0: background), as the loss does.

        The same rule as torchvision's `compute_loss` (IoU matcher for RetinaNet, centre
        sampling within the level's size range for FCOS), so the head's loss is unchanged.
        """
        model = self._torchvision[0]
        matched = []
        for anchors_i, target in zip(anchors, targets, strict=True):
            boxes = target["boxes"]
            if boxes.numel() == 0:
                matched.append(
                    torch.full(
                        (anchors_i.shape[0],), -1, dtype=torch.int64, device=anchors_i.device
                    )
                )
            elif isinstance(model, FCOS):
                matched.append(
                    _fcos_match(boxes, anchors_i, per_level, model.center_sampling_radius)
                )
            else:
                matched.append(model.proposal_matcher(box_iou(boxes, anchors_i)))  # type: ignore[union-attr]
        return matched

    def _image_list(self, images: Tensor) -> ImageList:
        size = (int(images.shape[-2]), int(images.shape[-1]))
        return ImageList(images, [size] * images.shape[0])

    def _forward_two_stage(self, images: Tensor, targets: list[Target] | None) -> DetectorOutput:
        """Faster R-CNN: region proposals and box head on the pyramid."""
        tv_features: OrderedDict[str, Tensor] = self.backbone(self.normalize(images))
        features = dict(zip(self.level_names, tv_features.values(), strict=True))
        output = DetectorOutput(features=features)
        if targets is None and self.training:
            return output
        image_list = self._image_list(images)
        tv_targets = (
            None
            if targets is None
            else [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
        )
        proposals, rpn_losses = self.rpn(image_list, tv_features, tv_targets)
        found, roi_losses = self.roi_heads(
            tv_features, proposals, image_list.image_sizes, tv_targets
        )
        output.losses = {LOSS_NAMES[k]: v for k, v in {**rpn_losses, **roi_losses}.items()}
        if not self.training:
            output.detections = [_drop_background(d) for d in found]
        return output


def _fcos_match(boxes: Tensor, anchors: Tensor, per_level: list[int], radius: float) -> Tensor:
    """(A,) FCOS's assignment: the smallest box whose centre region and size range hold it."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # (M, 2)
    points = (anchors[:, :2] + anchors[:, 2:]) / 2  # (A, 2)
    sizes = anchors[:, 2] - anchors[:, 0]  # (A,)
    match = (points[:, None, :] - centres[None]).abs().max(dim=2).values < radius * sizes[:, None]
    x, y = points[:, 0:1], points[:, 1:2]  # (A, 1)
    x0, y0, x1, y1 = boxes.unsqueeze(0).unbind(dim=2)  # (1, M) each
    distances = torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)  # (A, M, 4)
    match &= distances.min(dim=2).values > 0
    lower = sizes * 4
    lower[: per_level[0]] = 0
    upper = sizes * 8
    upper[-per_level[-1] :] = float("inf")
    reach = distances.max(dim=2).values  # (A, M)
    match &= (reach > lower[:, None]) & (reach < upper[:, None])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # (M,)
    score = match.to(torch.float32) * (1e8 - areas[None, :])
    best, index = score.max(dim=1)
    index[best < 1e-5] = -1
    return index


def _drop_background(found: dict[str, Tensor]) -> Detections:
    """Detections without label 0: labels are 1..K; one-stage heads never train class 0."""
    keep = found["labels"] > 0
    return Detections(
        boxes=found["boxes"][keep], scores=found["scores"][keep], labels=found["labels"][keep]
    )


def _dense_model(
    family: Family, backbone: nn.Module, *, num_classes: int, image_size: int
) -> RetinaNet | FCOS:
    """A torchvision RetinaNet / FCOS on our P2..P5 backbone, with small-object anchors."""
    channels = int(backbone.out_channels)  # type: ignore[arg-type]
    levels = len(backbone.output_shape())  # type: ignore[operator]
    if family == "retinanet":
        sizes = tuple(
            tuple(round(RETINANET_ANCHOR_BASE * 2**i * s) for s in ANCHOR_SCALES)
            for i in range(levels)
        )
        generator = AnchorGenerator(sizes, (ANCHOR_RATIOS,) * levels)
        head = RetinaNetHead(channels, generator.num_anchors_per_location()[0], num_classes)
        return RetinaNet(
            backbone,
            num_classes,
            min_size=image_size,
            max_size=image_size,
            anchor_generator=generator,
            head=head,
            score_thresh=SCORE_THRESHOLD,
            detections_per_img=DETECTIONS_PER_IMAGE,
        )
    if family == "fcos":
        # FCOS wants one anchor per location, sized like the level's stride (4 px on P2).
        generator = AnchorGenerator(tuple((4 * 2**i,) for i in range(levels)), ((1.0,),) * levels)
        fcos_head = GroupNormFCOSHead(channels, 1, num_classes)
        return FCOS(
            backbone,
            num_classes,
            min_size=image_size,
            max_size=image_size,
            anchor_generator=generator,
            head=fcos_head,
            score_thresh=SCORE_THRESHOLD,
            detections_per_img=DETECTIONS_PER_IMAGE,
        )
    raise ValueError(f"no dense model for family {family!r}")


def _own_detector(
    arch: str,
    family: Family,
    trunk: BackboneName,
    *,
    num_classes: int,
    image_size: int,
    fpn_channels: int,
    pretrained_backbone: str | Path | None,
) -> Detector:
    _check_sizes(num_classes=num_classes, image_size=image_size, fpn_channels=fpn_channels)
    backbone = build_backbone(trunk, fpn_channels=fpn_channels, pretrained=pretrained_backbone)
    model = _dense_model(family, backbone, num_classes=num_classes, image_size=image_size)
    return Detector(
        model,
        family=family,
        arch=arch,
        num_classes=num_classes,
        image_size=image_size,
        level_names=tuple(backbone.output_shape()),
    )


def _check_sizes(*, num_classes: int, image_size: int, fpn_channels: int) -> None:
    if num_classes < 2:
        raise ValueError(f"num_classes must be K + 1 >= 2 (got {num_classes})")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32 pixels (got {image_size})")
    if fpn_channels < 1:
        raise ValueError(f"fpn_channels must be positive (got {fpn_channels})")


def _torchvision_detector(
    arch: str,
    *,
    num_classes: int,
    image_size: int,
    fpn_channels: int,
    pretrained_backbone: str | Path | None,
) -> Detector:
    """torchvision's own builder (weights=None), so its state dicts load unchanged."""
    _check_sizes(num_classes=num_classes, image_size=image_size, fpn_channels=fpn_channels)
    if fpn_channels != 256:
        raise ValueError(
            f"{arch}: torchvision's FPN has 256 channels (fpn_channels={fpn_channels})"
        )
    family = TORCHVISION_ARCHS[arch]
    common = {
        "weights": None,
        "weights_backbone": None,
        "num_classes": num_classes,
        "min_size": image_size,
        "max_size": image_size,
    }
    detection = torchvision.models.detection
    builders = {
        "torchvision_retinanet_resnet50_fpn": detection.retinanet_resnet50_fpn,
        "torchvision_retinanet_resnet50_fpn_v2": detection.retinanet_resnet50_fpn_v2,
        "torchvision_fcos_resnet50_fpn": detection.fcos_resnet50_fpn,
        "torchvision_fasterrcnn_resnet50_fpn": detection.fasterrcnn_resnet50_fpn,
        "torchvision_fasterrcnn_resnet50_fpn_v2": detection.fasterrcnn_resnet50_fpn_v2,
        "torchvision_fasterrcnn_mobilenet_v3_large_fpn": (
            detection.fasterrcnn_mobilenet_v3_large_fpn
        ),
    }
    extra = {} if family == "fasterrcnn" else {"detections_per_img": DETECTIONS_PER_IMAGE}
    model = builders[arch](**common, **extra)
    if pretrained_backbone is not None:
        load_backbone_weights(
            model.backbone.body, pretrained_backbone, name=BACKBONE_OF_ARCH[arch]
        )
    return Detector(
        model,
        family=family,
        arch=arch,
        num_classes=num_classes,
        image_size=image_size,
        level_names=TORCHVISION_ARCH_LEVELS.get(arch, TORCHVISION_LEVELS[family]),
    )


def build_teacher(
    *,
    arch: str,
    num_classes: int,
    image_size: int,
    fpn_channels: int = 256,
    pretrained_backbone: str | Path | None = None,
    score_threshold: float = SCORE_THRESHOLD,
    detections_per_image: int = DETECTIONS_PER_IMAGE,
) -> Detector:
    """A teacher detector of a core.spec TeacherArch, randomly initialised (nothing downloaded)."""
    if arch in TORCHVISION_ARCHS:
        detector = _torchvision_detector(
            arch,
            num_classes=num_classes,
            image_size=image_size,
            fpn_channels=fpn_channels,
            pretrained_backbone=pretrained_backbone,
        )
    elif arch in TEACHER_ARCHS:
        family, trunk = TEACHER_ARCHS[arch]
        detector = _own_detector(
            arch,
            family,
            trunk,
            num_classes=num_classes,
            image_size=image_size,
            fpn_channels=fpn_channels,
            pretrained_backbone=pretrained_backbone,
        )
    else:
        known = sorted([*TEACHER_ARCHS, *TORCHVISION_ARCHS])
        raise ValueError(f"teacher.arch: unknown architecture {arch!r}; known: {known}")
    detector.set_postprocess(
        score_threshold=score_threshold, detections_per_image=detections_per_image
    )
    return detector


def build_student(
    *,
    arch: str,
    num_classes: int,
    image_size: int,
    fpn_channels: int = 96,
    pretrained_backbone: str | Path | None = None,
    score_threshold: float = SCORE_THRESHOLD,
    detections_per_image: int = DETECTIONS_PER_IMAGE,
) -> Detector:
    """A compact student detector of a core.spec StudentArch (P2..P5), randomly initialised."""
    if arch not in STUDENT_ARCHS:
        raise ValueError(
            f"student.arch: unknown architecture {arch!r}; known: {sorted(STUDENT_ARCHS)}"
        )
    family, trunk = STUDENT_ARCHS[arch]
    detector = _own_detector(
        arch,
        family,
        trunk,
        num_classes=num_classes,
        image_size=image_size,
        fpn_channels=fpn_channels,
        pretrained_backbone=pretrained_backbone,
    )
    detector.set_postprocess(
        score_threshold=score_threshold, detections_per_image=detections_per_image
    )
    return detector
