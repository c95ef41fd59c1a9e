"""Finished jobs' students loaded for `POST /jobs/{id}/predict`: from the blob store, cached.

The API process never loads torch: a student runs as its ONNX on onnxruntime, with the
metadata (architecture, input size, categories) read from the header of its safetensors;
core.predict's post-processing is the numpy twin of the torch model's. Loaded students are
kept per (job, checksums) in a small least-recently-used cache of this process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from core.predict.errors import PredictError
from core.predict.metadata import decode_strings, meta_from_dict, safetensors_metadata_from_chunks
from core.predict.onnx_model import OnnxPredictor
from store.blobs import BlobStore
from store.models import Artifact

CACHE_SIZE = 4
"""Students kept loaded at once (each a few MB; the least recently used goes first)."""

ONNX_THREADS = 2
"""onnxruntime threads per prediction: requests run side by side, each on few cores."""

MAX_MODEL_BYTES = 512 * 1024 * 1024
"""Largest ONNX read into memory (a student is a few MB)."""


CacheKey = tuple[int, str, str, str, str]


@dataclass(frozen=True)
class StoredFile:
    """One artifact's name, blob key, checksum and size (copied off its database row)."""

    name: str
    key: str
    sha256: str
    size_bytes: int

    @classmethod
    def of(cls, artifact: Artifact) -> StoredFile:
        """The fields of an artifact row."""
        return cls(artifact.name, artifact.key, artifact.sha256, artifact.size_bytes)


@dataclass(frozen=True)
class StudentFiles:
    """Where a job's student lies: its ONNX and its safetensors (for the metadata)."""

    job_id: int
    onnx: StoredFile
    weights: StoredFile

    @property
    def cache_key(self) -> CacheKey:
        """The job and both files' keys and checksums: a replaced file loads anew."""
        return (self.job_id, self.onnx.key, self.onnx.sha256, self.weights.key, self.weights.sha256)


class StudentLoadError(Exception):
    """A job's stored student cannot be used (message for the client, no paths)."""


def load_student(blobs: BlobStore, files: StudentFiles) -> OnnxPredictor:
    """The job's student on onnxruntime, its metadata from the safetensors header."""
    try:
        raw = safetensors_metadata_from_chunks(
            blobs.open_stream(files.weights.key), source=files.weights.name
        )
        meta = meta_from_dict(decode_strings(raw), source=files.weights.name)
        if files.onnx.size_bytes > MAX_MODEL_BYTES:
            raise StudentLoadError(f"{files.onnx.name} is larger than {MAX_MODEL_BYTES} bytes")
        model = b"".join(blobs.open_stream(files.onnx.key))
        return OnnxPredictor(model, meta=meta, source=files.onnx.name, threads=ONNX_THREADS)
    except PredictError as err:
        raise StudentLoadError(str(err)) from err


class StudentCache:
    """A thread-safe LRU of loaded students, keyed by `StudentFiles.cache_key`."""

    def __init__(self, capacity: int = CACHE_SIZE) -> None:
        self.capacity = capacity
        self._items: OrderedDict[CacheKey, OnnxPredictor] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keys(self) -> list[CacheKey]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def get(self, files: StudentFiles, load: Callable[[], OnnxPredictor]) -> OnnxPredictor:
        """The cached student, or `load()`'s (then cached, evicting the oldest past capacity)."""
        key = files.cache_key
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        predictor = load()  # outside the lock: a slow load holds up no other request
        with self._lock:
            self._items[key] = predictor
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return predictor
