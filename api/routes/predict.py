"""`POST /jobs/{id}/predict`: one uploaded image through a finished job's student.

The image streams to a temporary file (capped at PREDICT_MAX_BYTES or the upload limit,
whichever is smaller), is recognised by its first bytes (415 otherwise), decoded within a
pixel bound (422 otherwise) and run by the student's ONNX (api/predictors.py); the answer
holds COCO results records with the dataset's category ids. Any member of the team may ask,
viewers too: nothing is stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePath

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.bounds import MAX_ID
from api.deps import BlobsDep, CurrentTeam, RowId, SessionDep, SettingsDep
from api.errors import FieldError, conflict, not_found
from api.ingest import require_content, unsupported_file
from api.predictors import StoredFile, StudentCache, StudentFiles, StudentLoadError, load_student
from api.routes.jobs import team_job
from api.uploads import multipart_openapi, receive_upload
from core.predict.errors import PredictError
from core.predict.images import IMAGE_FORMATS, MAX_PIXELS, open_image, sniff_image
from core.predict.results import categories_of, coco_records
from core.predict.slicing import SliceOptions, tile_windows
from store import repositories as repo
from store.blobs import BlobNotFound, BlobStore
from store.db import Session

router = APIRouter(prefix="/jobs", tags=["predict"])

PREDICT_MAX_BYTES = 32 * 1024 * 1024
"""Largest image upload (bytes); the server's max_upload_bytes when that is smaller."""

MAX_TILES = 64
"""Most tiles one sliced request may cut the image into."""

CONCURRENT_PREDICTIONS = 2
"""Predictions running at once in this process (each on api.predictors.ONNX_THREADS)."""

_UPLOAD_DOC = multipart_openapi(
    "file",
    {
        "score_threshold": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "max_detections": {"type": "integer", "minimum": 1, "maximum": 1000},
        "slice": {"type": "integer", "minimum": 16, "description": "tile size: sliced inference"},
        "overlap": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.2},
        "image_id": {"type": "integer", "minimum": 1, "default": 1},
    },
)


class DetectionPublic(BaseModel):
    """One detection as a COCO results record."""

    image_id: int
    file_name: str
    category_id: int
    bbox: list[float]  # x, y, width, height in the image's pixels
    score: float


class CategoryPublic(BaseModel):
    """A class of the model: the dataset's category id and name."""

    id: int
    name: str


class PredictionPublic(BaseModel):
    """The student's detections on one image."""

    data: list[DetectionPublic]
    count: int
    width: int
    height: int
    categories: list[CategoryPublic]


@dataclass(frozen=True)
class PredictParams:
    """The form fields beside the file."""

    score_threshold: float | None = None
    max_detections: int | None = None
    slicing: SliceOptions | None = None
    image_id: int = 1


def _number(fields: dict[str, str], name: str, *, integer: bool, low: float, high: float,
            high_open: bool = False) -> float | None:  # fmt: skip
    raw = fields.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise FieldError(422, ["body", name], f"{raw!r} is not {kind}") from None
    above = value >= high if high_open else value > high
    if math.isnan(value) or value < low or above:
        bound = f"below {high}" if high_open else f"at most {high:g}"
        raise FieldError(422, ["body", name], f"{raw} must be at least {low:g} and {bound}")
    return value


def predict_params(fields: dict[str, str]) -> PredictParams:
    """The form fields, each checked (422 naming the field)."""
    score = _number(fields, "score_threshold", integer=False, low=0, high=1, high_open=True)
    most = _number(fields, "max_detections", integer=True, low=1, high=1000)
    size = _number(fields, "slice", integer=True, low=16, high=MAX_ID)
    overlap = _number(fields, "overlap", integer=False, low=0, high=1, high_open=True)
    image_id = _number(fields, "image_id", integer=True, low=1, high=MAX_ID)
    if overlap is not None and size is None:
        raise FieldError(422, ["body", "overlap"], "overlap needs a slice size (field slice)")
    slicing = None
    if size is not None:
        slicing = SliceOptions(size=int(size), overlap=0.2 if overlap is None else overlap)
    return PredictParams(
        score_threshold=score,
        max_detections=None if most is None else int(most),
        slicing=slicing,
        image_id=1 if image_id is None else int(image_id),
    )


