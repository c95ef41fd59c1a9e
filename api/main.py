"""The FastAPI application factory: REST API under /api/v1, dashboard at /, docs at /docs."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES

from api.deps import refuse_bad_input
from api.logging_filters import install_access_log_redaction
from api.queue import TaskQueue, make_celery_client
from api.routes import (
    artifacts,
    auth,
    backbones,
    compare,
    datasets,
    events,
    health,
    jobs,
    spec,
    teachers,
)
from api.routes.activity import router as activity_router
from api.routes.predict import router as predict_router
from api.routes.sweeps import router as sweeps_router
from store.blobs import make_blob_store
from store.db import (
    DATABASE_ERRORS,
    is_database_outage,
    make_engine,
    make_read_session_factory,
    make_session_factory,
)
from store.settings import Settings

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

GZIP_MINIMUM_BYTES = 1024
"""Responses from this size on are compressed for clients that accept gzip (not event streams)."""
GZIP_LEVEL = 6

DATABASE_RETRY_AFTER_S = 5
DATABASE_UNAVAILABLE = "the database is unavailable; try again shortly"


def web_dist_dir() -> Path | None:
    """The dashboard's built assets (web/dist), in the repository or the installed package."""
    candidates = [Path(__file__).resolve().parent.parent / "web" / "dist"]
    spec = importlib.util.find_spec("web")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "dist" for p in spec.submodule_search_locations]
    for folder in candidates:
        if (folder / "index.html").is_file():
            return folder
    return None


def api_router() -> APIRouter:
    """Every resource router under one router (mounted at /api/v1), NUL bytes refused."""
    router = APIRouter(dependencies=[Depends(refuse_bad_input)])
    for module in (
        auth, datasets, teachers, backbones, jobs, events, artifacts, compare, spec, health
    ):
        router.include_router(module.router)
    router.include_router(predict_router)
    router.include_router(sweeps_router)
    router.include_router(activity_router)
    return router


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Bugs stay bugs (logged with the traceback), but the client still gets JSON.
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # An outage is the operator's to fix and the client's to retry: 503, no traceback, no
    # driver text (it names hosts and ports). Other database errors stay bugs.
    if not is_database_outage(exc):
        return await _unexpected_error(request, exc)
    logger.warning(
        "database unavailable on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc,
    )
    return JSONResponse(
        {"detail": DATABASE_UNAVAILABLE},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app: engine, session factory, blob store and Celery client live on app.state."""
    settings = settings or Settings()
    install_access_log_redaction()
    engine = make_engine(settings.resolved_database_url)
    session_factory = make_session_factory(engine)
    read_session_factory = make_read_session_factory(engine)
    blobs = make_blob_store(settings)
    queue = TaskQueue(make_celery_client(settings), settings.job_queue)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Release the broker connections and the database pool at shutdown."""
        yield
        queue.close()
        engine.dispose()

    app = FastAPI(
        title="Distillery",
        summary="Hierarchical knowledge distillation for small-object detection, as a service.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.read_session_factory = read_session_factory
    app.state.blobs = blobs
    app.state.queue = queue
    app.add_exception_handler(Exception, _unexpected_error)
    for error in DATABASE_ERRORS:
        app.add_exception_handler(error, _database_error)
    # Job lists and metric series are JSON that compresses 5-10x. Not compressed: the event
    # stream (live progress is not held back), pictures and archives (already compressed)
    # and binary downloads (weights barely shrink; a large one would cost CPU for nothing).
    app.add_middleware(
        GZipMiddleware,
        minimum_size=GZIP_MINIMUM_BYTES,
        compresslevel=GZIP_LEVEL,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/octet-stream"),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "X-Team-Id", "Last-Event-ID"],
        )

    app.include_router(api_router(), prefix=API_PREFIX)
    # Probes at the root as well: orchestrators expect /healthz and /readyz there.
    app.include_router(health.router, include_in_schema=False)

    dist = web_dist_dir()
    if dist is not None:
        # The dashboard uses hash routing, so serving files (index.html at /) is enough.
        app.mount("/", StaticFiles(directory=dist, html=True), name="web")
    else:

        @app.get("/", include_in_schema=False)
        def dashboard_not_built() -> JSONResponse:
            """Where to look when the dashboard's assets were not built."""
            return JSONResponse(
                {
                    "message": "Distillery API. The dashboard is not built (run `make web`).",
                    "api": API_PREFIX,
                    "docs": "/docs",
                }
            )

    return app
