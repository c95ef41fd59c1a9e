"""The job list's page in one statement: rows, the filter's total, e-mails and the next key."""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

from core.spec_summary import spec_summary
from store import repositories as repo
from store.models import Job
from tests.platform_fixtures import TeamContext

SPEC = {"kind": "distill", "data": {"dataset_id": 1}}


def test_a_page_is_one_statement_with_total_emails_and_next_key(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team, other = team_factory(), team_factory()
    colleague = team.add_member("member")
    ids = [
        repo.create_job(
            session,
            team_id=team.team_id,
            created_by=colleague.user_id if i == 4 else team.user_id,
            kind="teacher" if i == 0 else "distill",
            spec=SPEC,
            name=f"run {i}",
        ).id
        for i in range(5)
    ]
    repo.create_job(
        session,
        team_id=other.team_id,
        created_by=other.user_id,
        kind="distill",
        spec=SPEC,
        name="theirs",
    )
    session.commit()
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", count)
    try:
        first = repo.job_page(session, team_id=team.team_id, limit=2)
    finally:
        event.remove(bind, "before_cursor_execute", count)
    assert len(statements) == 1
    assert [r.id for r in first.rows] == [ids[4], ids[3]] and first.total == 5
    assert first.rows[0].creator_email == colleague.email
    assert first.rows[1].creator_email == team.email
    # The stored summary, not the spec, unless a row has none (written before revision 0007).
    assert json.loads(first.rows[1].summary_json or "") == spec_summary("distill", SPEC)
    assert first.rows[1].spec_json is None and first.rows[1].metrics_json is None
    assert first.next_after == (first.rows[1].created_at, ids[3])
    job = session.get(Job, ids[3])
    assert job is not None
    job.summary = None
    session.commit()
    old = repo.job_page(session, team_id=team.team_id, limit=2).rows[1]
    assert old.summary_json is None and json.loads(old.spec_json or "") == SPEC

    second = repo.job_page(session, team_id=team.team_id, limit=2, after=first.next_after)
    assert [r.id for r in second.rows] == [ids[2], ids[1]] and second.total == 5
    last = repo.job_page(session, team_id=team.team_id, limit=2, after=second.next_after)
    assert [r.id for r in last.rows] == [ids[0]] and last.next_after is None

    assert repo.job_page(session, team_id=team.team_id, limit=3, offset=3).next_after is None
    empty = repo.job_page(session, team_id=team.team_id, offset=50)
    assert (empty.rows, empty.total, empty.next_after) == ([], 5, None)
    nothing = repo.job_page(session, team_id=team.team_id, kind="evaluate")
    assert (nothing.rows, nothing.total) == ([], 0)
    teachers = repo.job_page(session, team_id=team.team_id, kind="teacher", q="RUN")
    assert [r.id for r in teachers.rows] == [ids[0]] and teachers.total == 1
    mine = repo.job_page(session, team_id=team.team_id, created_by=colleague.user_id)
    assert [r.id for r in mine.rows] == [ids[4]]


def test_the_unfiltered_total_is_the_count_kept_with_every_create_and_delete(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team, other = team_factory(), team_factory()

    def add(owner: TeamContext, name: str) -> int:
        return repo.create_job(
            session,
            team_id=owner.team_id,
            created_by=owner.user_id,
            kind="distill",
            spec=SPEC,
            name=name,
        ).id

    ids = [add(team, f"run {i}") for i in range(4)]
    add(other, "theirs")
    session.commit()
    repo.delete_job(session, team_id=team.team_id, job_id=ids[1])
    session.commit()
    page = repo.job_page(session, team_id=team.team_id, limit=2)
    assert page.total == 3 and [r.id for r in page.rows] == [ids[3], ids[2]]
    assert repo.job_page(session, team_id=other.team_id).total == 1
    # A filter still counts its rows; without one, the team's kept count is the total.
    assert repo.job_page(session, team_id=team.team_id, q="run 3").total == 1
    # Rows written around create_job (a bulk load) are counted once recount_jobs runs.
    extra = Job(team_id=team.team_id, kind="distill", spec=SPEC, name="bulk", state="queued")
    session.add(extra)
    session.commit()
    assert repo.job_page(session, team_id=team.team_id).total == 3
    assert repo.recount_jobs(session, team_id=team.team_id) == 4
    session.commit()
    assert repo.job_page(session, team_id=team.team_id).total == 4