def student_files(session: Session, team_id: int, job_id: int) -> StudentFiles:
    """The team's job's student files: 404 for no such job, 409 while it has no student."""
    job = team_job(session, team_id, job_id)
    artifacts = {a.kind: a for a in repo.list_artifacts(session, team_id=team_id, job_id=job_id)}
    onnx, weights = artifacts.get("student_onnx"), artifacts.get("student_safetensors")
    if job.state != "succeeded" or onnx is None or weights is None:
        raise conflict(
            f"job {job_id} has no student to predict with yet (a {job.kind} job, "
            f"state {job.state}); a finished distill job has one"
        )
    return StudentFiles(job_id=job_id, onnx=StoredFile.of(onnx), weights=StoredFile.of(weights))


def _cache(request: Request) -> StudentCache:
    state = request.app.state
    if getattr(state, "student_cache", None) is None:
        state.student_cache = StudentCache()
    cache: StudentCache = state.student_cache
    return cache


def _limiter(request: Request) -> anyio.CapacityLimiter:
    state = request.app.state
    if getattr(state, "predict_limiter", None) is None:
        state.predict_limiter = anyio.CapacityLimiter(CONCURRENT_PREDICTIONS)
    limiter: anyio.CapacityLimiter = state.predict_limiter
    return limiter


def run_prediction(
    cache: StudentCache,
    blobs: BlobStore,
    files: StudentFiles,
    image_path: Path,
    file_name: str,
    params: PredictParams,
) -> PredictionPublic:
    """Decode the image, load (or reuse) the student and run it; errors as HTTP answers."""
    try:
        image = open_image(image_path, name=file_name)
    except PredictError as err:
        raise FieldError(422, ["body", "file"], str(err)) from None
    slicing = params.slicing
    if slicing is not None:
        tiles = len(tile_windows(image.width, image.height, slicing.size, slicing.overlap))
        if tiles > MAX_TILES:
            raise FieldError(
                422,
                ["body", "slice"],
                f"{image.width} x {image.height} pixels in tiles of {slicing.size} make "
                f"{tiles} tiles, more than {MAX_TILES}: take larger tiles",
            )
    try:
        predictor = cache.get(files, lambda: load_student(blobs, files))
    except BlobNotFound:
        raise not_found("student file of job", files.job_id) from None
    except StudentLoadError as err:
        raise conflict(f"job {files.job_id}'s student cannot be used: {err}") from None
    options = predictor.options(
        score_threshold=params.score_threshold, max_detections=params.max_detections
    )
    found = predictor.detect(image, options, slicing)
    records = coco_records(found, predictor.meta, image_id=params.image_id, file_name=file_name)
    return PredictionPublic(
        data=[DetectionPublic(**record) for record in records],
        count=len(records),
        width=image.width,
        height=image.height,
        categories=[CategoryPublic(**c) for c in categories_of(predictor.meta)],
    )


@router.post(
    "/{job_id}/predict",
    response_model=PredictionPublic,
    openapi_extra=_UPLOAD_DOC,
    responses={
        404: {"description": "no such job (or another team's)"},
        409: {"description": "the job has no student yet"},
        413: {"description": "the image is larger than the upload limit"},
        415: {"description": "the file is no image (" + ", ".join(IMAGE_FORMATS) + ")"},
        422: {"description": f"a bad field, a broken image or more than {MAX_PIXELS} pixels"},
    },
)
async def predict_image(
    job_id: RowId,
    request: Request,
    team: CurrentTeam,
    session: SessionDep,
    settings: SettingsDep,
    blobs: BlobsDep,
) -> PredictionPublic:
    """Run the finished job's student on one image (multipart `file`); COCO detections."""
    files = await run_in_threadpool(student_files, session, team.id, job_id)
    upload = await receive_upload(
        request,
        file_field="file",
        max_bytes=min(settings.max_upload_bytes, PREDICT_MAX_BYTES),
        tmp_dir=settings.data_dir / "tmp",
    )
    try:
        params = predict_params(upload.fields)
        file_name = PurePath(upload.filename).name or "image"
        require_content(upload, file_name)
        if sniff_image(upload.head) is None:
            raise unsupported_file(
                f"{file_name!r} is not an image ({', '.join(IMAGE_FORMATS)}; checked its "
                "first bytes)"
            )
        assert upload.path is not None
        return await anyio.to_thread.run_sync(
            run_prediction,
            _cache(request),
            blobs,
            files,
            upload.path,
            file_name,
            params,
            limiter=_limiter(request),
        )
    finally:
        upload.discard()
