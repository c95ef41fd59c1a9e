"""Paths named by a dataset, kept inside its root: containment, relative names, folder search.

Every path that comes from a dataset (a COCO `file_name`, a VOC `<filename>` or ImageSets
entry, an annotation file found in the tree) is resolved against the dataset root, symlinks
followed, and refused unless it stays inside. The decision never looks at whether the target
exists, so a refusal reads the same for `/etc/passwd` and for a path that leads nowhere.
"""

from __future__ import annotations

import os
from pathlib import Path

SEARCH_DEPTH = 2
"""How many folders below the given root a dataset may start (archives often add one)."""

OUTSIDE = "points outside the dataset"
"""The one refusal wording for any dataset path that leaves the dataset root."""

IGNORED_FOLDERS = frozenset({"__MACOSX"})
"""Folders archivers add that never hold a dataset (macOS resource forks)."""


def inside(path: Path, root: Path) -> bool:
    """True if `path` (symlinks resolved) is `root` or lies below it (also resolved)."""
    try:
        resolved, base = path.resolve(), root.resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return resolved == base or base in resolved.parents


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def contained(root: Path, base: Path, name: str) -> Path | None:
    """`base / name` resolved if it stays inside `root`, else None (absolute, `..`, symlinks).

    Backslashes count as separators (as when unpacking archives); names with a NUL character
    are refused too. Whether the target exists plays no part.
    """
    name = name.replace("\\", "/")
    if not name or "\x00" in name or os.path.isabs(name):
        return None
    top_lexical, base_lexical = os.path.abspath(root), os.path.abspath(base)
    if _under(base_lexical, top_lexical) and not _under(
        os.path.normpath(os.path.join(base_lexical, name)), top_lexical
    ):
        return None  # climbs out by its spelling alone: refused before touching anything
    try:
        resolved, top = (base / name).resolve(), root.resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if resolved == top or top in resolved.parents:
        return resolved
    return None


def is_file(path: Path) -> bool:
    """`path.is_file()` that answers False instead of raising (names too long, loops...)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def relative_name(path: Path, root: Path) -> str:
    """`path` relative to `root` (POSIX separators); never an absolute path (else the name)."""
    for candidate, base in ((path, root), (path, root.resolve())):
        try:
            return candidate.relative_to(base).as_posix()
        except ValueError:
            pass
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except (OSError, RuntimeError, ValueError):
        return path.name


def candidate_roots(root: Path, depth: int = SEARCH_DEPTH) -> list[Path]:
    """`root` and its sub-folders up to `depth` levels down, breadth first, inside `root` only.

    Hidden folders, `__MACOSX` and symlinked folders that lead outside `root` are skipped.
    """
    roots = [root]
    frontier = [root]
    for _ in range(depth):
        children: list[Path] = []
        for folder in frontier:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            children.extend(
                p
                for p in entries
                if not p.name.startswith(".")
                and p.name not in IGNORED_FOLDERS
                and p.is_dir()
                and inside(p, root)
            )
        frontier = children
        roots.extend(frontier)
    return roots


def scrub_paths(text: str, *roots: Path) -> str:
    """`text` with the absolute spellings of `roots` cut (`/x/root/a.json` -> `a.json`).

    A safety net for messages of libraries that quote the paths they were given.
    """
    spellings: set[str] = set()
    for root in roots:
        try:
            spellings.update((str(root.absolute()), str(root.resolve())))
        except (OSError, RuntimeError):
            spellings.add(str(root.absolute()))
    for spelling in sorted(spellings - {"/"}, key=len, reverse=True):
        text = text.replace(spelling + "/", "").replace(spelling, Path(spelling).name)
    return text
