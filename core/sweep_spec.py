"""The sweep schema shared by CLI, API and worker: a search space over JobSpec fields.

A parameter is named by the dotted path of a spec field (`distill.lambda_kd`,
`distill.levels.p2.spatial`, `schedule.lr`); a trial's spec is the base spec with each sampled
value set at its path and validated again as a JobSpec. Imports pydantic and core.spec only.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.spec import JobSpec

OBJECTIVES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
"""Objectives: a figure of the student's evaluation on the val split."""

FIXED_PATHS = ("kind", "data.dataset_id", "data.path", "data.val_split", "teacher.teacher_id")
"""Fields a sweep may not vary: what the trials run on and the split they are judged on."""

Choice = str | int | float | bool


class ParamSpace(BaseModel):
    """One searched field: a float (linear or log), an int, or a categorical choice."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Choice] | None = Field(None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _bounds(self) -> ParamSpace:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs 'choices'")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError("'low' must be a finite number not above 'high'")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale parameter needs 'low' > 0")
        if self.log and self.step is not None:
            raise ValueError("'step' and 'log' exclude each other")
        if self.type == "int" and not (self.low.is_integer() and self.high.is_integer()):
            raise ValueError("an int parameter needs integer 'low' and 'high'")
        return self

    def grid(self) -> list[Choice] | None:
        """The values a grid search tries, or None when the range is continuous."""
        if self.type == "categorical":
            return list(self.choices or [])
        assert self.low is not None and self.high is not None
        if self.type == "int":
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, max(step, 1)))
        if self.step is None:
            return None
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]

    def example(self) -> Choice:
        """A value inside the range (for checking the path against the spec)."""
        if self.type == "categorical":
            return (self.choices or [""])[0]
        assert self.low is not None
        return int(self.low) if self.type == "int" else float(self.low)


class PrunerSpec(BaseModel):
    """Early stopping from the intermediate val scores (one per evaluation, by epoch)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["median", "halving", "threshold", "none"] = "median"
    startup_trials: int = Field(2, ge=0, le=1000, description="median: trials never pruned")
    warmup_epochs: int = Field(
        0, ge=0, le=10_000, description="median, threshold: epochs never pruned"
    )
    min_resource: int = Field(1, ge=1, le=10_000, description="halving: epochs of the first rung")
    reduction_factor: int = Field(3, ge=2, le=100, description="halving: rung reduction")
    threshold: float | None = Field(
        None, description="threshold: prune a trial whose score falls below this"
    )

    @model_validator(mode="after")
    def _threshold(self) -> PrunerSpec:
        if self.kind == "threshold" and self.threshold is None:
            raise ValueError("a threshold pruner needs 'threshold'")
        return self


class SweepSpec(BaseModel):
    """A search: the space, the method, the budget and the objective (val split)."""

    model_config = ConfigDict(extra="forbid")

    space: dict[str, ParamSpace] = Field(min_length=1, max_length=32)
    method: Literal["random", "tpe", "grid"] = "tpe"
    objective: Literal["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"] = "AP_small"
    direction: Literal["maximize", "minimize"] = "maximize"
    trials: int = Field(20, ge=1, le=1000, description="budget: trials in all")
    hours: float | None = Field(None, gt=0, le=24 * 365, description="budget: wall-clock hours")
    parallel: int = Field(1, ge=1, le=64, description="trials queued or running at once")
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    seed: int = Field(0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _grid(self) -> SweepSpec:
        if self.method == "grid":
            continuous = [path for path, p in self.space.items() if p.grid() is None]
            if continuous:
                raise ValueError(
                    f"space.{continuous[0]}: a grid search needs 'step' on float parameters"
                )
        return self

    def grid_size(self) -> int:
        """The number of points of the grid (grid method)."""
        size = 1
        for param in self.space.values():
            size *= len(param.grid() or [])
        return size

    def grid_space(self) -> dict[str, list[Choice]]:
        """Each parameter's grid values."""
        return {path: param.grid() or [] for path, param in self.space.items()}


class SpaceError(ValueError):
    """A search-space entry that does not fit the base spec; `path` names it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"space.{path}: {message}")
        self.path = path
        self.message = message


def set_path(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `raw` with `value` at the dotted `path` (which must exist)."""
    out = copy.deepcopy(raw)
    node: Any = out
    parts = path.split(".")
    for part in parts[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(part), dict):
            raise SpaceError(path, f"{part!r} is not a section of the spec")
        node = node[part]
    if not isinstance(node, dict) or parts[-1] not in node:
        raise SpaceError(path, "no such field in the spec")
    if isinstance(node[parts[-1]], dict):
        raise SpaceError(path, "names a whole section, not a field")
    node[parts[-1]] = value
    return out


def trial_spec(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The base spec (a full JobSpec dump) with a trial's parameters set."""
    raw = base
    for path, value in params.items():
        raw = set_path(raw, path, value)
    return raw


def check_space(base: JobSpec, sweep: SweepSpec) -> list[SpaceError]:
    """Every space entry that names no spec field, a fixed one, or a value the spec refuses."""
    if base.kind != "distill":
        return [SpaceError("kind", "a sweep searches a 'distill' spec")]
    raw = base.model_dump(mode="json")
    errors: list[SpaceError] = []
    for path, param in sweep.space.items():
        if path in FIXED_PATHS:
            errors.append(SpaceError(path, "this field is fixed for every trial"))
            continue
        try:
            values: list[Choice] = [param.example()]
            if param.type == "categorical":
                values = list(param.choices or [])
            elif param.high is not None:
                values.append(int(param.high) if param.type == "int" else float(param.high))
            for value in values:
                JobSpec.model_validate(set_path(raw, path, value))
        except SpaceError as exc:
            errors.append(exc)
        except ValidationError as exc:
            first = exc.errors()[0]
            errors.append(SpaceError(path, f"the spec refuses its values: {first['msg']}"))
    return errors


def final_spec(spec: dict[str, Any], *, test_split: str) -> dict[str, Any]:
    """A trial's spec evaluated on `test_split` instead of val (the sweep's final run)."""
    return set_path(spec, "data.val_split", test_split)
