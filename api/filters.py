"""Query parameters that several list routes share, typed once for FastAPI."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

StatusFilter = Annotated[str | None, Query(alias="status", description="validating|ready|invalid")]
NameFilter = Annotated[str | None, Query(max_length=200, description="name contains")]
