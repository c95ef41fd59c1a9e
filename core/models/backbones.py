"""FPN feature extractors with P2 (stride 4) .. P5 (stride 32) levels on torchvision trunks."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FeaturePyramidNetwork

from core.data.issues import ValidationIssue
from core.models.checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    load_state_dict,
    match_weights,
)
from core.spec import BackboneArch
from core.structures import LevelSpec

BackboneName = BackboneArch

LEVEL_STRIDES: dict[str, int] = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64, "p7": 128}
"""Level name -> stride in pixels; names are always log2(stride), so names pair by stride."""


@dataclass(frozen=True)
class TrunkLayout:
    """Which trunk layers end the stride 4/8/16/32 stages, and their output channels."""

    return_layers: dict[str, str]  # trunk layer name -> level name
    channels: tuple[int, int, int, int]  # p2, p3, p4, p5


# Layer indices measured on torchvision's modules; the stride-32 stage stops before the wide
# 1x1 expansion (1280 / 960 channels) of the MobileNets, which adds width but no information.
TRUNK_LAYOUTS: dict[str, TrunkLayout] = {
    "resnet50": TrunkLayout(
        {"layer1": "p2", "layer2": "p3", "layer3": "p4", "layer4": "p5"}, (256, 512, 1024, 2048)
    ),
    "resnet18": TrunkLayout(
        {"layer1": "p2", "layer2": "p3", "layer3": "p4", "layer4": "p5"}, (64, 128, 256, 512)
    ),
    "mobilenet_v2": TrunkLayout({"3": "p2", "6": "p3", "13": "p4", "17": "p5"}, (24, 32, 96, 320)),
    "shufflenet_v2": TrunkLayout(
        {"maxpool": "p2", "stage2": "p3", "stage3": "p4", "stage4": "p5"}, (24, 116, 232, 464)
    ),
    "mobilenet_v3": TrunkLayout({"3": "p2", "6": "p3", "12": "p4", "15": "p5"}, (24, 40, 112, 160)),
}


def _classifier(name: BackboneName) -> nn.Module:
    """torchvision's ImageNet classifier for `name`, randomly initialised (never downloaded)."""
    if name == "resnet50":
        return torchvision.models.resnet50(weights=None)
    if name == "resnet18":
        return torchvision.models.resnet18(weights=None)
    if name == "mobilenet_v2":
        return torchvision.models.mobilenet_v2(weights=None)
    if name == "shufflenet_v2":
        return torchvision.models.shufflenet_v2_x1_0(weights=None)
    if name == "mobilenet_v3":
        return torchvision.models.mobilenet_v3_large(weights=None)
    raise ValueError(f"unknown backbone {name!r}; known: {sorted(TRUNK_LAYOUTS)}")


TRUNK_PREFIXES: dict[str, str] = {"mobilenet_v2": "features.", "mobilenet_v3": "features."}
"""Where the trunk's keys sit in torchvision's classifier state dict (MobileNets: `features.`)."""


def _trunk(classifier: nn.Module, name: BackboneName) -> nn.Module:
    """The part of the classifier that holds the stages (MobileNets keep them in `features`)."""
    if name in ("mobilenet_v2", "mobilenet_v3"):
        return classifier.features  # type: ignore[return-value]
    return classifier


def classifier_keys(name: BackboneName) -> set[str]:
    """The state-dict keys of torchvision's whole ImageNet classifier `name` (built on meta)."""
    with torch.device("meta"):
        return set(_classifier(name).state_dict())


def trunk_body(name: BackboneName) -> nn.Module:
    """The FPN body of trunk `name`: its stride 4..32 stages, randomly initialised."""
    layout = TRUNK_LAYOUTS[name]
    return IntermediateLayerGetter(_trunk(_classifier(name), name), layout.return_layers)


