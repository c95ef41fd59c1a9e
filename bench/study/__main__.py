"""`python -m bench.study --scale smoke|cpu|gpu --out runs/study`: run the study, write the report.

Trains the teacher, the four main variants over the scale's seeds, the per-level/per-term
ablation and the VOC track, scores every model on the held-out test split and writes
docs/results.md (or --report). Finished runs are cached under --out: rerunning resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from bench.machine import machine_info, set_threads
from bench.study.data import build_benchmark, export_voc, split_counts
from bench.study.plan import SCALES, Scale, plan_runs, plan_schedule, plan_tuning
from bench.study.report import StudyContext, render_report
from bench.study.runner import (
    RunRecord,
    StudyRunner,
    execute_all,
    runs_root,
    student_weights,
    teacher_weights,
)
from bench.study.schedule import render_schedule
from bench.study.tuning import best_candidate, render_tuning

log = logging.getLogger("bench.study")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of the study."""
    parser = argparse.ArgumentParser(prog="python -m bench.study", description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--out", type=Path, help="run folder (default runs/study-<scale>)")
    parser.add_argument(
        "--report", type=Path, help="default docs/results.md (docs/tuning.md with --tune)"
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="score full HKD and candidate changes to it on val (after the teachers are trained)",
    )
    parser.add_argument(
        "--schedule",
        action="store_true",
        help="score no KD and HKD at 1x and 3x the student epochs, and a fine-tune stage, on val",
    )
    parser.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="split every model is scored on: test (reported) or val (for tuning a scale)",
    )
    parser.add_argument("--no-voc", action="store_true", help="skip the Pascal VOC track")
    parser.add_argument("--no-ablation", action="store_true", help="skip the per-level ablation")
    parser.add_argument("--no-pictures", action="store_true")
    parser.add_argument(
        "--teachers-only", action="store_true", help="train (or score) the teachers and stop"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="VARIANT", help="run only these variants (and the teachers)"
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="SEED",
        help="the main variants' seeds (default: the scale's)",
    )
    parser.add_argument(
        "--ablation-seeds",
        nargs="+",
        type=int,
        metavar="SEED",
        help="the per-level ablation's seeds (default: the scale's)",
    )
    parser.add_argument(
        "--tuning-seeds",
        nargs="+",
        type=int,
        metavar="SEED",
        help="the seeds of --tune and --schedule (default: the scale's)",
    )
    parser.add_argument(
        "--student-epochs",
        type=int,
        help="the students' epochs (default: the scale's); --schedule compares this and 3x it",
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="train this many runs at once, in separate processes (--threads each, default 1)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the runs and stop")
    return parser.parse_args(argv)


def _pictures(args: argparse.Namespace, out: Path, data: dict[str, Path]) -> list[Path]:
    from bench.study.pictures import comparison_pictures

    scale = SCALES[args.scale]
    seed = scale.seeds[0]
    root = runs_root(out, args.split)
    students = {
        label: student_weights(root, "coco", variant, seed)
        for variant, label in (("no_kd", "no KD"), ("hierarchical", "HKD"))
    }
    teacher = teacher_weights(root, "coco", scale.data_seed)
    if not teacher.is_file() or not all(p.is_file() for p in students.values()):
        log.warning("attention pictures skipped: a trained model is missing")
        return []
    target = args.report.parent / args.report.stem  # docs/results.md -> docs/results/
    return comparison_pictures(
        scale=scale,
        data=data["coco"],
        teacher_weights=teacher,
        students=students,
        out_dir=target,
        split=args.split,
    )


def scale_from_args(args: argparse.Namespace) -> Scale:
    """The scale `--scale` names, with the seeds and student epochs the options override."""
    scale = SCALES[args.scale]
    if args.seeds:
        scale = replace(scale, seeds=tuple(args.seeds))
    if args.ablation_seeds:
        scale = replace(scale, ablation_seeds=tuple(args.ablation_seeds))
    if args.tuning_seeds:
        scale = replace(scale, tuning_seeds=tuple(args.tuning_seeds))
    if args.student_epochs:
        scale = replace(scale, student_epochs=args.student_epochs)
    return scale


