"""Training checkpoints: tensors and plain types only, loaded with weights_only=True."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_NAME = "last.pt"
"""File name of the rolling training checkpoint inside `out/checkpoints/`."""


class TrainingCheckpointError(ValueError):
    """A training checkpoint that cannot be read or does not fit the run resuming from it."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write `payload` atomically (a crash never leaves a half-written checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint without executing code (weights_only=True)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise TrainingCheckpointError(f"{path}: no such checkpoint") from exc
    except Exception as exc:  # pickled objects, truncated files: all are user errors here
        raise TrainingCheckpointError(
            f"{path}: not a readable training checkpoint ({exc})"
        ) from exc
    missing = [key for key in ("model", "epoch", "step", "stage") if key not in payload]
    if not isinstance(payload, dict) or missing:
        raise TrainingCheckpointError(f"{path}: not a training checkpoint (missing {missing})")
    return payload
