"""The Celery app's configuration: reliability options, queues, brokers and the fast transport."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from kombu import Connection

from store.broker import (
    FastSqlAlchemyTransport,
    RaceSafeChannel,
    broker_url_for,
    register_fast_sqla_transport,
)
from store.settings import Settings
from worker.celery_app import (
    TASK_REQUEUE_EXPIRED,
    TASK_RUN_JOB,
    TASK_VALIDATE_DATASET,
    TASK_VALIDATE_TEACHER,
    VISIBILITY_TIMEOUT_S,
    make_celery,
)
from worker.reaper import ReaperStep


def test_long_jobs_are_acked_late_one_at_a_time(tmp_path: Path) -> None:
    app = make_celery(Settings(data_dir=tmp_path))
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1 and conf.worker_concurrency == 1
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    names = {TASK_RUN_JOB, TASK_VALIDATE_DATASET, TASK_VALIDATE_TEACHER, TASK_REQUEUE_EXPIRED}
    assert names <= set(app.tasks)
    assert ReaperStep in app.steps["worker"]


def test_jobs_and_validations_have_their_own_queues(tmp_path: Path) -> None:
    app = make_celery(Settings(data_dir=tmp_path, job_queue="gpu-a100"))
    queues = {q.name for q in app.conf.task_queues}
    assert queues == {"gpu-a100", "default"}
    assert app.conf.task_routes[TASK_RUN_JOB]["queue"] == "gpu-a100"
    assert app.conf.task_routes[TASK_VALIDATE_DATASET]["queue"] == "default"
    assert app.amqp.router.route({}, TASK_RUN_JOB)["queue"].name == "gpu-a100"


def test_validations_are_time_limited_by_the_watchdog_bound(tmp_path: Path) -> None:
    app = make_celery(Settings(data_dir=tmp_path, validation_timeout_seconds=120))
    for name in (TASK_VALIDATE_DATASET, TASK_VALIDATE_TEACHER):
        task = app.tasks[name]
        assert task.soft_time_limit == 120 and task.time_limit == 180
    assert app.tasks[TASK_RUN_JOB].time_limit == app.conf.task_time_limit  # a day, not 3 min


def test_redis_time_limit_stays_below_the_visibility_timeout(tmp_path: Path) -> None:
    app = make_celery(Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/3"))
    options = app.conf.broker_transport_options
    assert options["visibility_timeout"] == VISIBILITY_TIMEOUT_S
    assert app.conf.task_time_limit < options["visibility_timeout"]
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit


def test_embedded_broker_polls_fast_and_passes_no_engine_options(tmp_path: Path) -> None:
    app = make_celery(Settings(data_dir=tmp_path / "new"))
    # Every transport option of the SQL transport would go to create_engine and crash it.
    assert app.conf.broker_transport_options == {}
    assert (tmp_path / "new").is_dir()
    with Connection(app.conf.broker_url) as conn:
        transport = conn.transport
        assert isinstance(transport, FastSqlAlchemyTransport)
        assert transport.polling_interval == 0.1
        # The serverless broker really carries a message.
        queue = conn.SimpleQueue("probe")
        queue.put({"n": 1})
        message = queue.get(timeout=5)
        assert message.payload == {"n": 1}
        message.ack()
        queue.close()


def _declare_queues(url: str, names: list[str], barrier: Any, errors: Any) -> None:
    register_fast_sqla_transport()
    try:
        with Connection(url) as conn:
            channel = conn.default_channel
            assert isinstance(channel, RaceSafeChannel)
            barrier.wait(timeout=30)
            for name in names:
                channel.queue_declare(queue=name)
    except Exception as exc:  # reported to the parent, which asserts there was none
        errors.put(repr(exc))


def test_processes_declaring_the_same_queues_at_once_all_survive(tmp_path: Path) -> None:
    # The API and a worker (or two workers) starting together declare the same queues; kombu's
    # own SQL channel lets the loser of that INSERT race die of an IntegrityError.
    url = broker_url_for(Settings(data_dir=tmp_path))
    names = [f"q{i}" for i in range(40)]
    context = multiprocessing.get_context("fork")
    barrier, errors = context.Barrier(3), context.Queue()
    procs = [
        context.Process(target=_declare_queues, args=(url, names, barrier, errors))
        for _ in range(3)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    found = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert found == []
    assert [proc.exitcode for proc in procs] == [0, 0, 0]


def _open_session(url: str, barrier: Any, errors: Any) -> None:
    register_fast_sqla_transport()
    try:
        with Connection(url) as conn:
            channel = conn.default_channel
            barrier.wait(timeout=30)
            assert channel.session is not None  # creates the broker's tables
    except Exception as exc:  # reported to the parent, which asserts there was none
        errors.put(repr(exc))


def test_processes_opening_a_fresh_broker_at_once_all_survive(tmp_path: Path) -> None:
    # kombu's create_all checks, then creates each table: of processes opening a fresh SQLite
    # broker together, the losers died of "table kombu_message already exists" (3 in 4 rounds
    # of 4 processes before the retry; it failed CI once).
    context = multiprocessing.get_context("fork")
    found: list[str] = []
    for round_ in range(5):
        url = broker_url_for(Settings(data_dir=tmp_path / f"round{round_}"))
        barrier, errors = context.Barrier(4), context.Queue()
        procs = [
            context.Process(target=_open_session, args=(url, barrier, errors)) for _ in range(4)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=60)
        found += [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
        assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    assert found == []
