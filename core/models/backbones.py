"""FPN feature extractors with P2 (stride 4) .. P5 (stride 32) levels on torchvision trunks."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torchvision
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FeaturePyramidNetwork

from core.models.checkpoints import load_state_dict, load_weights
from core.structures import LevelSpec

BackboneName = Literal["resnet50", "resnet18", "mobilenet_v2", "shufflenet_v2", "mobilenet_v3"]

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


def _trunk(classifier: nn.Module, name: BackboneName) -> nn.Module:
    """The part of the classifier that holds the stages (MobileNets keep them in `features`)."""
    if name in ("mobilenet_v2", "mobilenet_v3"):
        return classifier.features  # type: ignore[return-value]
    return classifier


def load_pretrained_trunk(classifier: nn.Module, path: str | Path) -> None:
    """Load a local torchvision ImageNet state dict into a classifier, strictly (no download)."""
    load_weights(classifier, load_state_dict(path), source=str(path))


class PyramidBackbone(nn.Module):
    """A torchvision trunk plus a FeaturePyramidNetwork: images -> OrderedDict p2..p5."""

    def __init__(
        self, name: BackboneName, *, fpn_channels: int, pretrained: str | Path | None = None
    ) -> None:
        super().__init__()
        layout = TRUNK_LAYOUTS[name]
        classifier = _classifier(name)
        if pretrained is not None:
            load_pretrained_trunk(classifier, pretrained)
        self.name = name
        self.body = IntermediateLayerGetter(_trunk(classifier, name), layout.return_layers)
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