def main(argv: Sequence[str] | None = None) -> int:
    """Run the study and write its report; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    set_threads(args.threads)
    scale = scale_from_args(args)
    out: Path = args.out or Path("runs") / f"study-{scale.name}"
    if args.tune:
        args.split = "val"
        runs = plan_tuning(scale)
    elif args.schedule:
        args.split = "val"
        runs = plan_schedule(scale)
    else:
        runs = plan_runs(scale, voc=not args.no_voc, ablation=not args.no_ablation)
    default_report = "tuning" if args.tune else "schedule" if args.schedule else "results"
    args.report = args.report or Path(f"docs/{default_report}.md")
    if args.teachers_only:
        runs = [run for run in runs if run.group == "teacher"]
    if args.only:
        runs = [run for run in runs if run.group == "teacher" or run.variant in args.only]
    if args.dry_run:
        for run in runs:
            print(run.key, f"({run.group})")
        print(f"{len(runs)} runs at scale {scale.name}")
        return 0
    started = time.perf_counter()
    log.info("preparing data under %s", out / "data")
    data = {"coco": build_benchmark(scale, out / "data" / "synth")}
    if not args.no_voc or (args.tune and scale.tuning_track == "voc"):
        data["voc"] = export_voc(data["coco"], out / "data" / "synth_voc")
    runner = StudyRunner(scale, out, data, split=args.split)
    finished: list[RunRecord] = []

    def report_progress(record: RunRecord) -> None:
        finished.append(record)
        scores = record.scores()
        log.info(
            "[%d/%d] %s done in %.1f min: %s AP %s, AP_small %s%s",
            len(finished),
            len(runs),
            record.key,
            record.seconds / 60,
            args.split,
            scores.get("AP"),
            scores.get("AP_small"),
            f" (FAILED: {record.error})" if record.error else "",
        )

    records = execute_all(
        runner,
        runs,
        workers=args.workers,
        threads_per_worker=args.threads or 1,
        on_done=report_progress,
    )
    summary = {"records": [asdict(r) for r in records], "machine": machine_info()}
    (runs_root(out, args.split) / "summary.json").write_text(
        json.dumps(summary, indent=2, sort_keys=True)
    )
    if args.tune or args.schedule:
        ctx = StudyContext(
            scale=scale,
            command="python -m bench.study " + shlex.join(argv),
            machine=machine_info(),
            data_counts={},
            wall_seconds=time.perf_counter() - started,
            split="val",
        )
        args.report.parent.mkdir(parents=True, exist_ok=True)
        if args.schedule:
            args.report.write_text(render_schedule(records, ctx), encoding="utf-8")
            log.info("schedule report written to %s", args.report)
        else:
            args.report.write_text(render_tuning(records, ctx), encoding="utf-8")
            log.info("tuning report written to %s; best: %s", args.report, best_candidate(records))
        return 0 if all(r.ok for r in records) else 1
    if args.teachers_only:
        failed = [r.key for r in records if not r.ok]
        log.info("teachers done (%d failed); no report written", len(failed))
        return 1 if failed else 0
    pictures = [] if args.no_pictures else _pictures(args, out, data)
    ctx = StudyContext(
        scale=scale,
        command="python -m bench.study " + shlex.join(argv),
        machine=machine_info(),
        data_counts={track: split_counts(path) for track, path in data.items()},
        wall_seconds=time.perf_counter() - started,
        pictures=pictures,
        split=args.split,
    )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(render_report(records, ctx, args.report), encoding="utf-8")
    failed = [r.key for r in records if not r.ok]
    log.info("report written to %s (%d runs, %d failed)", args.report, len(records), len(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
