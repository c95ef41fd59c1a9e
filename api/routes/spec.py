"""The job spec's schema for clients: JSON Schema, architectures, defaults, presets."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.schemas import SpecCatalogPublic
from api.spec_catalog import spec_catalog

router = APIRouter(prefix="/spec", tags=["spec"])

CACHE_SECONDS = 300
"""Clients may keep the catalog this long (it changes only with a new release)."""


@router.get("/schema", response_model=SpecCatalogPublic)
def spec_schema(response: Response) -> SpecCatalogPublic:
    """core.spec as the dashboard's form and other clients need it (no sign-in needed).

    `json_schema` is the JobSpec JSON Schema (pydantic's); `defaults` every section's
    defaults; `presets` the ablation presets with the distill section each gives; a distill
    section is a preset when its `preset_fields` have that preset's values.
    """
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    return SpecCatalogPublic.model_validate(spec_catalog())
