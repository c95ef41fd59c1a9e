"""Safe checkpoint loading (no code execution), strict weight matching and provenance."""

from __future__ import annotations

import pickle
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor, nn

SAFETENSORS_SUFFIX = ".safetensors"
NESTED_KEYS = ("model", "state_dict", "model_state_dict", "module")
# BatchNorm's step counter is absent from FrozenBatchNorm checkpoints (torchvision's pretrained
# detectors) and never used in eval: its absence is not a mismatch.
IGNORED_SUFFIXES = ("num_batches_tracked",)
MAX_NAMED_KEYS = 20


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded safely or is not a state dict."""


class CheckpointMismatchError(CheckpointError):
    """A state dict whose keys or shapes do not match the declared architecture."""

    def __init__(
        self,
        source: str,
        *,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[str],
    ) -> None:
        self.source = source
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        parts = []
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        ):
            if keys:
                shown = ", ".join(keys[:MAX_NAMED_KEYS])
                more = (
                    f" (+{len(keys) - MAX_NAMED_KEYS} more)" if len(keys) > MAX_NAMED_KEYS else ""
                )
                parts.append(f"{len(keys)} {label}: {shown}{more}")
        super().__init__(f"{source}: weights do not match the architecture; " + "; ".join(parts))


def _is_safetensors(path: Path) -> bool:
    if path.suffix == SAFETENSORS_SUFFIX:
        return True
    # A safetensors file starts with an 8-byte header length and then a JSON object.
    with path.open("rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _unwrap(obj: Any, source: str) -> dict[str, Tensor]:
    """The flat name -> tensor mapping inside common checkpoint layouts."""
    while isinstance(obj, Mapping):
        nested = next((k for k in NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            break
        obj = obj[nested]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: not a state dict (found {type(obj).__name__})")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{source}: not a state dict; entries that are not tensors: {not_tensors[:10]}"
        )
    state = {str(k): v for k, v in obj.items()}
    prefix = "module."
    if all(k.startswith(prefix) for k in state):
        # DataParallel / DDP checkpoints prefix every key.
        state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a safetensors or torch file, without executing any pickled code."""
    file = Path(path)
    source = str(file)
    if not file.is_file():
        raise CheckpointError(f"{source}: no such file")
    if _is_safetensors(file):
        try:
            return _unwrap(load_file(str(file), device="cpu"), source)
        except (SafetensorError, OSError, ValueError) as err:
            if isinstance(err, CheckpointError):
                raise
            raise CheckpointError(f"{source}: unreadable safetensors file ({err})") from err
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses any global that is not a tensor type: whole modules, classes
        # and __reduce__ payloads end up here without running. PyTorch's own text advises
        # weights_only=False (running the file's code) and may name paths: it is not repeated.
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = (
            f"holds pickled Python objects ({found.group(1)}), which are refused"
            if found
            else "holds pickled data other than tensors (or is no torch file), which is refused"
        )
        raise CheckpointError(
            f"{file.name}: refused: the file {what}; upload a safetensors file or a plain "
            "state dict of tensors (torch.save(model.state_dict(), path))"
        ) from err
    except Exception as err:
        raise CheckpointError(
            f"{file.name}: refused: not a readable torch checkpoint ({type(err).__name__}; "
            "truncated or another format); upload a safetensors file or a plain state dict "
            "of tensors"
        ) from err
    return _unwrap(obj, source)


def _ignored(key: str) -> bool:
    return key.endswith(IGNORED_SUFFIXES)


def match_weights(
    expected: Mapping[str, Tensor],
    state: Mapping[str, Tensor],
    *,
    source: str,
    optional: Collection[str] = (),
) -> dict[str, Tensor]:
    """The entries of `state` that `expected` names, if they match it strictly.

    Keys in `optional` may be present or absent (a classifier's head when only its trunk is
    loaded); any other difference raises CheckpointMismatchError naming every bad key.
    """
    skip = set(optional)
    missing = sorted(k for k in expected if k not in state and not _ignored(k))
    unexpected = sorted(k for k in state if k not in expected and k not in skip and not _ignored(k))
    mismatched = sorted(
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(
            source, missing=missing, unexpected=unexpected, mismatched=mismatched
        )
    return {k: v for k, v in state.items() if k in expected}


def load_weights(model: nn.Module, state: Mapping[str, Tensor], *, source: str) -> None:
    """Load `state` into `model` strictly; raise CheckpointMismatchError naming every bad key."""
    model.load_state_dict(match_weights(model.state_dict(), state, source=source), strict=False)


def read_provenance(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file (arch, spec hash, metrics, ...); {} for other formats."""
    file = Path(path)
    if not file.is_file() or not _is_safetensors(file):
        return {}
    try:
        with safe_open(str(file), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{file}: unreadable safetensors file ({err})") from err
