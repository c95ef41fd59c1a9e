"""Images in: the letterbox is the training one; non-images, broken and huge images refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.transforms import letterbox as training_letterbox
from core.predict.errors import PredictError
from core.predict.images import letterbox, open_image, sniff_image


def test_letterbox_is_the_training_one(photo: Image.Image) -> None:
    expected = training_letterbox(photo, np.zeros((0, 4)), 64)
    got = letterbox(photo, 64)
    assert got.batch.shape == (1, 3, 64, 64)
    assert got.batch.dtype == np.float32
    assert got.scale == expected.scale
    assert got.pad == expected.pad
    pixels = np.rint(got.batch[0].transpose(1, 2, 0) * 255).astype(np.uint8)
    assert np.array_equal(pixels, expected.image)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_images_are_recognised_by_their_first_bytes(photo: Image.Image) -> None:
    assert sniff_image(_png(photo)) == "PNG"
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG")
    assert sniff_image(buffer.getvalue()) == "JPEG"
    assert sniff_image(b"hello, world") is None


def test_bad_images_are_refused_by_name(photo: Image.Image, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(_png(photo))
    assert open_image(good, name="good.png").size == (90, 70)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(PredictError, match=r"notes.png: not an image"):
        open_image(text, name="notes.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(_png(photo)[:100])
    with pytest.raises(PredictError, match=r"broken.png: the image cannot be decoded"):
        open_image(broken, name="broken.png")
    with pytest.raises(PredictError, match="more than the limit of 1000 pixels"):
        open_image(good, name="good.png", max_pixels=1000)
    with pytest.raises(PredictError, match="no such file"):
        open_image(tmp_path / "nope.png", name="nope.png")
