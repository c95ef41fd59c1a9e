"""The job row's lease decides which worker runs a job; expired leases are re-queued."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.models import Job, utcnow
from tests.platform_fixtures import TeamContext

# requeue_expired looks at every team's jobs. The tests that let leases expire run their clock
# a year in the past, so that they never touch the jobs of other tests in the same database.
PAST = timedelta(days=365)


def _queued_job(session: Session, team: TeamContext, *, max_attempts: int = 3) -> int:
    job = repo.create_job(
        session,
        team_id=team.team_id,
        created_by=team.user_id,
        kind="distill",
        spec={},
        max_attempts=max_attempts,
    )
    session.commit()
    return job.id


def test_second_claim_is_refused_while_the_lease_lives(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    job_id = _queued_job(session, team_factory())
    now = utcnow()
    job = repo.claim_job(session, job_id=job_id, worker_id="a", lease_seconds=60, now=now)
    assert job is not None
    assert (job.state, job.worker_id, job.attempt) == ("running", "a", 1)
    assert job.lease_expires_at == now + timedelta(seconds=60)
    assert job.started_at == now

    later = now + timedelta(seconds=30)
    assert (
        repo.claim_job(session, job_id=job_id, worker_id="b", lease_seconds=60, now=later) is None
    )
    assert repo.renew_lease(session, job_id=job_id, worker_id="a", lease_seconds=60, now=later)
    assert not repo.renew_lease(session, job_id=job_id, worker_id="b", lease_seconds=60, now=later)
    # Renewed at +30 s for 60 s: still alive at +80 s, taken over after +90 s.
    at_80 = now + timedelta(seconds=80)
    assert (
        repo.claim_job(session, job_id=job_id, worker_id="b", lease_seconds=60, now=at_80) is None
    )

    after = now + timedelta(seconds=91)
    taken = repo.claim_job(session, job_id=job_id, worker_id="b", lease_seconds=60, now=after)
    assert taken is not None and taken.worker_id == "b" and taken.attempt == 2
    assert taken.started_at == now  # the first start is kept
    # The old worker has lost the job: it can neither renew, report nor finish it.
    assert not repo.renew_lease(session, job_id=job_id, worker_id="a", lease_seconds=60, now=after)
    assert not repo.set_progress(session, job_id=job_id, worker_id="a", progress={"step": 1})
    assert not repo.finish_job(session, job_id=job_id, worker_id="a", state="succeeded")

    assert repo.set_progress(session, job_id=job_id, worker_id="b", progress={"step": 2})
    assert repo.set_checkpoint(session, job_id=job_id, worker_id="b", key="jobs/1/last.pt")
    assert repo.finish_job(
        session, job_id=job_id, worker_id="b", state="succeeded", metrics={"AP": 0.5}
    )
    done = repo.job_by_id(session, job_id=job_id)
    assert done is not None
    assert (done.state, done.metrics, done.progress) == ("succeeded", {"AP": 0.5}, {"step": 2})
    assert done.checkpoint_key == "jobs/1/last.pt" and done.finished_at is not None
    # A finished job is never claimed again, even long after.
    far = after + timedelta(days=1)
    assert repo.claim_job(session, job_id=job_id, worker_id="c", lease_seconds=60, now=far) is None


def test_requeue_expired_requeues_then_fails_after_max_attempts(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    job_id = _queued_job(session, team, max_attempts=2)
    live_id = _queued_job(session, team)
    t0 = utcnow() - PAST
    assert repo.claim_job(session, job_id=live_id, worker_id="w", lease_seconds=3600, now=t0)

    assert repo.claim_job(session, job_id=job_id, worker_id="w1", lease_seconds=10, now=t0)
    assert repo.requeue_expired(session, now=t0 + timedelta(seconds=5)) == []
    assert repo.requeue_expired(session, now=t0 + timedelta(seconds=11)) == [job_id]
    job = repo.job_by_id(session, job_id=job_id)
    assert job is not None and job.state == "queued" and job.worker_id is None

    t1 = t0 + timedelta(seconds=20)
    job = repo.claim_job(session, job_id=job_id, worker_id="w2", lease_seconds=10, now=t1)
    assert job is not None and job.attempt == 2
    assert repo.requeue_expired(session, now=t1 + timedelta(seconds=11)) == []
    job = repo.job_by_id(session, job_id=job_id)
    assert job is not None and job.state == "failed"
    assert job.error is not None and "w2" in job.error and "2 of 2" in job.error

    # A job still queued long after it was sent may have lost its broker message.
    fresh_id = _queued_job(session, team)
    stale = repo.stale_queued_jobs(session, older_than=utcnow() + timedelta(minutes=1))
    assert fresh_id in stale and job_id not in stale and live_id not in stale
    assert fresh_id not in repo.stale_queued_jobs(session, older_than=t0)

    live = repo.job_by_id(session, job_id=live_id)
    assert live is not None and live.state == "running"
    # Leave nothing running: another test's reaper would re-queue it.
    assert repo.finish_job(session, job_id=live_id, worker_id="w", state="canceled")
    repo.request_cancel(session, team_id=team.team_id, job_id=fresh_id)
    session.commit()
    messages = [e.message for e in repo.list_events(session, job_id=job_id)]
    assert any(m.startswith("Re-queued") for m in messages)
    assert messages[-1].startswith("Job failed")


def test_expired_job_with_cancel_requested_ends_canceled(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    job_id = _queued_job(session, team)
    t0 = utcnow() - PAST
    assert repo.claim_job(session, job_id=job_id, worker_id="w", lease_seconds=10, now=t0)
    repo.request_cancel(session, team_id=team.team_id, job_id=job_id)
    session.commit()
    assert repo.cancel_requested(session, job_id=job_id)
    assert repo.requeue_expired(session, now=t0 + timedelta(seconds=11)) == []
    job = repo.job_by_id(session, job_id=job_id)
    assert job is not None and job.state == "canceled"


def test_concurrent_claims_exactly_one_wins(
    team_factory: Callable[..., TeamContext],
    session: Session,
    session_factory: sessionmaker[Session],
) -> None:
    team = team_factory()
    job_ids = [_queued_job(session, team) for _ in range(4)]
    workers = 2
    wins: dict[int, list[str]] = {job_id: [] for job_id in job_ids}
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers)

    def claim_all(worker_id: str) -> None:
        try:
            with session_factory() as s:
                for job_id in job_ids:
                    barrier.wait(timeout=30)
                    job = repo.claim_job(s, job_id=job_id, worker_id=worker_id, lease_seconds=60)
                    if job is not None:
                        wins[job_id].append(worker_id)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert all(len(winners) == 1 for winners in wins.values()), wins
    session.expire_all()
    for job_id, winners in wins.items():
        job = session.get(Job, job_id)
        assert job is not None and job.worker_id == winners[0] and job.attempt == 1
        # Leave nothing running: another test's reaper would re-queue it.
        assert repo.finish_job(session, job_id=job_id, worker_id=winners[0], state="canceled")
