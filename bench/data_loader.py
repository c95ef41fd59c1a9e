"""Data-loader benchmark: training-loader throughput with the augmentations on.

    python -m bench.data_loader --quick     # CI-sized (24 images of 64 px)
    python -m bench.data_loader             # full (300 images of 160 px, 2 workers vs 0)

Generates the synthetic benchmark into a temporary folder (or reads --data), builds the train
loader of `core.data.loader.build_loaders` with flips, colour jitter and small-object
copy-paste, and prints images/s for each worker count (first batch excluded: worker start-up
is printed on its own).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.figures import publish
from bench.machine import set_threads
from core.spec import AugmentSpec, DataSpec

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"images": 24, "image_size": 64, "batch_size": 4, "batches": 4},
    "full": {"images": 300, "image_size": 160, "batch_size": 8, "batches": 60},
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; --quick picks the CI-sized preset, explicit flags override it."""
    parser = argparse.ArgumentParser(prog="python -m bench.data_loader", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--data", type=Path, help="an existing dataset (default: synthetic)")
    parser.add_argument("--images", type=int, help="synthetic images to generate")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--batches", type=int, help="timed batches per worker count")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[2, 0], help="worker counts to compare"
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "full"]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def loader_throughput(data: DataSpec, *, batches: int) -> dict[str, float]:
    """Seconds to the first batch and images/s over the next `batches` (cycling epochs)."""
    from core.data.loader import build_loaders

    train_loader, _, _ = build_loaders(data, seed=0)
    start = time.perf_counter()
    iterator = iter(train_loader)
    next(iterator)
    first = time.perf_counter() - start
    images = 0
    start = time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:  # a small dataset: start the next epoch
            iterator = iter(train_loader)
            batch = next(iterator)
        images += int(batch.images.shape[0])
    elapsed = time.perf_counter() - start
    return {"first_batch_s": first, "images_per_s": images / elapsed, "images": images}


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures and return them."""
    from core.data.synthetic import generate_synthetic

    args = parse_args(argv)
    set_threads(args.threads)
    augment = AugmentSpec(hflip=True, color_jitter=0.4, copy_paste=True, copy_paste_prob=0.5)
    figures: dict[str, Any] = {}
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        path = args.data
        if path is None:
            path = generate_synthetic(
                Path(tmp) / "synth", images=args.images, size=args.image_size, seed=0
            )
        figures["setup"] = (
            f"{path.name}, {args.image_size}px, batch {args.batch_size}, "
            f"{args.batches} timed batches, augment: hflip, color_jitter 0.4, copy-paste 0.5"
        )
        for workers in args.workers:
            data = DataSpec(
                path=str(path),
                image_size=args.image_size,
                batch_size=args.batch_size,
                num_workers=workers,
                augment=augment,
            )
            results[workers] = loader_throughput(data, batches=args.batches)
            figures[f"{workers} workers: images/s"] = results[workers]["images_per_s"]
            figures[f"{workers} workers: first batch (s)"] = results[workers]["first_batch_s"]
    return publish(
        "data loader with augmentations",
        figures,
        device="cpu",
        json_path=args.json,
        extra={"results": results},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    run(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
