"""Teacher precision: does a bf16 teacher distil as well as a float32 one? (issue 11)

    python -m bench.teacher_precision                 # the quick demo, seeds 0 1 2
    python -m bench.teacher_precision --quick         # CI-sized: tiny schedule, one seed

Trains the demo preset's teacher once, then distils the hierarchical-KD student from it with
the teacher's forward in float32 and in bf16 (`distill.teacher_precision`), seed by seed, the
two runs of a seed side by side. Prints AP_small of each run, each precision's mean and std
over seeds, the bf16 teacher's relative feature difference from float32 per level (as the
job reports it, `distill/teacher_precision`), and whether the bf16 mean lies within the
float32 runs' seed range. bf16 is the default where the device computes it natively
(`core.distill.distiller.native_bf16`); elsewhere this measures what forcing it costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.figures import publish
from bench.machine import set_threads
from core.data.synthetic import generate_synthetic
from core.pipeline.ablation import summarize, variant_spec
from core.pipeline.demo import DEMO_PRESETS, demo_specs
from core.pipeline.run import run_job
from core.spec import JobSpec

PRECISIONS = ("fp32", "bf16")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.teacher_precision", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI-sized run (tiny schedule)")
    parser.add_argument("--preset", default="quick", choices=sorted(DEMO_PRESETS))
    parser.add_argument("--seeds", type=int, nargs="+", help="student seeds (default 0 1 2)")
    parser.add_argument("--out", type=Path, default=Path("runs/teacher-precision"))
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1, 2]
    return args


def with_precision(spec: JobSpec, precision: str, seed: int) -> JobSpec:
    """The hierarchical-KD job of `spec` for `seed`, its teacher run in `precision`."""
    data = variant_spec(spec, "hierarchical", seed=seed).model_dump(mode="json")
    data["distill"]["teacher_precision"] = precision
    data["name"] = f"{data['name']} / teacher {precision}"
    return JobSpec.model_validate(data)


def _spread(values: Sequence[float]) -> dict[str, float]:
    """`summarize` (mean and std over seeds) with the seed range."""
    return {**summarize(values), "min": min(values), "max": max(values)}


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the comparison, print its figures and return them."""
    args = parse_args(argv)
    set_threads(args.threads)
    preset = DEMO_PRESETS[args.preset]()
    if args.quick:
        preset = dataclasses.replace(
            preset,
            images=16,
            image_size=64,
            teacher_epochs=1,
            student_epochs=1,
            max_steps_per_epoch=2,
        )
    out: Path = args.out
    data = out / "data"
    if not (data / "annotations").is_dir():
        generate_synthetic(data, images=preset.images, size=preset.image_size, seed=0)
    teacher_spec, distill_spec = demo_specs(preset, data, out / "teacher" / "teacher.safetensors")
    started = time.perf_counter()
    teacher = run_job(teacher_spec, out / "teacher")
    ap_small: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    gap: dict[str, float] = {}
    for seed in args.seeds:
        for precision in PRECISIONS:
            job = run_job(
                with_precision(distill_spec, precision, seed),
                out / precision / f"seed{seed}",
            )
            ap_small[precision].append(job.metrics["student"]["AP_small"])
            reported = job.metrics.get("distill/teacher_precision")
            if precision == "bf16" and reported:
                gap = reported["relative_l2_vs_fp32"]
    figures: dict[str, Any] = {
        "setup": f"demo preset {preset.name}: {preset.teacher_arch} teacher, "
        f"{preset.student_arch} student, {preset.image_size}px, seeds {args.seeds}, "
        f"{preset.student_epochs} student epochs",
        "teacher AP_small (%)": 100 * teacher.metrics["teacher"]["AP_small"],
    }
    for precision in PRECISIONS:
        values = ap_small[precision]
        figures[f"HKD AP_small, teacher {precision} (%, per seed)"] = ", ".join(
            f"{100 * v:.1f}" for v in values
        )
        spread = _spread(values)
        figures[f"HKD AP_small, teacher {precision} (%, mean)"] = 100 * spread["mean"]
        figures[f"HKD AP_small, teacher {precision} (%, std)"] = 100 * spread["std"]
    for level, value in gap.items():
        figures[f"bf16 teacher features vs fp32, {level} (relative L2)"] = value
    fp32 = _spread(ap_small["fp32"])
    bf16_mean = statistics.fmean(ap_small["bf16"])
    figures["bf16 mean within the fp32 seed range"] = fp32["min"] <= bf16_mean <= fp32["max"]
    figures["bf16 - fp32 mean (AP_small points)"] = 100 * (bf16_mean - fp32["mean"])
    figures["seconds"] = time.perf_counter() - started
    (out / "precision.json").write_text(json.dumps({"ap_small": ap_small, "gap": gap}, indent=2))
    return publish("teacher precision: bf16 vs float32", figures, device="cpu", json_path=args.json)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    run(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
