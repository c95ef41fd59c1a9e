"""Attention pictures of the teacher, the no-KD student and the HKD student on the same images."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from bench.study.plan import Scale
from core.spec import DataSpec, TeacherSpec

LABEL_WIDTH = 120
"""Width of the column naming each row's model."""


def _stack(rows: list[tuple[str, Image.Image]]) -> Image.Image:
    """Rows of tiles stacked vertically, each with its model's name on the left."""
    width = LABEL_WIDTH + max(img.width for _, img in rows)
    height = sum(img.height for _, img in rows)
    canvas = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    top = 0
    for label, img in rows:
        canvas.paste(img, (LABEL_WIDTH, top))
        draw.text((8, top + img.height // 2 - 6), label, fill=(255, 255, 255))
        top += img.height
    return canvas


def comparison_pictures(
    *,
    scale: Scale,
    data: Path,
    teacher_weights: Path,
    students: dict[str, Path],
    out_dir: Path,
    split: str = "test",
    count: int = 3,
) -> list[Path]:
    """PNGs: per image of `split`, the teacher's attention per level, then each student's.

    `students` maps a row label (e.g. "no KD") to the student's weights file.
    """
    import torch

    from core.data.loader import build_loaders
    from core.evaluation.pictures import TILE, attention_pictures
    from core.models.checkpoints import load_state_dict, load_weights
    from core.models.detectors import build_student
    from core.models.teachers import load_teacher

    spec = DataSpec(
        path=str(data), image_size=scale.image_size, batch_size=scale.batch_size, val_split=split
    )
    _, test_loader, info = build_loaders(spec, seed=0)
    device = torch.device("cpu")
    teacher = load_teacher(
        TeacherSpec(
            arch=scale.teacher_arch,  # type: ignore[arg-type]
            fpn_channels=scale.teacher_fpn,
            checkpoint=str(teacher_weights),
        ),
        num_classes=info.num_classes,
        image_size=scale.image_size,
    )
    students_built: list[tuple[str, torch.nn.Module]] = []
    for label, weights in students.items():
        built = build_student(
            arch=scale.student_arch,
            num_classes=info.num_classes,
            image_size=scale.image_size,
            fpn_channels=scale.student_fpn,
        )
        load_weights(built, load_state_dict(weights), source=str(weights))
        students_built.append((label, built))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="study-pictures-") as tmp:
        # The same loader order and the same selection rule give the same images per call.
        # The first call draws the teacher's row above the first student's.
        per_call: list[tuple[list[str], list[Path]]] = []
        for index, (label, student) in enumerate(students_built):
            drawn = attention_pictures(
                teacher=teacher if index == 0 else None,
                student=student,
                batches=test_loader,
                out_dir=Path(tmp) / str(index),
                device=device,
                count=count,
            )
            per_call.append((["teacher", label] if index == 0 else [label], drawn))
        for number in range(min(len(drawn) for _, drawn in per_call)):
            rows = []
            for labels, drawn in per_call:
                with Image.open(drawn[number]) as img:
                    picture = img.convert("RGB")
                for row, label in enumerate(labels):
                    rows.append(
                        (label, picture.crop((0, row * TILE, picture.width, (row + 1) * TILE)))
                    )
            path = out_dir / f"attention_{number + 1:02d}.png"
            _stack(rows).save(path)
            paths.append(path)
    return paths
