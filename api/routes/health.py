"""Liveness (/healthz) and readiness (/readyz: database, broker, blob store)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.schemas import HealthPublic, ReadinessPublic
from store.db import ping

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

PROBE_KEY = "health/probe"
UNAVAILABLE = "unavailable"
BROKER_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=HealthPublic)
def healthz() -> HealthPublic:
    """The process is up (no dependency is checked)."""
    return HealthPublic(status="ok")


def _check_database(request: Request) -> None:
    ping(request.app.state.session_factory)


def _check_broker(request: Request) -> None:
    request.app.state.queue.ping(timeout=BROKER_TIMEOUT_S)


def _check_blobs(request: Request) -> None:
    request.app.state.blobs.exists(PROBE_KEY)


def _readiness(request: Request) -> dict[str, str]:
    checks: dict[str, str] = {}
    for name, check in (
        ("database", _check_database),
        ("broker", _check_broker),
        ("blob_store", _check_blobs),
    ):
        try:
            check(request)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"
            # The details (driver text with hosts and ports) go to the log only: /readyz is
            # unauthenticated and says just which part is down.
            logger.warning("readiness: %s failed: %s: %s", name, type(exc).__name__, exc)
            checks[name] = UNAVAILABLE
    return checks


@router.get(
    "/readyz",
    response_model=ReadinessPublic,
    responses={503: {"model": ReadinessPublic, "description": "a dependency is unavailable"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database, the broker and the blob store answer; 503 names what failed."""
    checks = await run_in_threadpool(_readiness, request)
    ready = all(value == "ok" for value in checks.values())
    body = ReadinessPublic(status="ready" if ready else "unavailable", checks=checks)
    code = status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body.model_dump(), status_code=code)