def body_weights(
    body: nn.Module, state: Mapping[str, Tensor], *, name: BackboneName, source: str
) -> dict[str, Tensor]:
    """The entries of a backbone weights file that `body` (an FPN body of `name`) holds.

    `state` is torchvision's ImageNet classifier state dict (`features.*` + `classifier.*`,
    `conv1.*` .. `fc.*`): its classifier head and the trunk layers past the stride-32 stage
    are ignored, every other key must match the body strictly. A state dict of the body itself
    (MobileNets: without `features.`) is read too. Mismatches raise CheckpointMismatchError
    naming the keys as the file spells them.
    """
    prefix = TRUNK_PREFIXES.get(name, "")
    own = body.state_dict()
    expected = {prefix + k: v for k, v in own.items()}
    if prefix and not any(k.startswith(prefix) for k in state) and any(k in own for k in state):
        state = {prefix + k: v for k, v in state.items()}  # saved from the body itself
    optional = classifier_keys(name) - set(expected)
    known = match_weights(expected, state, source=source, optional=optional)
    return {k[len(prefix) :]: v for k, v in known.items()}


def load_backbone_weights(
    body: nn.Module, path: str | Path, *, name: BackboneName, source: str | None = None
) -> None:
    """Load a local backbone weights file into an FPN body strictly (no download, no code)."""
    state = load_state_dict(path)
    weights = body_weights(body, state, name=name, source=source or str(path))
    body.load_state_dict(weights, strict=False)


class PyramidBackbone(nn.Module):
    """A torchvision trunk plus a FeaturePyramidNetwork: images -> OrderedDict p2..p5."""

    def __init__(
        self, name: BackboneName, *, fpn_channels: int, pretrained: str | Path | None = None
    ) -> None:
        super().__init__()
        layout = TRUNK_LAYOUTS[name]
        self.name = name
        self.body = trunk_body(name)
        if pretrained is not None:
            load_backbone_weights(self.body, pretrained, name=name)
        self.fpn = FeaturePyramidNetwork(list(layout.channels), fpn_channels)
        self.out_channels = fpn_channels  # torchvision's detectors read this attribute
        self.trunk_channels = layout.channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """Pyramid features by level name, P2 first."""
        return self.fpn(self.body(x))

    def output_shape(self) -> dict[str, LevelSpec]:
        """Level name -> LevelSpec (FPN channels, stride), P2 first."""
        return {
            name: LevelSpec(name=name, channels=self.out_channels, stride=LEVEL_STRIDES[name])
            for name in ("p2", "p3", "p4", "p5")
        }


def build_backbone(
    name: BackboneName, *, fpn_channels: int, pretrained: str | Path | None = None
) -> PyramidBackbone:
    """An FPN backbone (P2..P5) on the named torchvision trunk, optionally with local weights."""
    if name not in TRUNK_LAYOUTS:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(TRUNK_LAYOUTS)}")
    return PyramidBackbone(name, fpn_channels=fpn_channels, pretrained=pretrained)


@dataclass
class BackboneCheck:
    """The outcome of checking uploaded backbone weights: errors, or the weights' facts."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def check_backbone_weights(path: Path, *, name: str, arch: str) -> BackboneCheck:
    """Check the weights file at `path` (known to its uploader as `name`) against trunk `arch`."""

    def issue(message: str, **extra: Any) -> dict[str, Any]:
        # Messages name the local copy; the user knows the file by its uploaded name.
        text = message.replace(str(path), name)
        return {**ValidationIssue(file=name, message=text).to_dict(), **extra}

    if arch not in TRUNK_LAYOUTS:
        known = sorted(TRUNK_LAYOUTS)
        return BackboneCheck(errors=[issue(f"unknown backbone {arch!r}; known: {known}")])
    trunk = cast(BackboneName, arch)
    try:
        state = load_state_dict(path)
    except CheckpointError as exc:
        return BackboneCheck(errors=[issue(str(exc))])
    body = trunk_body(trunk)
    try:
        weights = body_weights(body, state, name=trunk, source=name)
    except CheckpointMismatchError as exc:
        error = issue(
            str(exc), missing=exc.missing, unexpected=exc.unexpected, mismatched=exc.mismatched
        )
        return BackboneCheck(errors=[error])
    info = {
        "tensors": len(state),
        "loaded": len(weights),
        "ignored": len(state) - len(weights),
        "params": sum(p.numel() for p in body.parameters()),
    }
    return BackboneCheck(info=info)
