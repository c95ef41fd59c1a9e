"""A job's class mapping (`data.classes`) applied to an opened dataset, in one place.

Merged categories become one class; ignored categories lose their boxes (their images stay);
every other category is kept with its id. A merged class takes the smallest id of the
categories it gathers, so ids stay unique and the loader numbers the labels 1..K as always.
The mapping is applied to every split, so training, the val ground truth the evaluator
scores, the job's warnings and metrics.json all see the mapped classes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from core.data.issues import DatasetError
from core.data.source import CocoSplit, DatasetSource
from core.spec import ClassMapProblem, ClassMapSpec, class_listing

PROBLEMS_SHOWN = 5
"""Most problems of a mapping one error message spells out (the rest are counted)."""


@dataclass(frozen=True)
class CategoryMap:
    """Where each category of a dataset goes: a new id, or nowhere (ignored)."""

    categories: dict[int, dict[str, Any]]  # new id -> its COCO category record
    new_id: dict[int, int]  # old category id -> new id (ignored ids absent)
    ignored: frozenset[int]  # old ids whose boxes are dropped

    def split_categories(self, declared: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The mapped records of the categories a split declares, unique, sorted by id."""
        ids = {self.new_id[int(c["id"])] for c in declared if int(c["id"]) in self.new_id}
        return [self.categories[i] for i in sorted(ids)]

    def annotations(self, annotations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`annotations` without the ignored boxes and with the merged ones renumbered."""
        out = []
        for ann in annotations:
            old = ann.get("category_id")
            if not isinstance(old, int):  # not a category id (validation refuses it): kept
                out.append(ann)
            elif old not in self.ignored:
                new = self.new_id.get(old, old)
                out.append(ann if new == old else {**ann, "category_id": new})
        return out


def category_name(category: dict[str, Any]) -> str:
    """A category's name as the loader and the evaluator show it (its id if it has none)."""
    return str(category.get("name", category["id"]))


def _where(loc: tuple[str | int, ...]) -> str:
    """`data.classes.merge.vehicle` for ("merge", "vehicle"); list indexes are left out."""
    return ".".join(["data", "classes", *(str(p) for p in loc if not isinstance(p, int))])


def mapping_error(problems: list[ClassMapProblem], names: list[str]) -> DatasetError:
    """One DatasetError naming the fields at fault and listing the dataset's classes."""
    shown = "; ".join(f"{_where(loc)}: {message}" for loc, message in problems[:PROBLEMS_SHOWN])
    more = len(problems) - PROBLEMS_SHOWN
    counted = f" (and {more} more)" if more > 0 else ""
    return DatasetError(f"{shown}{counted}; the dataset's classes are {class_listing(names)}")


def category_map(categories: list[dict[str, Any]], classes: ClassMapSpec) -> CategoryMap:
    """The map of `categories` (sorted by id) under `classes`; DatasetError if a name of the
    mapping is not a category of the dataset, or a new name is one kept as it is."""
    names = [category_name(c) for c in categories]
    problems = classes.problems(names)
    if problems:
        raise mapping_error(problems, names)
    sources, ignore = classes.sources(), set(classes.ignore)
    mapped: dict[int, dict[str, Any]] = {}
    new_id: dict[int, int] = {}
    ignored: set[int] = set()
    gathered: dict[str, list[dict[str, Any]]] = {}
    for category, name in zip(categories, names, strict=True):
        old = int(category["id"])
        if name in ignore:
            ignored.add(old)
        elif name in sources:
            gathered.setdefault(sources[name], []).append(category)
        else:
            mapped[old], new_id[old] = category, old
    for name, members in gathered.items():
        first = min(int(c["id"]) for c in members)
        record: dict[str, Any] = {"id": first, "name": name}
        supercategories = {c.get("supercategory") for c in members}
        if len(supercategories) == 1 and None not in supercategories:
            record["supercategory"] = supercategories.pop()
        mapped[first] = record
        new_id.update({int(c["id"]): first for c in members})
    return CategoryMap(categories=mapped, new_id=new_id, ignored=frozenset(ignored))


def _mapped_split(split: CocoSplit, mapping: CategoryMap) -> CocoSplit:
    coco = dict(split.coco)
    coco["categories"] = mapping.split_categories(split.coco.get("categories", []))
    coco["annotations"] = mapping.annotations(split.coco.get("annotations", []))
    return replace(split, coco=coco)


def apply_class_map(source: DatasetSource, classes: ClassMapSpec | None) -> DatasetSource:
    """`source` with `classes` applied to every split (itself when there is no mapping).

    Names are matched against the categories of all splits; DatasetError names the fields
    whose names do not fit and lists the dataset's classes.
    """
    if classes is None:
        return source
    mapping = category_map(source.categories, classes)
    splits = {name: _mapped_split(split, mapping) for name, split in source.splits.items()}
    return replace(source, splits=splits)
