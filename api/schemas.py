"""Request and response shapes of the REST API (XCreate / XPublic / XsPublic families)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.bounds import NUL, nul_message


class _Public(BaseModel):
    """Base of response models: built from ORM rows by attribute, never the rows themselves."""

    model_config = ConfigDict(from_attributes=True, protected_namespaces=())


class ErrorItem(BaseModel):
    """One user error: where (`loc`, e.g. ["body", "file"]) and what is wrong (`msg`)."""

    loc: list[str | int]
    msg: str
    type: str = "value_error"


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer: a message, or a list of field errors."""

    detail: str | list[ErrorItem]


# --- auth ---------------------------------------------------------------------------------


class LoginRequest(BaseModel):
    """Credentials exchanged for an API token."""

    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class TokenPublic(BaseModel):
    """A freshly issued API token (shown once; only its hash is stored)."""

    token: str
    token_type: Literal["bearer"] = "bearer"


class TeamRole(BaseModel):
    """A team the user belongs to and the user's role in it."""

    id: int
    name: str
    role: str


class MePublic(BaseModel):
    """The signed-in user and the teams they can act in."""

    id: int
    email: str
    name: str
    teams: list[TeamRole]


class TicketPublic(BaseModel):
    """A short-lived URL credential for one object (`?ticket=`) and the seconds it is valid."""

    ticket: str
    expires_in: int


# --- datasets -----------------------------------------------------------------------------


class DatasetPublic(_Public):
    """An uploaded dataset with its validation outcome."""

    id: int
    team_id: int
    name: str
    format: str
    status: str
    size_bytes: int
    sha256: str
    statistics: dict[str, Any] | None = None
    errors: list[Any] | None = None
    created_by: int | None = None
    created_at: datetime
    updated_at: datetime | None = None


class DatasetsPublic(BaseModel):
    """A page of datasets and the total count."""

    data: list[DatasetPublic]
    count: int


# --- teachers -----------------------------------------------------------------------------


class TeacherPublic(_Public):
    """An uploaded (or trained) teacher checkpoint with its declared architecture."""

    id: int
    team_id: int
    name: str
    arch: str
    num_classes: int | None = None
    fpn_channels: int
    status: str
    size_bytes: int
    sha256: str
    source_job_id: int | None = None
    errors: list[Any] | None = None
    info: dict[str, Any] | None = None
    created_by: int | None = None
    created_at: datetime


class TeachersPublic(BaseModel):
    """A page of teachers and the total count."""

    data: list[TeacherPublic]
    count: int


# --- backbones ----------------------------------------------------------------------------


class BackbonePublic(_Public):
    """Uploaded backbone weights (an ImageNet trunk) with the uploader and the check's outcome."""

    id: int
    team_id: int
    name: str
    arch: str
    status: str
    size_bytes: int
    sha256: str
    errors: list[Any] | None = None
    info: dict[str, Any] | None = None
    created_by: int | None = None
    creator_email: str | None = None
    created_at: datetime


class BackbonesPublic(BaseModel):
    """A page of backbones and the total count."""

    data: list[BackbonePublic]
    count: int


# --- jobs ---------------------------------------------------------------------------------


class JobCreate(BaseModel):
    """A new job: a `core.spec.JobSpec` mapping (validated by the route) and an optional name."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any]
    name: str | None = Field(None, max_length=200)


class JobPublic(_Public):
    """A job as the dashboard and the CLI see it."""

    id: int
    team_id: int
    name: str
    kind: str
    state: str
    spec: dict[str, Any]
    spec_hash: str
    dataset_id: int | None = None
    teacher_id: int | None = None
    created_by: int | None = None
    creator_email: str | None = None
    progress: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    attempt: int
    max_attempts: int
    cancel_requested: bool
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    note: str = ""


TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:+-]*$"
"""A tag: a letter or digit, then letters, digits and `_ . : + -` (no spaces or quotes)."""


class JobPatch(BaseModel):
    """What PATCH /jobs/{id} changes: the job's tags (replaced whole) and/or its note."""

    model_config = ConfigDict(extra="forbid")

    tags: list[Annotated[str, Field(min_length=1, max_length=40, pattern=TAG_PATTERN)]] | None = (
        Field(None, max_length=20)
    )
    note: str | None = Field(None, max_length=4000)

    @field_validator("note")
    @classmethod
    def _no_nul(cls, note: str | None) -> str | None:
        if note is not None and NUL in note:
            raise ValueError(nul_message("the note"))
        return note


