"""A team's history: who submitted, canceled and uploaded what; members; the creator filter."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from store import repositories as repo
from tests.platform_fixtures import TeamContext


def test_activity_by_user_is_team_scoped_and_newest_first(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team, rival = team_factory(), team_factory()
    other = repo.create_user(session, email="grace-activity@example.test", name="Grace")
    repo.add_member(session, team_id=team.team_id, user_id=other.id, role="member")
    mine = repo.create_job(
        session, team_id=team.team_id, created_by=team.user_id, kind="distill", spec={},
        name="mine",
    )  # fmt: skip
    dataset = repo.create_dataset(
        session, team_id=team.team_id, created_by=other.id, name="drones", archive_key="k",
        size_bytes=1,
    )  # fmt: skip
    theirs = repo.create_job(
        session, team_id=team.team_id, created_by=other.id, kind="teacher", spec={},
        name="theirs",
    )  # fmt: skip
    repo.create_job(
        session, team_id=rival.team_id, created_by=rival.user_id, kind="distill", spec={},
        name="rival",
    )  # fmt: skip
    # Grace cancels the job I submitted.
    repo.request_cancel(session, team_id=team.team_id, job_id=mine.id)
    repo.record_cancel(session, job_id=mine.id, email=other.email)
    session.commit()

    entries = repo.team_activity(session, team_id=team.team_id)
    seen = [(e.action, e.subject, e.subject_id, e.user_id) for e in entries]
    assert seen == [
        ("canceled", "job", mine.id, other.id),
        ("submitted", "job", theirs.id, other.id),
        ("uploaded_dataset", "dataset", dataset.id, other.id),
        ("submitted", "job", mine.id, team.user_id),
    ]
    assert all(e.subject_name != "rival" for e in entries)
    graces = repo.team_activity(session, team_id=team.team_id, user_id=other.id)
    assert [e.action for e in graces] == ["canceled", "submitted", "uploaded_dataset"]
    mine_only = repo.team_activity(session, team_id=team.team_id, user_id=team.user_id)
    assert [(e.action, e.subject_id) for e in mine_only] == [("submitted", mine.id)]
    assert len(repo.team_activity(session, team_id=team.team_id, limit=2)) == 2
    assert repo.team_activity(session, team_id=rival.team_id, user_id=other.id) == []
    members = repo.team_members(session, team_id=team.team_id)
    assert {m.user_id for m in members} == {team.user_id, other.id}
    # The job list's creator filter (server-side): only Grace's job.
    page = repo.job_page(session, team_id=team.team_id, created_by=other.id, limit=10)
    assert [row.id for row in page.rows] == [theirs.id]
