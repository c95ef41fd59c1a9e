"""The paper's ablation: one distill spec run as no KD, response KD, single-level and full HKD."""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.engine.hooks import HookBase
from core.pipeline.run import run_job
from core.spec import ABLATION_PRESETS, AblationPreset, JobSpec, ablation_distill

log = logging.getLogger("distillery.engine")

TABLE_METRICS: tuple[str, ...] = ("AP", "AP_small", "AP50", "AP75")
"""The columns of the ablation table, in print order."""


def variant_spec(spec: JobSpec, variant: AblationPreset, *, seed: int) -> JobSpec:
    """`spec` with the distillation weights of `variant` and `seed` (validated again)."""
    if spec.kind != "distill":
        raise ValueError("kind: an ablation runs a 'distill' spec")
    data = spec.model_dump(mode="json")
    data["distill"] = ablation_distill(spec.distill, variant).model_dump(mode="json")
    data["seed"] = seed
    data["name"] = f"{spec.name or 'ablation'} / {variant} / seed {seed}"
    return JobSpec.model_validate(data)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean and (sample) standard deviation; std 0 for a single value."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def run_ablation(
    spec: JobSpec,
    out: Path,
    *,
    seeds: Sequence[int] = (0,),
    variants: Sequence[AblationPreset] = ABLATION_PRESETS,
    progress: bool = False,
    hooks: Sequence[HookBase] = (),
) -> dict[str, Any]:
    """Run every variant for every seed under `out/<variant>/seed<k>`; write `out/ablation.json`."""
    out = Path(out)
    specs = {(v, s): variant_spec(spec, v, seed=s) for v in variants for s in seeds}
    teacher_cache: dict[str, Any] = {}
    result: dict[str, Any] = {
        "spec_hash": spec.spec_hash(),
        "seeds": list(seeds),
        "variants": {},
        "teacher": None,
    }
    for variant in variants:
        runs: list[dict[str, Any]] = []
        for seed in seeds:
            log.info("ablation: %s, seed %d", variant, seed)
            job = run_job(
                specs[(variant, seed)],
                out / variant / f"seed{seed}",
                hooks=hooks,
                progress=progress,
                teacher_cache=teacher_cache,
            )
            student = job.metrics["student"]
            runs.append({"seed": seed, "metrics": {k: student[k] for k in TABLE_METRICS}})
            if job.metrics.get("teacher") is not None:
                result["teacher"] = {k: job.metrics["teacher"][k] for k in TABLE_METRICS}
        result["variants"][variant] = {
            "runs": runs,
            "summary": {
                name: summarize([run["metrics"][name] for run in runs]) for name in TABLE_METRICS
            },
        }
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(result, indent=2))
    return result


def format_ablation_table(result: dict[str, Any]) -> str:
    """The ablation as a fixed-width text table (AP in percent; mean±std over seeds)."""
    several = len(result.get("seeds", [])) > 1
    width = 14 if several else 10
    header = f"{'variant':<14}" + "".join(f"{name:>{width}}" for name in TABLE_METRICS)
    lines = [header, "-" * len(header)]
    teacher = result.get("teacher")
    if teacher is not None:
        cells = "".join(f"{100 * teacher[name]:>{width}.1f}" for name in TABLE_METRICS)
        lines.append(f"{'teacher':<14}{cells}")
    for variant, entry in result["variants"].items():
        cells = ""
        for name in TABLE_METRICS:
            stats = entry["summary"][name]
            text = f"{100 * stats['mean']:.1f}"
            if several:
                text += f"±{100 * stats['std']:.1f}"
            cells += f"{text:>{width}}"
        lines.append(f"{variant:<14}{cells}")
    return "\n".join(lines)