class SpecSummary(BaseModel):
    """The spec fields a job list shows (the whole spec is on `GET /jobs/{id}`).

    `preset` is the ablation preset a distill job's weights are (None: custom weights);
    `preset` and `lambda_kd` are None for other kinds, `student_arch` without a student.
    """

    student_arch: str | None = None
    teacher_arch: str | None = None
    preset: str | None = None
    lambda_kd: float | None = None
    lr: float | None = None
    epochs: int | None = None
    image_size: int | None = None


class JobSummary(BaseModel):
    """A row of the job list: what the dashboard's table and `distillery jobs` show.

    `progress` is the progress record without its losses; `metrics` the headline COCO
    figures (AP, AP_small, AP_medium, AP_large) by model, those present only:
    `{"student": {"AP": 0.31, "AP_small": 0.12}, "teacher": {...}}`.
    """

    id: int
    name: str
    kind: str
    state: str
    progress: dict[str, Any] | None = None
    metrics: dict[str, dict[str, float]] | None = None
    spec_hash: str
    spec_summary: SpecSummary
    dataset_id: int | None = None
    teacher_id: int | None = None
    created_by: int | None = None
    creator_email: str | None = None
    attempt: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    note: str = ""


class JobsPublic(BaseModel):
    """A page of jobs (newest first), the total count matching the filters, and the cursor
    of the next page (`?after=`; None on the last page)."""

    data: list[JobSummary]
    count: int
    next_cursor: str | None = None


class MetricPointPublic(BaseModel):
    """One point of a metric series: `step` within its `stage` (teacher, distill, finetune;
    the job's kind for points stored without one), `global_step` across the job's stages
    (None for points stored without a stage), `wall_time` in seconds since the first point."""

    step: int
    epoch: int
    value: float
    stage: str | None = None
    global_step: int | None = None
    wall_time: float | None = None


class MetricSeriesPublic(BaseModel):
    """Metric series of one job by name, each ordered by step."""

    series: dict[str, list[MetricPointPublic]]


class JobEventPublic(_Public):
    """A log line or state change of a job."""

    id: int
    level: str
    message: str
    created_at: datetime


class JobEventsPublic(BaseModel):
    """A page of job events (oldest first) and the total count."""

    data: list[JobEventPublic]
    count: int


class ArtifactPublic(_Public):
    """A file a job produced; download it at `/jobs/{job_id}/artifacts/{name}`."""

    id: int
    job_id: int
    kind: str
    name: str
    size_bytes: int
    sha256: str
    content_type: str
    created_at: datetime


class ArtifactsPublic(BaseModel):
    """The artifacts of a job and their count."""

    data: list[ArtifactPublic]
    count: int


# --- compare ------------------------------------------------------------------------------


class SpecDifference(BaseModel):
    """One spec leaf that differs between the compared jobs, with each job's value in order."""

    path: str
    values: list[Any]


class ComparePublic(BaseModel):
    """Jobs side by side: `metrics` maps a metric name to one value per job, in `jobs` order."""

    jobs: list[JobPublic]
    metrics: dict[str, list[float | str | None]]
    spec_diff: list[SpecDifference]


# --- the job spec -------------------------------------------------------------------------


class SpecPresetPublic(BaseModel):
    """An ablation preset: its id, how to name it, and the default distill section with it."""

    id: str
    label: str
    description: str
    distill: dict[str, Any]


class SpecArchitectures(BaseModel):
    """The architectures a spec may name."""

    teacher: list[str]
    student: list[str]


class SpecCatalogPublic(BaseModel):
    """core.spec for clients: the JobSpec JSON Schema and what a form needs beside it.

    `defaults` holds each section's defaults (`data`, `teacher`, `student`, `distill`,
    `schedule`) and `seed`; `preset_fields` the dotted distill fields a preset sets: a distill
    section is a preset when those fields have the preset's values.
    """

    json_schema: dict[str, Any]
    kinds: list[str]
    levels: list[str]
    terms: list[str]
    architectures: SpecArchitectures
    defaults: dict[str, Any]
    presets: list[SpecPresetPublic]
    preset_fields: list[str]


# --- health -------------------------------------------------------------------------------


class HealthPublic(BaseModel):
    """Liveness answer."""

    status: str


class ReadinessPublic(BaseModel):
    """Readiness answer: `checks` maps each dependency to "ok" or "unavailable"."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, str]
