"""The teacher-feature cache: the frozen teacher's pyramid features computed once per view.

A frozen teacher in eval mode maps one input to one output. When the only augmentation is a
horizontal flip (no colour jitter, no copy-paste) the input of image `i` is one of two
exact tensors, so its features are a function of (image id, flipped): computed the first
time that view is drawn, then read back in every later epoch, and by every run that shares
the teacher, the data and the transform (the runs of an ablation, the trials of a sweep)
through a folder on disk.

Features are stored in float16 (half the bytes, a relative rounding of 2^-11); every view
is rounded the same way whether it was just computed or read back, so a step does not
depend on what was cached before it. Memory holds at most `max_bytes`, least recently used
first out; the folder, when given, has no cap of its own (its files are per view, written
atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from core.spec import JobSpec

View = tuple[int, bool]
"""(image id, flipped): what the teacher saw."""

CACHE_DTYPE = torch.float16


@dataclass
class CacheStats:
    """What the cache did: views read back (from memory or disk), views computed."""

    hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    bytes_in_memory: int = 0
    evicted: int = 0

    @property
    def hit_rate(self) -> float:
        """Share of the views read back instead of computed (0 before any lookup)."""
        seen = self.hits + self.misses
        return self.hits / seen if seen else 0.0

    def as_dict(self) -> dict[str, float]:
        """The figures for metrics.json (`distill/teacher_cache`)."""
        return {
            "hits": self.hits,
            "disk_hits": self.disk_hits,
            "misses": self.misses,
            "hit_rate": self.hit_rate,
            "bytes_in_memory": self.bytes_in_memory,
            "evicted": self.evicted,
        }


def cache_refusal(spec: JobSpec) -> str | None:
    """Why a job's teacher features cannot be cached, or None when they can."""
    distill, augment = spec.distill, spec.data.augment
    if not distill.teacher_cache:
        return "off in the spec (distill.teacher_cache)"
    if augment.color_jitter > 0:
        return "colour jitter changes the teacher's input from one epoch to the next"
    if augment.copy_paste:
        return "copy-paste changes the teacher's input from one epoch to the next"
    if spec.data.tile is not None:
        # views are (image id, flipped): a cached view would serve another chip's features
        return "tiled training (data.tile) draws another chip of an image each epoch"
    if distill.head_kd_enabled:
        return "response, box and head KD read the teacher's dense head outputs, not cached"
    if not distill.feature_kd_enabled:
        return "no feature KD term reads the teacher"
    return None


def cache_namespace(*, teacher_digest: str, data: dict[str, Any], levels: Sequence[str]) -> str:
    """A short key of everything a view's features depend on besides (image id, flipped)."""
    payload = json.dumps(
        {"teacher": teacher_digest, "data": data, "levels": sorted(levels), "version": 1},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


class TeacherFeatureCache:
    """Per-view teacher features in memory (LRU, `max_bytes`) and optionally in `directory`."""

    def __init__(self, namespace: str, *, max_bytes: int, directory: Path | None = None) -> None:
        self.namespace = namespace
        self.max_bytes = max(int(max_bytes), 0)
        self.directory = directory / namespace if directory is not None else None
        self.stats = CacheStats()
        self._memory: OrderedDict[View, dict[str, Tensor]] = OrderedDict()

    def _path(self, view: View) -> Path:
        assert self.directory is not None
        image_id, flipped = view
        return self.directory / f"{image_id}-{int(flipped)}.safetensors"

    def _remember(self, view: View, features: dict[str, Tensor]) -> None:
        if self.max_bytes == 0:
            return
        size = sum(t.numel() * t.element_size() for t in features.values())
        self._memory[view] = features
        self._memory.move_to_end(view)
        self.stats.bytes_in_memory += size
        while self.stats.bytes_in_memory > self.max_bytes and self._memory:
            _, old = self._memory.popitem(last=False)
            self.stats.bytes_in_memory -= sum(t.numel() * t.element_size() for t in old.values())
            self.stats.evicted += 1

    def get(self, view: View) -> dict[str, Tensor] | None:
        """The view's features (CPU, float16), from memory, else from disk, else None."""
        found = self._memory.get(view)
        if found is not None:
            self._memory.move_to_end(view)
            return found
        if self.directory is not None:
            path = self._path(view)
            if path.is_file():
                try:
                    found = load_file(str(path))
                except (OSError, ValueError, RuntimeError):
                    return None  # a torn or foreign file: compute the view again
                self.stats.disk_hits += 1
                self._remember(view, found)
                return found
        return None

    def put(self, view: View, features: dict[str, Tensor]) -> None:
        """Keep one view's features (level -> (C, H, W)), as CPU float16."""
        stored = {k: v.detach().to("cpu", CACHE_DTYPE).contiguous() for k, v in features.items()}
        self._remember(view, stored)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self._path(view)
            partial = path.with_suffix(f".{os.getpid()}.part")
            save_file(stored, str(partial))
            os.replace(partial, path)

    def features(
        self,
        images: Tensor,
        views: Sequence[View],
        compute: Callable[[Tensor], dict[str, Tensor]],
    ) -> dict[str, Tensor]:
        """The batch's teacher features: cached views read back, the others computed (on
        the sub-batch of missing images only) and stored. Every view float16-rounded."""
        if len(views) != images.shape[0]:
            raise ValueError(f"teacher cache: {len(views)} views for {images.shape[0]} images")
        found = [self.get(view) for view in views]
        missing = [i for i, item in enumerate(found) if item is None]
        self.stats.hits += len(views) - len(missing)
        self.stats.misses += len(missing)
        if missing:
            computed = compute(images[missing])
            for row, index in enumerate(missing):
                one = {name: value[row] for name, value in computed.items()}
                self.put(views[index], one)
                found[index] = self._memory.get(views[index]) or {
                    k: v.detach().to("cpu", CACHE_DTYPE) for k, v in one.items()
                }
        levels = list(found[0] or {})
        dtype = images.dtype if images.is_floating_point() else torch.float32
        batch: dict[str, Tensor] = {}
        for level in levels:
            stored = [item[level] for item in found if item is not None]
            # Each view converted straight into the batch tensor: no stacked float16 copy.
            out = torch.empty((len(stored), *stored[0].shape), dtype=dtype, device=images.device)
            for position, one_view in enumerate(stored):
                out[position].copy_(one_view, non_blocking=True)
            batch[level] = out
        return batch
