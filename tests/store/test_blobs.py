"""Blob stores (local folder and S3 on a real S3-API server): streamed, atomic, safe keys."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import httpx
import pytest

from store.blobs import (
    CHUNK_SIZE,
    BlobKeyError,
    BlobNotFound,
    BlobStore,
    LocalBlobStore,
    S3BlobStore,
    make_blob_store,
)
from store.settings import Settings

# Above the 8 MiB multipart threshold, so S3 uploads go in parts.
BIG = 9 * 1024 * 1024 + 123


class GeneratedFile(io.RawIOBase):
    """A readable file of `size` pseudo-random bytes made on the fly (never held whole)."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.remaining = size
        self.rng = random.Random(seed)
        self.sha256 = hashlib.sha256()
        self.largest_read = 0

    def readable(self) -> bool:
        """Yes: this file is read."""
        return True

    def read(self, size: int = -1) -> bytes:
        """The next `size` bytes (all that remain for -1)."""
        n = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.rng.randbytes(n)
        self.remaining -= n
        self.sha256.update(data)
        self.largest_read = max(self.largest_read, n)
        return data


def test_stream_round_trip_of_a_multi_megabyte_file(blob_store: BlobStore, tmp_path: Path) -> None:
    source = GeneratedFile(BIG)
    assert blob_store.put_stream("jobs/1/student.onnx", source) == BIG  # type: ignore[arg-type]
    assert source.largest_read <= 8 * 1024 * 1024  # read in chunks, not all at once
    assert blob_store.exists("jobs/1/student.onnx")
    assert blob_store.size("jobs/1/student.onnx") == BIG

    digest = hashlib.sha256()
    chunks = 0
    for chunk in blob_store.open_stream("jobs/1/student.onnx"):
        assert len(chunk) <= CHUNK_SIZE
        digest.update(chunk)
        chunks += 1
    assert chunks >= BIG // CHUNK_SIZE
    assert digest.hexdigest() == source.sha256.hexdigest()

    target = blob_store.download("jobs/1/student.onnx", tmp_path / "out" / "s.onnx")
    assert hashlib.sha256(target.read_bytes()).hexdigest() == source.sha256.hexdigest()
    assert [p.name for p in target.parent.iterdir()] == ["s.onnx"]  # no temporary left over


def test_put_file_overwrite_and_delete(blob_store: BlobStore, tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text("# first")
    assert blob_store.put_file("jobs/2/report.md", path) == len("# first")
    blob_store.put_stream("jobs/2/report.md", io.BytesIO(b"# second"))
    assert b"".join(blob_store.open_stream("jobs/2/report.md")) == b"# second"
    blob_store.delete("jobs/2/report.md")
    blob_store.delete("jobs/2/report.md")  # deleting twice is fine
    assert not blob_store.exists("jobs/2/report.md")
    with pytest.raises(BlobNotFound):
        blob_store.open_stream("jobs/2/report.md")
    with pytest.raises(BlobNotFound):
        blob_store.size("jobs/2/report.md")
    with pytest.raises(BlobNotFound):
        blob_store.download("jobs/2/report.md", tmp_path / "x")


def test_delete_prefix_removes_only_that_prefix(blob_store: BlobStore) -> None:
    for key in ("jobs/3/a.txt", "jobs/3/pictures/b.png", "jobs/30/c.txt", "jobs/4/d.txt"):
        blob_store.put_stream(key, io.BytesIO(key.encode()))
    assert blob_store.delete_prefix("jobs/3/") == 2
    assert not blob_store.exists("jobs/3/a.txt")
    assert not blob_store.exists("jobs/3/pictures/b.png")
    assert blob_store.exists("jobs/30/c.txt") and blob_store.exists("jobs/4/d.txt")
    assert blob_store.delete_prefix("jobs/3/") == 0
    if isinstance(blob_store, LocalBlobStore):
        assert not (blob_store.root / "jobs" / "3").exists()


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../outside", "a/../../b", "a//b", "a/./b", "a\\b", "nul\x00", "C:/x"],
)
def test_bad_keys_are_refused(blob_store: BlobStore, key: str) -> None:
    with pytest.raises(BlobKeyError):
        blob_store.put_stream(key, io.BytesIO(b"x"))
    with pytest.raises(BlobKeyError):
        blob_store.exists(key)


def test_delete_prefix_refuses_the_whole_store(blob_store: BlobStore) -> None:
    for prefix in ("", "/", "../"):
        with pytest.raises(BlobKeyError):
            blob_store.delete_prefix(prefix)


def test_presigned_url_downloads_the_bytes(blob_store: BlobStore) -> None:
    blob_store.put_stream("jobs/5/metrics.json", io.BytesIO(b'{"AP": 0.5}'))
    url = blob_store.presigned_url("jobs/5/metrics.json", expires=60, filename="metrics.json")
    if isinstance(blob_store, LocalBlobStore):
        assert url is None  # the API streams local files itself
        return
    assert url is not None and "X-Amz-Signature=" in url
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b'{"AP": 0.5}'
    assert 'filename="metrics.json"' in response.headers["content-disposition"]


def test_make_blob_store_from_settings(tmp_path: Path, s3_endpoint: str) -> None:
    local = make_blob_store(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalBlobStore) and local.root == (tmp_path / "blobs").resolve()
    local.ping()

    from tests.platform_fixtures import s3_settings

    s3 = make_blob_store(s3_settings(s3_endpoint, "created-by-settings"))
    assert isinstance(s3, S3BlobStore)
    s3.ping()  # the bucket was created
    again = make_blob_store(s3_settings(s3_endpoint, "created-by-settings"))
    again.put_stream("k", io.BytesIO(b"v"))
    assert s3.exists("k")


def test_presigned_urls_name_the_public_endpoint(s3_endpoint: str) -> None:
    from tests.platform_fixtures import s3_settings

    # The API reaches the server as 127.0.0.1, browsers as localhost: sign for the latter.
    public = s3_endpoint.replace("127.0.0.1", "localhost")
    store = make_blob_store(
        s3_settings(s3_endpoint, "public-endpoint", s3_public_endpoint_url=public)
    )
    store.put_stream("student.onnx", io.BytesIO(b"onnx"))
    url = store.presigned_url("student.onnx")
    assert url is not None and url.startswith(f"{public}/public-endpoint/student.onnx?")
    assert httpx.get(url).content == b"onnx"
