"""Backbone rows: one validation outcome each, and the watchdog for stale ones."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.db import session_scope
from tests.platform_fixtures import TeamContext


def _row(factory: sessionmaker[Session], team: TeamContext, name: str) -> int:
    with session_scope(factory) as s:
        row = repo.create_backbone(
            s,
            team_id=team.team_id,
            created_by=team.user_id,
            name=name,
            arch="resnet18",
            weights_key=f"backbones/{team.team_id}/{name}/weights.pth",
        )
        return row.id


def test_a_backbone_takes_one_outcome_and_the_watchdog_fails_stale_ones(
    session_factory: sessionmaker[Session], team_factory: Callable[..., TeamContext]
) -> None:
    team = team_factory()
    done, stale, fresh = (_row(session_factory, team, n) for n in ("done", "stale", "fresh"))
    with session_scope(session_factory) as s:
        assert repo.set_backbone_validation(s, backbone_id=done, status="ready") is not None
        # A second delivery (or a late one) changes nothing.
        assert repo.set_backbone_validation(s, backbone_id=done, status="invalid") is None
        row = repo.get_backbone(s, team_id=team.team_id, backbone_id=stale)
        assert row is not None
        row.created_at = datetime.now(UTC) - timedelta(hours=2)
    with session_scope(session_factory) as s:
        failed = repo.fail_stale_backbone_validations(
            s, older_than=datetime.now(UTC) - timedelta(hours=1), message="too slow"
        )
        assert stale in failed and fresh not in failed and done not in failed
        states = {
            b.id: (b.status, b.errors) for b in repo.list_backbones(s, team_id=team.team_id)[0]
        }
    assert states[done] == ("ready", None)
    assert states[stale][0] == "invalid" and states[stale][1][0]["message"] == "too slow"
    assert states[fresh] == ("validating", None)
