"""Backbone weights: uploads a spec picks by id (`backbone_id`), with a validation status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from store.models import Backbone
from store.repositories.common import affected_rows, like_pattern, paged, scoped


def create_backbone(
    session: Session,
    *,
    team_id: int,
    created_by: int | None,
    name: str,
    arch: str,
    weights_key: str | None,
    size_bytes: int = 0,
    sha256: str = "",
    info: dict[str, Any] | None = None,
) -> Backbone:
    """A new backbone row, `validating` until a worker has loaded its weights."""
    backbone = Backbone(
        team_id=team_id,
        created_by=created_by,
        name=name,
        arch=arch,
        status="validating",
        weights_key=weights_key,
        size_bytes=size_bytes,
        sha256=sha256,
        info=info,
    )
    session.add(backbone)
    session.flush()
    return backbone


def get_backbone(session: Session, *, team_id: int, backbone_id: int) -> Backbone | None:
    """The team's backbone with this id, or None (also for another team's backbone)."""
    stmt = scoped(select(Backbone).where(Backbone.id == backbone_id), Backbone, team_id)
    return session.scalars(stmt).first()


def list_backbones(
    session: Session,
    *,
    team_id: int,
    status: str | None = None,
    arch: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Backbone], int]:
    """A page of the team's backbones, newest first, and the total count."""
    stmt = scoped(select(Backbone), Backbone, team_id)
    if status is not None:
        stmt = stmt.where(Backbone.status == status)
    if arch is not None:
        stmt = stmt.where(Backbone.arch == arch)
    if q:
        stmt = stmt.where(Backbone.name.ilike(like_pattern(q), escape="\\"))
    return paged(session, stmt, (Backbone.created_at.desc(), Backbone.id.desc()), limit, offset)


def backbone_by_id(session: Session, *, backbone_id: int) -> Backbone | None:
    """A backbone by id whatever its team: for workers, which act for the team that queued it."""
    return session.get(Backbone, backbone_id, populate_existing=True)


def set_backbone_validation(
    session: Session,
    *,
    backbone_id: int,
    status: str,
    errors: list[Any] | None = None,
    info: dict[str, Any] | None = None,
    force: bool = False,
) -> Backbone | None:
    """Record the outcome of checking backbone weights; None if not recorded.

    Only a backbone still `validating` takes it (one conditional UPDATE: a late validation or
    a second delivery changes nothing), unless `force` (an operator's correction).
    """
    condition = [Backbone.id == backbone_id]
    if not force:
        condition.append(Backbone.status == "validating")
    result = session.execute(
        update(Backbone)
        .where(*condition)
        .values(status=status, errors=errors, info=info)
        .execution_options(synchronize_session=False)
    )
    if not affected_rows(result):
        return None
    return session.get(Backbone, backbone_id, populate_existing=True)


def delete_backbone(session: Session, *, team_id: int, backbone_id: int) -> Backbone | None:
    """Delete the team's backbone; its row or None."""
    row = get_backbone(session, team_id=team_id, backbone_id=backbone_id)
    if row is not None:
        session.delete(row)
        session.flush()
    return row


def fail_stale_backbone_validations(
    session: Session, *, older_than: datetime, message: str
) -> list[int]:
    """Mark invalid (with `message`) the backbones still validating since before `older_than`.

    The watchdog's share for backbones (as `fail_stale_validations` for datasets and
    teachers): one conditional UPDATE, then a commit. Returns the ids failed.
    """
    errors = [{"file": None, "image_id": None, "annotation_id": None, "message": message}]
    ids = session.scalars(
        update(Backbone)
        .where(Backbone.status == "validating", Backbone.created_at < older_than)
        .values(status="invalid", errors=errors)
        .returning(Backbone.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    for row_id in ids:  # bulk UPDATEs bypass the identity map: loaded rows must reload
        row = session.identity_map.get(identity_key(Backbone, row_id))
        if row is not None:
            session.expire(row)
    return sorted(ids)
