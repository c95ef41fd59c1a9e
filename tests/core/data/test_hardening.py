"""Hostile datasets: paths leaving the root, parser bombs, archive bombs, and good data accepted.

Each test builds its dataset from the tiny synthetic one (or by hand) and checks the core
functions the worker and the CLI run: `validate_dataset`, `open_dataset`, `safe_extract`.
"""

from __future__ import annotations

import io
import json
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cli.main import main
from core.data.archive import ArchiveError, member_count_cap, safe_extract, unpacked_size_cap
from core.data.issues import DatasetError, ValidationIssue
from core.data.loader import DetectionDataset, build_loaders, open_dataset
from core.data.source import CocoSplit
from core.data.strict_json import nesting_depth
from core.data.validate import validate_dataset
from core.spec import DataSpec
from store.settings import Settings

OUTSIDE = "points outside the dataset"
DEFAULTS = Settings()
DEFAULT_CAPS = {
    "max_bytes": DEFAULTS.max_unpacked_bytes,
    "max_files": DEFAULTS.max_unpacked_files,
}


# --- helpers -----------------------------------------------------------------------------------


def _copy(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def _image(path: Path, size: tuple[int, int] = (64, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path, format="PNG")
    return path


def _hits(issues: list[ValidationIssue], text: str) -> list[ValidationIssue]:
    return [i for i in issues if text in i.message]


def _one(issues: list[ValidationIssue], text: str) -> ValidationIssue:
    hits = _hits(issues, text)
    assert len(hits) == 1, f"expected one issue with {text!r}: {[str(i) for i in issues]}"
    return hits[0]


def _no_absolute_paths(issues: list[ValidationIssue], *folders: Path) -> None:
    for issue in issues:
        for text in (issue.file, issue.message):
            assert not text.startswith("/"), str(issue)
            for folder in folders:
                assert str(folder) not in text, str(issue)
                assert str(folder.resolve()) not in text, str(issue)


def _set_file_name(annotation: Path, index: int, name: str) -> int:
    coco = _read(annotation)
    coco["images"][index]["file_name"] = name
    _write(annotation, coco)
    return int(coco["images"][index]["id"])


def _zip_folder(folder: Path, out: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return out


# --- 1. paths that leave the dataset root ------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val"])
def test_climbing_and_absolute_file_names_are_refused_in_every_split(
    tiny_coco: Path, tmp_path: Path, split: str
) -> None:
    root = _copy(tiny_coco, tmp_path / "ds")
    secret = _image(tmp_path / "secret.jpg")  # a readable picture outside the dataset
    annotation = root / "annotations" / f"instances_{split}.json"
    climbing = f"../../../{secret.name}"  # from images/<split>/ to tmp_path
    climbing_id = _set_file_name(annotation, 0, climbing)
    absolute_id = _set_file_name(annotation, 1, "/etc/passwd")

    report = validate_dataset(root)

    assert not report.ok and report.statistics is None
    rel = f"annotations/instances_{split}.json"
    first = _one(report.errors, repr(climbing))
    assert (first.file, first.image_id) == (rel, climbing_id)
    assert first.message == f"file_name {climbing!r} {OUTSIDE}"
    second = _one(report.errors, "'/etc/passwd'")
    assert (second.file, second.image_id) == (rel, absolute_id)
    assert second.message == f"file_name '/etc/passwd' {OUTSIDE}"
    _no_absolute_paths(report.errors, tmp_path)
    # the loader refuses the same dataset when it is opened for training
    source = open_dataset(root)
    record = next(im for im in source.splits[split].coco["images"] if im["id"] == climbing_id)
    with pytest.raises(DatasetError, match=OUTSIDE):
        source.splits[split].image_path(record)


def test_the_refusal_is_the_same_whether_the_target_exists_or_not(
    tiny_coco: Path, tmp_path: Path
) -> None:
    messages = []
    for index, target in enumerate(["etc/passwd", "no/such/file-at-all"]):
        work = tmp_path / str(index)
        root = _copy(tiny_coco, work / "ds")
        if target == "etc/passwd":
            _image(work / "etc" / "passwd")
        name = f"../../../{target}"
        _set_file_name(root / "annotations" / "instances_val.json", 0, name)
        issue = _one(validate_dataset(root).errors, OUTSIDE)
        assert "missing" not in issue.message and "unreadable" not in issue.message
        messages.append((issue.file, issue.image_id, issue.message.replace(repr(name), "NAME")))
    assert messages[0] == messages[1]


def test_a_symlink_inside_the_tree_that_leads_outside_is_refused(
    tiny_coco: Path, tmp_path: Path
) -> None:
    root = _copy(tiny_coco, tmp_path / "ds")
    secret = _image(tmp_path / "secret.jpg")
    coco = _read(root / "annotations" / "instances_train.json")
    first = coco["images"][0]
    picture = root / "images" / "train" / first["file_name"]
    picture.unlink()
    picture.symlink_to(secret)
    issue = _one(validate_dataset(root).errors, OUTSIDE)
    assert (issue.file, issue.image_id) == ("annotations/instances_train.json", first["id"])

    # a dangling link out reads the same
    picture.unlink()
    picture.symlink_to(tmp_path / "does-not-exist.jpg")
    again = _one(validate_dataset(root).errors, OUTSIDE)
    assert (again.file, again.image_id, again.message) == (
        issue.file,
        issue.image_id,
        issue.message,
    )

    # an annotation file that is a link out is refused before it is read
    outside_json = tmp_path / "other.json"
    shutil.copyfile(root / "annotations" / "instances_val.json", outside_json)
    (root / "annotations" / "instances_val.json").unlink()
    (root / "annotations" / "instances_val.json").symlink_to(outside_json)
    report = validate_dataset(root)
    refused = [i for i in report.errors if i.file == "annotations/instances_val.json"]
    assert [i.message for i in refused] == [OUTSIDE]
    _no_absolute_paths(report.errors, tmp_path)
    with pytest.raises(DatasetError, match=rf"annotations/instances_val\.json: {OUTSIDE}"):
        open_dataset(root)


def test_a_symlink_within_the_tree_is_followed(tiny_coco: Path, tmp_path: Path) -> None:
    root = _copy(tiny_coco, tmp_path / "ds")
    (root / "pictures").mkdir()
    for picture in (root / "images" / "val").iterdir():
        shutil.move(picture, root / "pictures" / picture.name)
    (root / "images" / "val").rmdir()
    (root / "images" / "val").symlink_to(root / "pictures")
    assert validate_dataset(root).ok


def test_voc_filename_and_imagesets_entries_that_climb_out_are_refused(
    tiny_voc: Path, tmp_path: Path
) -> None:
    root = _copy(tiny_voc, tmp_path / "voc")
    _image(tmp_path / "secret.jpg")
    xml = sorted((root / "Annotations").glob("*.xml"))[0]
    text = xml.read_text()
    start, end = text.index("<filename>") + len("<filename>"), text.index("</filename>")
    xml.write_text(text[:start] + "../../secret.jpg" + text[end:])
    with (root / "ImageSets" / "Main" / "train.txt").open("a") as fh:
        fh.write("../../../../etc/passwd\n")

    report = validate_dataset(root)

    named = _one(report.errors, "<filename>")
    assert named.file == f"Annotations/{xml.name}"
    assert named.message == f"<filename> '../../secret.jpg' {OUTSIDE}"
    listed = _one(report.errors, "lists")
    assert listed.file == "ImageSets/Main/train.txt"
    assert listed.message == f"lists '../../../../etc/passwd', which {OUTSIDE}"
    _no_absolute_paths(report.errors, tmp_path)
    with pytest.raises(DatasetError, match=OUTSIDE):
        open_dataset(root)


def test_the_loader_refuses_at_read_time_what_validation_never_saw(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    images = root / "images"
    _image(images / "ok.jpg")
    secret = _image(tmp_path / "secret.jpg")
    coco = {
        "images": [
            {"id": 1, "file_name": "ok.jpg", "width": 64, "height": 64},
            {"id": 2, "file_name": f"../../{secret.name}", "width": 64, "height": 64},
            {"id": 3, "file_name": str(secret), "width": 64, "height": 64},
        ],
        "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 1, 9, 9]}],
        "categories": [{"id": 1, "name": "dot"}],
    }
    split = CocoSplit(coco=coco, image_root=images, root=root, source="hand.json")
    assert split.image_path(coco["images"][0]) == (images / "ok.jpg").resolve()
    dataset = DetectionDataset(split, image_size=32, cat_id_to_label={1: 1})
    assert dataset[0].image.shape == (3, 32, 32)
    for index in (1, 2):
        with pytest.raises(
            DatasetError, match=f"hand.json: image {index + 1} file_name .* {OUTSIDE}"
        ):
            dataset.load(index)
    # without a root, the image folder itself is the boundary
    bare = CocoSplit(coco=coco, image_root=images)
    with pytest.raises(DatasetError, match=OUTSIDE):
        bare.image_path({"id": 9, "file_name": "../ok.jpg"})
    # a subset (the carved val split) keeps the boundary
    with pytest.raises(DatasetError, match=OUTSIDE):
        DetectionDataset(split.subset([2]), image_size=32, cat_id_to_label={1: 1}).load(0)


def test_data_check_refuses_a_climbing_dataset(
    tiny_coco: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(tiny_coco, tmp_path / "ds")
    _set_file_name(root / "annotations" / "instances_train.json", 0, "../../../../etc/passwd")
    assert main(["data", "check", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"file_name '../../../../etc/passwd' {OUTSIDE}" in err
    archive = _zip_folder(root, tmp_path / "ds.zip")
    assert main(["data", "check", str(archive), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [e["file"] for e in report["errors"]] == ["annotations/instances_train.json"]
    assert "/tmp" not in json.dumps(report) and str(tmp_path) not in json.dumps(report)


# --- 2. validation that always ends ------------------------------------------------------------


def test_nesting_depth_ignores_brackets_in_strings() -> None:
    assert nesting_depth(b'["[[[[", "\\"[[", "\\\\", {"a": [1]}]') == 3
    assert nesting_depth(b"{}") == 1
    assert nesting_depth(b'"{"') == 0
    assert nesting_depth(b"[" * 1000) == 1000


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("text", "depth"),
    [("[" * 200_000, 200_000), ('{"images": ' + "[" * 200_000 + "]" * 200_000 + "}", 200_001)],
)
def test_deeply_nested_json_is_refused_quickly(tmp_path: Path, text: str, depth: int) -> None:
    _write(tmp_path / "annotations" / "instances_train.json", text)
    issue = _one(validate_dataset(tmp_path).errors, "levels deep")
    assert issue.file == "annotations/instances_train.json"
    assert issue.message == f"nested {depth} levels deep; at most 64 are allowed"
    with pytest.raises(DatasetError, match=rf"instances_train\.json: nested {depth} levels deep"):
        open_dataset(tmp_path)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_refused(tmp_path: Path, literal: str) -> None:
    _image(tmp_path / "images" / "a.png")
    text = (
        '{"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}], '
        '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, '
        f'"bbox": [1, 1, {literal}, 4]}}], '
        '"categories": [{"id": 1, "name": "a"}]}'
    )
    _write(tmp_path / "annotations" / "instances_train.json", text)
    issue = _one(validate_dataset(tmp_path).errors, "is not allowed")
    assert issue.file == "annotations/instances_train.json"
    assert literal in issue.message
    with pytest.raises(DatasetError, match=f"{literal} is not allowed"):
        open_dataset(tmp_path)


def test_numbers_that_overflow_and_odd_types_are_issues_not_crashes(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "a.png")
    text = (
        '{"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 1e999}], '
        '"annotations": ['
        '{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 1e999, 4]},'
        '{"id": 2, "image_id": [1], "category_id": 1, "bbox": [1, 1, 2, 2]},'
        '{"id": 3, "image_id": 1, "category_id": {"x": 1}, "bbox": [1, 1, 2, 2]},'
        '{"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 1e999}'
        '], "categories": [{"id": 1, "name": "a"}, 7]}'
    )
    _write(tmp_path / "annotations" / "instances_train.json", text)
    report = validate_dataset(tmp_path)
    assert report.statistics is None
    assert _one(report.errors, "bad size").image_id == 1
    assert _one(report.errors, "bbox must be 4 finite numbers").annotation_id == 1
    assert _one(report.errors, "'image_id' must be an integer").annotation_id == 2
    assert _one(report.errors, "is not declared").annotation_id == 3
    assert _one(report.errors, "'area' must be a finite").annotation_id == 4
    assert _one(report.errors, "categories[1]").file == "annotations/instances_train.json"


def test_voc_without_size_reads_it_from_the_picture_and_checks_it(
    tiny_voc: Path, tmp_path: Path
) -> None:
    root = _copy(tiny_voc, tmp_path / "voc")
    xmls = sorted((root / "Annotations").glob("*.xml"))
    no_size = xmls[0]
    text = no_size.read_text()
    no_size.write_text(text[: text.index("<size>")] + text[text.index("</size>") + 7 :])
    assert validate_dataset(root).ok  # the readable picture gives the size
    source = open_dataset(root)
    record = next(
        im
        for split in source.splits.values()
        for im in split.coco["images"]
        if Path(im["file_name"]).stem == no_size.stem
    )
    with Image.open(root / "JPEGImages" / record["file_name"]) as picture:
        assert (record["width"], record["height"]) == picture.size

    # the picture no longer decodes: no size at all, the file is named
    (root / "JPEGImages" / record["file_name"]).write_bytes(b"not a picture")
    issue = _one(validate_dataset(root).errors, "unknown image size")
    assert issue.file == f"Annotations/{no_size.name}"
    _no_absolute_paths(validate_dataset(root).errors, tmp_path)

    # a <size> that the picture contradicts is reported
    wrong = xmls[1]
    text = wrong.read_text()
    start = text.index("<width>") + len("<width>")
    wrong.write_text(text[:start] + "999" + text[text.index("</width>") :])
    mismatch = _one(validate_dataset(root).errors, "<size> is 999x")
    assert mismatch.file == f"Annotations/{wrong.name}"


# --- 4. good data accepted: the three COCO layouts ---------------------------------------------


def _layout_b(tiny_coco: Path, dest: Path, name: str = "annotations.json") -> Path:
    """One annotation file beside the images (the train split only)."""
    dest.mkdir(parents=True)
    shutil.copyfile(tiny_coco / "annotations" / "instances_train.json", dest / name)
    for picture in (tiny_coco / "images" / "train").iterdir():
        shutil.copyfile(picture, dest / picture.name)
    return dest


def _layout_c(tiny_coco: Path, dest: Path) -> Path:
    """Roboflow export: one folder per split, its JSON beside its pictures."""
    for split, folder in (("train", "train"), ("val", "valid")):
        shutil.copytree(tiny_coco / "images" / split, dest / folder)
        shutil.copyfile(
            tiny_coco / "annotations" / f"instances_{split}.json",
            dest / folder / "_annotations.coco.json",
        )
    return dest


def test_a_top_level_annotations_json_is_accepted(tiny_coco: Path, tmp_path: Path) -> None:
    for name in ("annotations.json", "_annotations.coco.json"):
        root = _layout_b(tiny_coco, tmp_path / name)
        report = validate_dataset(root)
        assert report.ok, [str(e) for e in report.errors]
        assert (
            report.statistics is not None and report.statistics["splits"]["train"]["images"] == 10
        )
        source = open_dataset(root)
        assert set(source.splits) == {"train"} and source.format == "coco"
    train, _val, info = build_loaders(DataSpec(path=str(root), image_size=32, batch_size=4), seed=0)
    assert (info.train_images, info.val_images) == (8, 2)  # val carved from train
    assert next(iter(train)).images.shape == (4, 3, 32, 32)


def test_a_roboflow_export_is_accepted(tiny_coco: Path, tmp_path: Path) -> None:
    root = _layout_c(tiny_coco, tmp_path / "export")
    report = validate_dataset(root)
    assert report.ok, [str(e) for e in report.errors]
    assert report.statistics is not None
    splits = report.statistics["splits"]
    assert {name: split["images"] for name, split in splits.items()} == {"train": 10, "val": 2}
    source = open_dataset(root)
    assert set(source.splits) == {"train", "val"}
    val = source.splits["val"]
    assert val.image_path(val.coco["images"][0]).parent == (root / "valid").resolve()
    # also as an archive with a top folder, as exports are downloaded
    archive = _zip_folder(root, tmp_path / "export.zip", prefix="my-project.v1/")
    packed = validate_dataset(archive)
    assert packed.ok and packed.statistics is not None
    assert set(packed.statistics["splits"]) == {"train", "val"}


def test_content_errors_are_named_in_every_layout(tiny_coco: Path, tmp_path: Path) -> None:
    broken = '{"images": [1, 2'
    layout_a = tmp_path / "a"
    _write(layout_a / "annotations" / "instances_train.json", broken)
    layout_b = _layout_b(tiny_coco, tmp_path / "b")
    _write(layout_b / "annotations.json", broken)
    layout_c = _layout_c(tiny_coco, tmp_path / "c")
    _write(layout_c / "valid" / "_annotations.coco.json", broken)
    for root, file in (
        (layout_a, "annotations/instances_train.json"),
        (layout_b, "annotations.json"),
        (layout_c, "valid/_annotations.coco.json"),
    ):
        issue = _one(validate_dataset(root).errors, "not valid JSON")
        assert issue.file == file
        assert issue.message.startswith("not valid JSON (line 1, column")
        with pytest.raises(DatasetError, match=rf"{file}: not valid JSON \(line 1"):
            open_dataset(root)
    # a missing key is named too, never masked by a layout message
    _write(layout_b / "annotations.json", {"images": []})
    issues = validate_dataset(layout_b).errors
    assert {i.message for i in issues} == {
        "missing top-level key 'annotations'",
        "missing top-level key 'categories'",
    }


def test_no_layout_lists_the_accepted_ones(tmp_path: Path) -> None:
    (tmp_path / "pictures").mkdir()
    _image(tmp_path / "pictures" / "a.jpg")
    (tmp_path / "labels.json").write_text("{}")
    issue = _one(validate_dataset(tmp_path).errors, "neither COCO nor Pascal VOC")
    for layout in (
        "annotations/instances_<split>.json",
        "annotations.json",
        "<split>/_annotations.coco.json",
        "Annotations/ + JPEGImages/",
    ):
        assert layout in issue.message
    with pytest.raises(DatasetError, match="accepted layouts"):
        open_dataset(tmp_path)


# --- 3. archive bombs ------------------------------------------------------------------------


def _zeros_zip(path: Path, members: dict[str, int]) -> Path:
    """A zip of members made of zeros, written in chunks (never held in memory)."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, size in members.items():
            with zf.open(name, "w", force_zip64=size > 2**31) as out:
                for _ in range(size >> 20):
                    out.write(chunk)
    return path


@pytest.mark.timeout(120)
def test_a_zip_bomb_is_refused_at_default_caps_and_nothing_is_left(tmp_path: Path) -> None:
    archive = _zeros_zip(
        tmp_path / "bomb.zip", {"data/annotations.json": 1 << 20, "bomb.bin": 300 << 20}
    )
    assert archive.stat().st_size < 2 << 20  # 301 MiB of zeros compress to a few hundred KB
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match=r"member 'bomb\.bin': unpacks to more than 100x"):
        safe_extract(archive, dest, **DEFAULT_CAPS)
    assert not dest.exists()
    # an existing, empty destination (as the worker makes it) is emptied again
    dest.mkdir()
    with pytest.raises(ArchiveError, match="bomb"):
        safe_extract(archive, dest, **DEFAULT_CAPS)
    assert list(dest.iterdir()) == []
    issues = validate_dataset(archive).errors
    assert len(issues) == 1 and issues[0].file == "bomb.zip"


@pytest.mark.timeout(120)
def test_many_modest_members_are_held_to_the_overall_ratio(tmp_path: Path) -> None:
    # each member stays under the per-member floor; together they exceed 20x the archive
    archive = _zeros_zip(tmp_path / "many.zip", {f"part{i:02d}.bin": 6 << 20 for i in range(14)})
    size = archive.stat().st_size
    cap = unpacked_size_cap(size, limit=DEFAULTS.max_unpacked_bytes)
    assert cap < 14 * (6 << 20)
    with pytest.raises(
        ArchiveError, match=rf"archive unpacks to more than {cap} bytes \(at most 20x"
    ):
        safe_extract(archive, tmp_path / "out", **DEFAULT_CAPS)
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(120)
def test_a_targz_bomb_is_refused(tmp_path: Path) -> None:
    class Zeros(io.RawIOBase):
        def __init__(self, size: int) -> None:
            self.left = size

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            n = min(len(buffer), self.left)
            buffer[:n] = bytes(n)
            self.left -= n
            return n

    archive = tmp_path / "bomb.tar.gz"
    info = tarfile.TarInfo("bomb.bin")
    info.size = 200 << 20
    with tarfile.open(archive, "w:gz", compresslevel=1) as tf:
        tf.addfile(info, io.BufferedReader(Zeros(info.size)))
    cap = unpacked_size_cap(archive.stat().st_size, limit=DEFAULTS.max_unpacked_bytes)
    with pytest.raises(ArchiveError, match=rf"'bomb\.bin': archive unpacks to more than {cap}"):
        safe_extract(archive, tmp_path / "out", **DEFAULT_CAPS)
    assert not (tmp_path / "out").exists()


def _empty_entries_zip(path: Path, count: int) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            zf.writestr(f"e{i}", b"")
    return path


@pytest.mark.timeout(120)
def test_a_zip_of_120000_empty_entries_is_refused_at_default_caps(tmp_path: Path) -> None:
    archive = _empty_entries_zip(tmp_path / "entries.zip", 120_000)
    cap = member_count_cap(archive.stat().st_size, limit=DEFAULTS.max_unpacked_files)
    assert cap < 120_000
    with pytest.raises(
        ArchiveError,
        match=rf"entries\.zip: announces 120000 members, more than {cap} \(at most one",
    ):
        safe_extract(archive, tmp_path / "out", **DEFAULT_CAPS)
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(120)
def test_a_zip_just_over_the_member_cap_names_the_first_member_beyond(tmp_path: Path) -> None:
    archive = _empty_entries_zip(tmp_path / "entries.zip", 15_000)
    cap = member_count_cap(archive.stat().st_size, limit=DEFAULTS.max_unpacked_files)
    assert cap < 15_000
    with pytest.raises(ArchiveError, match=rf"member 'e{cap}': more than {cap} members"):
        safe_extract(archive, tmp_path / "out", **DEFAULT_CAPS)


def test_the_relative_rules_can_be_switched_off(tmp_path: Path) -> None:
    archive = _zeros_zip(tmp_path / "zeros.zip", {"zeros.bin": 12 << 20})
    with pytest.raises(ArchiveError, match=r"'zeros\.bin': unpacks to more than 100x"):
        safe_extract(archive, tmp_path / "refused", **DEFAULT_CAPS)
    out = safe_extract(
        archive,
        tmp_path / "out",
        **DEFAULT_CAPS,
        max_ratio=None,
        max_member_ratio=None,
        bytes_per_member=None,
    )
    assert (out / "zeros.bin").stat().st_size == 12 << 20
    # the absolute caps still hold, also on the bytes written
    with pytest.raises(ArchiveError, match=r"more than 1000000 bytes"):
        safe_extract(
            archive, tmp_path / "small", max_bytes=1_000_000, max_files=10, max_member_ratio=None
        )


def test_a_real_dataset_archive_unpacks_at_default_caps(tiny_coco: Path, tmp_path: Path) -> None:
    archive = _zip_folder(tiny_coco, tmp_path / "ds.zip")
    out = safe_extract(archive, tmp_path / "out", **DEFAULT_CAPS)
    assert validate_dataset(out).ok


def _tar(path: Path, infos: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in infos:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_earlier_protections_still_hold_at_default_caps(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "slip.zip", "w") as zf:
        zf.writestr("ok.txt", b"1")
        zf.writestr("../evil.txt", b"x")
    with zipfile.ZipFile(tmp_path / "abs.zip", "w") as zf:
        zf.writestr("/tmp/evil.txt", b"x")
    link_info = zipfile.ZipInfo("ds/zlink")
    link_info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr(link_info, "/etc/passwd")
    sym = tarfile.TarInfo("ds/link")
    sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("ds/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    dev = tarfile.TarInfo("ds/null")
    dev.type = tarfile.CHRTYPE
    cases = {
        tmp_path / "slip.zip": r"'\.\./evil\.txt': path escapes",
        tmp_path / "abs.zip": r"'/tmp/evil\.txt': absolute path",
        tmp_path / "link.zip": r"'ds/zlink': symbolic links",
        _tar(tmp_path / "sym.tar.gz", [(sym, None)]): r"'ds/link': links are not allowed",
        _tar(tmp_path / "hard.tar.gz", [(hard, None)]): r"'ds/hard': links are not allowed",
        _tar(tmp_path / "dev.tar.gz", [(dev, None)]): r"'ds/null': device",
    }
    for index, (archive, message) in enumerate(cases.items()):
        with pytest.raises(ArchiveError, match=message):
            safe_extract(archive, tmp_path / f"out{index}", **DEFAULT_CAPS)
        assert not (tmp_path / f"out{index}").exists()
    assert not (tmp_path / "evil.txt").exists()


# --- 5. messages name files relative to the dataset ------------------------------------------


def test_archive_messages_never_show_the_scratch_folder(tiny_coco: Path, tmp_path: Path) -> None:
    root = _copy(tiny_coco, tmp_path / "ds")
    coco = _read(root / "annotations" / "instances_val.json")
    (root / "images" / "val" / coco["images"][0]["file_name"]).write_bytes(b"broken")
    coco["images"][1]["file_name"] = "gone.jpg"
    _write(root / "annotations" / "instances_val.json", coco)
    report = validate_dataset(_zip_folder(root, tmp_path / "ds.zip", prefix="top/"))
    unreadable = _one(report.errors, "unreadable image")
    assert unreadable.file == f"top/images/val/{coco['images'][0]['file_name']}"
    assert _one(report.errors, "image file is missing").file == "top/images/val/gone.jpg"
    for issue in report.errors:
        assert "distillery-validate-" not in issue.message + issue.file
        assert not issue.file.startswith("/") and "/tmp/" not in issue.message
    with pytest.raises(DatasetError) as caught:
        next(iter(build_loaders(DataSpec(path=str(root), image_size=32, batch_size=2), seed=0)[1]))
    assert str(tmp_path) not in str(caught.value)
    assert "images/val/" in str(caught.value)
