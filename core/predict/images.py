"""Images in: decoding with a pixel bound, and the letterbox the students were trained on.

`letterbox` is core.data.transforms.letterbox's image part (same rounding, resampling and
pad), written again here because the API process must not import core.data;
tests/core/predict/test_images.py checks the two agree.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.predict.errors import PredictError
from core.predict.metadata import PAD_VALUE

MAX_PIXELS = 64_000_000
"""Largest image decoded (width x height, 8k x 8k): more is refused before decoding."""

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
"""The formats opened (PIL's decoder chosen by content, among these only)."""


def sniff_image(head: bytes) -> str | None:
    """The image format of a file from its first bytes (one of IMAGE_FORMATS), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"BM"):
        return "BMP"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    return None


@dataclass(frozen=True)
class Letterboxed:
    """A (1, 3, S, S) float32 batch in [0, 1], and how to map its pixels back."""

    batch: np.ndarray
    scale: float
    pad: tuple[int, int]


def letterbox(image: Image.Image, size: int, *, pad_value: int = PAD_VALUE) -> Letterboxed:
    """Resize keeping the aspect ratio so the long side is `size`, pad to size x size, centred."""
    w, h = image.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = image.convert("RGB").resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (size - nw) // 2, (size - nh) // 2
    canvas = np.full((size, size, 3), pad_value, dtype=np.uint8)
    canvas[top : top + nh, left : left + nw] = np.asarray(resized)
    batch = (canvas.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)[None]
    return Letterboxed(np.ascontiguousarray(batch), scale, (left, top))


def open_image(source: Path | BinaryIO, *, name: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The decoded RGB image; PredictError naming `name` for no image, a broken or a huge one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source, formats=IMAGE_FORMATS)
            width, height = image.size
            if width < 1 or height < 1 or width * height > max_pixels:
                raise PredictError(
                    f"{name}: {width} x {height} pixels is more than the limit of "
                    f"{max_pixels} pixels"
                )
            image.load()
            return image.convert("RGB")
    except PredictError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PredictError(f"{name}: more pixels than the limit of {max_pixels}") from None
    except UnidentifiedImageError:
        raise PredictError(
            f"{name}: not an image of a known format ({', '.join(IMAGE_FORMATS)})"
        ) from None
    except FileNotFoundError:
        raise PredictError(f"{name}: no such file") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise PredictError(f"{name}: the image cannot be decoded ({err})") from None
