"""The Celery app class of the platform: a Celery app that carries its settings."""

from __future__ import annotations

from typing import Any

from celery import Celery

from store.settings import Settings


class DistilleryCelery(Celery):
    """A Celery app that carries the platform settings it was built from."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
