"""`distillery predict MODEL IMAGES... --out DIR`: a student on new images, sliced or whole.

MODEL is a student's .safetensors (PyTorch), its .onnx (onnxruntime; metadata from --meta,
the ONNX itself or the .safetensors beside it; student_detections.onnx has the post-processing
inside) or `job:ID`, whose student is downloaded from the server first (its .safetensors, or
the file --job-model names). Writes DIR/detections.json (COCO results) and DIR/pictures/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx

from cli.client import (
    ClientError,
    UsageError,
    checked,
    common_options,
    connection_from,
    download_artifact,
    guarded,
    page_items,
)
from core.predict.batch import predict_images
from core.predict.errors import PredictError
from core.predict.slicing import SliceOptions

JOB_PREFIX = "job:"
MAX_JOB_ID = 2**31 - 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_OVERLAP = 0.2
JOB_MODELS = {
    "safetensors": "student_safetensors",
    "onnx": "student_onnx",
    "detections-onnx": "student_onnx_detections",
}
"""`--job-model` choices: the artifact kind of a job's student file each downloads."""


def job_id_of(model: str) -> int | None:
    """The job id of a `job:ID` model argument, None for a file; UsageError for a bad id."""
    if not model.startswith(JOB_PREFIX):
        return None
    raw = model[len(JOB_PREFIX) :]
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_JOB_ID:
        raise UsageError(f"{model!r}: a job is named job:ID with ID a job number")
    return int(raw)


def expand_images(paths: list[Path]) -> list[Path]:
    """The image files named, folders expanded to their images (sorted, not recursive)."""
    images: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise UsageError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            images.extend(found)
        elif path.is_file():
            images.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return images


def slice_options(args: argparse.Namespace) -> SliceOptions | None:
    """The sliced-inference options of the flags (None without --slice)."""
    if args.slice is None:
        if args.overlap is not None or args.no_full_image:
            raise UsageError("--overlap and --no-full-image go with --slice SIZE")
        return None
    try:
        return SliceOptions(
            size=args.slice,
            overlap=DEFAULT_OVERLAP if args.overlap is None else args.overlap,
            full_image=not args.no_full_image,
            merge=args.merge,
            metric=args.match,
            threshold=args.match_threshold,
        )
    except PredictError as err:
        raise UsageError(str(err)) from None


def fetch_job_student(
    http: httpx.Client, job_id: int, folder: Path, *, kind: str = "student_safetensors"
) -> Path:
    """Download the job's student file of artifact `kind` (by default its .safetensors) into
    `folder` (replacing an older copy)."""
    artifacts = page_items(checked(http.get(f"/jobs/{job_id}/artifacts")).json())
    names = [str(a["name"]) for a in artifacts if a.get("kind") == kind]
    if not names:
        listed = ", ".join(str(a.get("name")) for a in artifacts) or "none"
        what = "no student yet" if kind == "student_safetensors" else f"no {kind} artifact"
        raise ClientError(f"job {job_id} has {what}; its artifacts: {listed}")
    target = folder / f"job-{job_id}-{Path(names[0]).name}"
    return download_artifact(http, job_id, names[0], target, force=True)


def cmd_predict(args: argparse.Namespace) -> int:
    """Run the student on the images; write detections.json and the pictures."""
    from core.predict.loading import load_predictor  # torch: only when predicting

    images = expand_images(args.images)
    slicing = slice_options(args)
    if args.score_threshold is not None and not 0.0 <= args.score_threshold < 1.0:
        raise UsageError(f"--score-threshold {args.score_threshold} is not in [0, 1)")
    if args.max_detections is not None and args.max_detections < 1:
        raise UsageError(f"--max-detections {args.max_detections} is not positive")
    out: Path = args.out
    job_id = job_id_of(args.model)
    if job_id is None and args.job_model is not None:
        raise UsageError("--job-model goes with a job:ID model")
    if job_id is not None:
        kind = JOB_MODELS[args.job_model or "safetensors"]
        with connection_from(args).client() as http:
            model = fetch_job_student(http, job_id, out / "model", kind=kind)
        print(f"downloaded job {job_id}'s student to {model}")
    else:
        model = Path(args.model)
    try:
        predictor = load_predictor(model, meta=args.meta, device=args.device)
        options = predictor.options(
            score_threshold=args.score_threshold, max_detections=args.max_detections
        )
        run = predict_images(
            predictor, images, out, options=options, slicing=slicing,
            pictures=not args.no_pictures,
        )  # fmt: skip
    except ValueError as err:  # PredictError, CheckpointError: a message naming the file
        raise ClientError(str(err)) from None
    for path, count in zip(images, run.counts, strict=True):
        print(f"{path}: {count} detections")
    print(f"{len(run.records)} detections on {len(images)} images -> {run.json_path}")
    if run.pictures:
        print(f"pictures in {run.pictures[0].parent}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `predict` on the top-level parser."""
    parser = sub.add_parser(
        "predict",
        parents=[common_options()],
        help="run a student on images: COCO detections JSON and pictures with the boxes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="student .safetensors or .onnx, or job:ID on the server")
    parser.add_argument("images", nargs="+", type=Path, help="image files or folders of images")
    parser.add_argument(
        "--job-model", choices=tuple(JOB_MODELS),
        help="with job:ID, the student file to download (default safetensors; detections-onnx: "
        "student_detections.onnx, the post-processing inside)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    sliced = parser.add_argument_group("sliced inference (SAHI)")
    sliced.add_argument("--slice", type=int, metavar="SIZE", help="tiles of SIZE x SIZE pixels")
    sliced.add_argument(
        "--overlap", type=float, metavar="R", help=f"tile overlap ratio (default {DEFAULT_OVERLAP})"
    )
    sliced.add_argument(
        "--no-full-image", action="store_true", help="tiles only, not also the whole image"
    )
    sliced.add_argument(
        "--merge", choices=("nmm", "nms"), default="nmm",
        help="merge the tiles' boxes by greedy merging (default) or NMS",
    )  # fmt: skip
    sliced.add_argument(
        "--match", choices=("ios", "iou"), default="ios",
        help="overlap measure of merging: intersection over smaller (default) or IoU",
    )  # fmt: skip
    sliced.add_argument(
        "--match-threshold", type=float, default=0.5, help="merge above this overlap (0.5)"
    )
    parser.add_argument(
        "--score-threshold", type=float, metavar="T", help="lowest score kept (model's: 0.05)"
    )
    parser.add_argument(
        "--max-detections", type=int, metavar="N", help="detections per image (model's: 100)"
    )
    parser.add_argument(
        "--meta", type=Path,
        help="an ONNX's metadata: the student's .safetensors or a JSON file",
    )  # fmt: skip
    parser.add_argument(
        "--device", choices=("cpu", "cuda", "auto"), default="cpu",
        help="device of a .safetensors model (an ONNX runs on onnxruntime's CPU provider)",
    )  # fmt: skip
    parser.add_argument("--no-pictures", action="store_true", help="write detections.json only")
    parser.set_defaults(handler=guarded(cmd_predict))
