"""Turning a received upload into a row + blob + validation task, all or nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from api.errors import unavailable
from api.queue import QueueUnavailable
from api.uploads import ReceivedUpload
from store.blobs import BlobStore

logger = logging.getLogger(__name__)


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


def _forget_blob(blobs: BlobStore, key: str) -> None:
    try:
        blobs.delete(key)
    except Exception:  # the original error matters more than a failed cleanup
        logger.exception("could not delete blob %s after a failed upload", key)
