"""Blob stores for archives, checkpoints and artifacts: a local folder and S3, one protocol.

Files are streamed in chunks, never read whole into memory. Keys are relative, '/'-separated
paths (`datasets/7/archive.zip`); a key that could escape the store is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    from store.settings import Settings

CHUNK_SIZE = 1024 * 1024
MULTIPART_CHUNK_SIZE = 8 * 1024 * 1024


class BlobKeyError(ValueError):
    """A blob key that is empty, absolute or climbs out of the store."""


class BlobNotFound(FileNotFoundError):
    """No blob under this key."""


def validate_key(key: str, *, prefix: bool = False) -> str:
    """`key` if it is a safe relative key (a prefix may end with '/'); raises BlobKeyError."""
    if not isinstance(key, str) or not key:
        raise BlobKeyError("blob key: empty")
    if "\x00" in key or "\\" in key:
        raise BlobKeyError(f"blob key {key!r}: NUL or backslash")
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        raise BlobKeyError(f"blob key {key!r}: absolute path")
    parts = key[:-1].split("/") if prefix and key.endswith("/") else key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BlobKeyError(f"blob key {key!r}: empty, '.' or '..' segment")
    return key


@runtime_checkable
class BlobStore(Protocol):
    """Where the platform keeps its files; keys are relative '/'-separated paths."""

    def put_file(self, key: str, path: Path) -> int:
        """Store the file at `path` under `key`; its size in bytes."""
        ...

    def put_stream(self, key: str, fileobj: BinaryIO) -> int:
        """Store everything read from `fileobj` under `key`, chunk by chunk; the bytes stored."""
        ...

    def open_stream(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The blob's bytes in chunks; raises BlobNotFound at once when it does not exist."""
        ...

    def download(self, key: str, path: Path) -> Path:
        """Copy the blob to `path` (written atomically); `path`."""
        ...

    def exists(self, key: str) -> bool:
        """Whether a blob exists under `key`."""
        ...

    def size(self, key: str) -> int:
        """The blob's size in bytes; raises BlobNotFound."""
        ...

    def delete(self, key: str) -> None:
        """Delete the blob (nothing happens when it does not exist)."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with `prefix`; how many were deleted."""
        ...

    def presigned_url(
        self, key: str, *, expires: int = 3600, filename: str | None = None
    ) -> str | None:
        """A time-limited download URL, or None when the store cannot make one (local)."""
        ...

    def ping(self) -> None:
        """Raise when the store is unreachable (for readiness checks)."""
        ...


class LocalBlobStore:
    """Blobs as files under a root folder; writes go to a temporary file renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        """The file that holds `key` (it may not exist); raises BlobKeyError for unsafe keys."""
        path = (self.root / validate_key(key)).resolve()
        # validate_key already refuses '..'; this also catches a symlink inside the root.
        if not path.is_relative_to(self.root) or path == self.root:
            raise BlobKeyError(f"blob key {key!r}: outside the store")
        return path

    def put_file(self, key: str, path: Path) -> int:
        """Store the file at `path` under `key`; its size in bytes."""
        with open(path, "rb") as fileobj:
            return self.put_stream(key, fileobj)

    def put_stream(self, key: str, fileobj: BinaryIO) -> int:
        """Store everything read from `fileobj` under `key`, chunk by chunk; the bytes stored."""
        target = self.path_for(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := fileobj.read(CHUNK_SIZE):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            # A reader sees either the old blob or the whole new one, never a partial file.
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return written

    def open_stream(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The blob's bytes in chunks; raises BlobNotFound at once when it does not exist."""
        path = self.path_for(key)
        try:
            fileobj = open(path, "rb")  # noqa: SIM115 - closed by the generator below
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise BlobNotFound(key) from exc
        return _iter_file(fileobj, chunk_size)

    def download(self, key: str, path: Path) -> Path:
        """Copy the blob to `path` (written atomically); `path`."""
        source = self.path_for(key)
        if not source.is_file():
            raise BlobNotFound(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK_SIZE)
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return path

    def exists(self, key: str) -> bool:
        """Whether a blob exists under `key`."""
        return self.path_for(key).is_file()

    def size(self, key: str) -> int:
        """The blob's size in bytes; raises BlobNotFound."""
        path = self.path_for(key)
        if not path.is_file():
            raise BlobNotFound(key)
        return path.stat().st_size

    def delete(self, key: str) -> None:
        """Delete the blob (nothing happens when it does not exist)."""
        path = self.path_for(key)
        if not path.is_dir():  # a folder is a prefix, not a blob: see delete_prefix
            path.unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with `prefix`; how many were deleted."""
        validate_key(prefix, prefix=True)
        # Keys match as strings, like S3 ("jobs/1" also matches "jobs/12/x"). Only the entries
        # of the prefix's folder whose name starts with its last segment are walked.
        folder, _, stem = prefix.rstrip("/").rpartition("/")
        parent = self.root / folder
        if not parent.is_dir():
            return 0
        deleted = 0
        for entry in parent.iterdir():
            rel = entry.relative_to(self.root).as_posix()
            if not entry.name.startswith(stem):
                continue
            if entry.is_file():
                if rel.startswith(prefix) and not entry.name.startswith(".upload-"):
                    entry.unlink(missing_ok=True)
                    deleted += 1
                continue
            if not (rel + "/").startswith(prefix) and not rel.startswith(prefix):
                continue
            for path in entry.rglob("*"):
                if path.is_file() and not path.name.startswith(".upload-"):
                    path.unlink(missing_ok=True)
                    deleted += 1
            # Deepest folders first, so that each is empty when its turn comes.
            folders = sorted(
                (d for d in entry.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)
            )
            for directory in [*folders, entry]:
                with contextlib.suppress(OSError):  # an upload in progress still lives there
                    directory.rmdir()
        return deleted

    def presigned_url(
        self, key: str, *, expires: int = 3600, filename: str | None = None
    ) -> str | None:
        """None: a local folder has no URLs; the API streams the file itself."""
        validate_key(key)
        return None

    def ping(self) -> None:
        """Raise when the root folder is not a writable directory."""
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise OSError(f"blob root {self.root} is not a writable folder")


def _iter_file(fileobj: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    with fileobj:
        while chunk := fileobj.read(chunk_size):
            yield chunk


class _CountingReader:
    """A read-only file wrapper that counts the bytes handed out."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._fileobj = fileobj
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        """Read from the wrapped file and count."""
        data = self._fileobj.read(size)
        self.count += len(data)
        return data


