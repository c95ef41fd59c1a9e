"""Steps the routes of uploaded resources (datasets, teachers) share: lookup and delete."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Protocol, TypeVar

from fastapi import Response, status

from api.deps import TeamContext
from api.errors import FieldError, conflict, not_found
from store import repositories as repo
from store.blob_keys import UploadKind, upload_prefix
from store.blobs import BlobStore
from store.db import Session


class Owned(Protocol):
    """A team row with the user who created it."""

    @property
    def created_by(self) -> int | None:
        """The creator's user id (None once that user is gone)."""


RowT = TypeVar("RowT", bound=Owned)


def check_status(status_: str | None, states: Collection[str]) -> None:
    """422 on the `status` query parameter when it names no known state."""
    if status_ is not None and status_ not in states:
        raise FieldError(422, ["query", "status"], f"not one of {', '.join(states)}")


def found(row: RowT | None, resource: str, row_id: int) -> RowT:
    """The row, or a 404 naming `resource` and `row_id`."""
    if row is None:
        raise not_found(resource, row_id)
    return row


def delete_uploaded(
    session: Session,
    blobs: BlobStore,
    team: TeamContext,
    row: Owned,
    *,
    resource: UploadKind,
    row_id: int,
    key: str | None,
    delete_row: Callable[[], object],
) -> Response:
    """Delete the row and its blobs (403 unless allowed, 409 while an unfinished job uses it)."""
    team.require_owner_or_admin(row.created_by, resource)
    uses = {"dataset_id": row_id} if resource == "dataset" else {"teacher_id": row_id}
    busy = repo.unfinished_job_using(session, **uses)
    if busy is not None:
        raise conflict(f"{resource} {row_id} is used by job {busy}, which is not finished")
    delete_row()
    session.commit()
    # After the commit: a blob without a row is garbage, a row without its blob is broken.
    if key:
        blobs.delete(key)
    blobs.delete_prefix(upload_prefix(resource, team.id, row_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
