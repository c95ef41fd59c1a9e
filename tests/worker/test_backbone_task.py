"""The worker's backbone check: a named task on the validation queue, with its time limits."""

from __future__ import annotations

from pathlib import Path

from store.broker import TASK_VALIDATE_BACKBONE, VALIDATION_QUEUE
from store.settings import Settings
from worker.celery_app import make_celery


def test_the_worker_registers_the_backbone_check_on_the_validation_queue(tmp_path: Path) -> None:
    app = make_celery(Settings(data_dir=tmp_path))
    assert TASK_VALIDATE_BACKBONE in app.tasks
    assert app.conf.task_routes[TASK_VALIDATE_BACKBONE] == {"queue": VALIDATION_QUEUE}
    assert TASK_VALIDATE_BACKBONE in app.conf.task_annotations
