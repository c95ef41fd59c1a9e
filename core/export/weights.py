"""Exported weights: safetensors files with string metadata (provenance) and their reading back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def metadata_strings(metadata: dict[str, Any]) -> dict[str, str]:
    """safetensors metadata must be str -> str: strings stay, everything else becomes JSON."""
    return {
        str(key): value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        for key, value in metadata.items()
    }


def save_safetensors(
    path: Path, state: dict[str, torch.Tensor], *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write a state dict (contiguous CPU copies, no shared storage) with its metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share storage (tied weights): store independent copies.
    tensors = {name: value.detach().cpu().contiguous().clone() for name, value in state.items()}
    save_file(tensors, str(path), metadata=metadata_strings(metadata or {}))
    return path


def load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the string metadata of a safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        metadata = dict(handle.metadata() or {})
        for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            tensors[name] = handle.get_tensor(name)
    return tensors, metadata


def decode_metadata(metadata: dict[str, str]) -> dict[str, Any]:
    """Metadata with the JSON values written by `metadata_strings` parsed back."""
    decoded: dict[str, Any] = {}
    for key, value in metadata.items():
        try:
            decoded[key] = json.loads(value)
        except json.JSONDecodeError:
            decoded[key] = value
    return decoded


def file_checksum(path: Path) -> str:
    """SHA-256 of a file's bytes (provenance of a teacher checkpoint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
