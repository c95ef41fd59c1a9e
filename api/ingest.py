"""Turning a received upload into a row + blob + validation task, all or nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from fastapi import Request, status

from api.errors import FieldError, unavailable
from api.queue import QueueUnavailable
from api.uploads import ReceivedUpload, receive_upload
from store.blobs import BlobStore
from store.db import Session
from store.settings import Settings

logger = logging.getLogger(__name__)

NAME_MAX = 200


class NewRow(Protocol):
    """A freshly added row: flushed, it has its id."""

    @property
    def id(self) -> int:
        """The row's primary key."""


RowT = TypeVar("RowT", bound=NewRow)
PublicT = TypeVar("PublicT")


@asynccontextmanager
async def received_file(request: Request, settings: Settings) -> AsyncIterator[ReceivedUpload]:
    """The body's `file` part streamed to a temporary file (capped), removed on leaving."""
    upload = await receive_upload(
        request,
        file_field="file",
        max_bytes=settings.max_upload_bytes,
        tmp_dir=settings.data_dir / "tmp",
    )
    try:
        yield upload
    finally:
        upload.discard()


def check_name(name: str) -> str:
    """`name` itself, or a 422 on the `name` field when it is too long."""
    if len(name) > NAME_MAX:
        raise FieldError(422, ["body", "name"], f"at most {NAME_MAX} characters")
    return name


def require_content(upload: ReceivedUpload, shown_name: str) -> None:
    """422 on the `file` field when the upload is empty."""
    if upload.size == 0:
        raise FieldError(422, ["body", "file"], f"{shown_name!r} is empty")


def unsupported_file(message: str) -> FieldError:
    """415 on the `file` field: its first bytes are not of the kind the route takes."""
    return FieldError(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        ["body", "file"],
        message,
        type="unsupported_file_type",
    )


def commit_upload(
    session: Session,
    blobs: BlobStore,
    upload: ReceivedUpload,
    *,
    key: str,
    enqueue: Callable[[], object],
    undo_row: Callable[[], object],
) -> None:
    """Put the upload at `key`, commit the pending row, then enqueue its validation.

    On any failure nothing stays behind: the blob is deleted and the row rolled back (or,
    when only the broker failed, deleted again) before the error is raised (503 for the
    broker).
    """
    assert upload.path is not None
    try:
        with upload.path.open("rb") as fileobj:
            blobs.put_stream(key, fileobj)
        session.commit()
    except BaseException:
        session.rollback()
        _forget_blob(blobs, key)
        raise
    try:
        enqueue()
    except QueueUnavailable as exc:
        undo_row()
        session.commit()
        _forget_blob(blobs, key)
        raise unavailable(f"{exc}; nothing was stored, try again later") from exc


def commit_new_row(
    session: Session,
    blobs: BlobStore,
    upload: ReceivedUpload,
    row: RowT,
    *,
    key: str,
    public: Callable[[RowT], PublicT],
    enqueue: Callable[[int], object],
    undo_row: Callable[[int], object],
) -> PublicT:
    """`row`'s public shape as added, after `commit_upload` stored it at `key` and queued it.

    The shape is taken before the commit: a worker may validate the row right after it, and
    the answer describes the upload as received.
    """
    session.flush()
    shown = public(row)
    row_id = row.id
    commit_upload(
        session,
        blobs,
        upload,
        key=key,
        enqueue=lambda: enqueue(row_id),
        undo_row=lambda: undo_row(row_id),
    )
    return shown


def _forget_blob(blobs: BlobStore, key: str) -> None:
    try:
        blobs.delete(key)
    except Exception:  # the original error matters more than a failed cleanup
        logger.exception("could not delete blob %s after a failed upload", key)