class S3BlobStore:
    """Blobs as objects of one S3 bucket (AWS, MinIO, ...) through a boto3 client."""

    def __init__(self, bucket: str, client: Any, *, presign_client: Any | None = None) -> None:
        self.bucket = bucket
        self.client = client
        # Browsers may reach the store by another host than the API does (MinIO inside
        # compose): a SigV4 signature covers the host, so URLs are signed for the public one.
        self.presign_client = presign_client or client

    def __repr__(self) -> str:
        return f"S3BlobStore({self.bucket!r})"

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        # Multipart above 8 MiB: memory stays at a few chunks whatever the file size.
        return TransferConfig(
            multipart_threshold=MULTIPART_CHUNK_SIZE,
            multipart_chunksize=MULTIPART_CHUNK_SIZE,
            max_concurrency=4,
        )

    def put_file(self, key: str, path: Path) -> int:
        """Store the file at `path` under `key`; its size in bytes."""
        self.client.upload_file(
            str(path), self.bucket, validate_key(key), Config=self._transfer_config()
        )
        return Path(path).stat().st_size

    def put_stream(self, key: str, fileobj: BinaryIO) -> int:
        """Store everything read from `fileobj` under `key` (multipart); the bytes stored."""
        reader = _CountingReader(fileobj)
        self.client.upload_fileobj(
            reader, self.bucket, validate_key(key), Config=self._transfer_config()
        )
        return reader.count

    def open_stream(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The blob's bytes in chunks; raises BlobNotFound at once when it does not exist."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=validate_key(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise BlobNotFound(key) from exc
        return _iter_body(response["Body"], chunk_size)

    def download(self, key: str, path: Path) -> Path:
        """Copy the blob to `path` (written atomically); `path`."""
        if not self.exists(key):
            raise BlobNotFound(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=path.parent)
        os.close(fd)
        try:
            self.client.download_file(
                self.bucket, validate_key(key), tmp_name, Config=self._transfer_config()
            )
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return path

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=validate_key(key)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head

    def exists(self, key: str) -> bool:
        """Whether a blob exists under `key`."""
        return self._head(key) is not None

    def size(self, key: str) -> int:
        """The blob's size in bytes; raises BlobNotFound."""
        head = self._head(key)
        if head is None:
            raise BlobNotFound(key)
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        """Delete the blob (nothing happens when it does not exist)."""
        self.client.delete_object(Bucket=self.bucket, Key=validate_key(key))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with `prefix`; how many were deleted."""
        validate_key(prefix, prefix=True)
        paginator = self.client.get_paginator("list_objects_v2")
        deleted = 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if objects:
                # A page holds at most 1000 keys, the limit of one delete_objects call.
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
                deleted += len(objects)
        return deleted

    def presigned_url(
        self, key: str, *, expires: int = 3600, filename: str | None = None
    ) -> str | None:
        """A presigned GET URL valid for `expires` seconds (optionally naming the download)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": validate_key(key)}
        if filename:
            safe = filename.replace('"', "")
            params["ResponseContentDisposition"] = f'attachment; filename="{safe}"'
        url: str = self.presign_client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires
        )
        return url

    def ping(self) -> None:
        """Raise when the bucket cannot be reached."""
        self.client.head_bucket(Bucket=self.bucket)

    def ensure_bucket(self, *, region: str = "us-east-1") -> None:
        """Create the bucket when it does not exist yet."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region != "us-east-1":  # S3 refuses an explicit us-east-1 location constraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        # Another process may create it between our check and this call.
        with contextlib.suppress(self.client.exceptions.BucketAlreadyOwnedByYou):
            self.client.create_bucket(**kwargs)


def _iter_body(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


def make_s3_client(
    *,
    endpoint_url: str | None,
    region: str,
    access_key: str | None,
    secret_key: str | None,
) -> Any:
    """A boto3 S3 client with path-style addressing and SigV4 (what MinIO and moto expect)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def make_blob_store(settings: Settings) -> BlobStore:
    """The blob store the settings describe; an S3 bucket is created when missing."""
    if settings.blob_backend == "local":
        return LocalBlobStore(settings.resolved_blob_root)
    client = make_s3_client(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
    )
    presign_client = None
    if settings.s3_public_endpoint_url:
        presign_client = make_s3_client(
            endpoint_url=settings.s3_public_endpoint_url,
            region=settings.s3_region,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
        )
    store = S3BlobStore(settings.s3_bucket, client, presign_client=presign_client)
    store.ensure_bucket(region=settings.s3_region)
    return store
