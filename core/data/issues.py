"""Problems found in a dataset: one precise issue per thing that is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REPR_LIMIT = 80
"""Longest rendering of a value from the data in a message (the rest becomes `...`)."""
NAME_LIMIT = 300
"""Longest rendering of a file name from the data (longer than any real path component)."""


def brief_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """`repr(value)` cut to `limit` characters, so a huge or deeply nested value stays short."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # ValueError: int too large to render
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class ValidationIssue:
    """One problem in a dataset: the file, the image / annotation it concerns, and what is wrong."""

    file: str
    message: str
    image_id: int | str | None = None
    annotation_id: int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping of this issue."""
        return {
            "file": self.file,
            "image_id": self.image_id,
            "annotation_id": self.annotation_id,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = [self.file]
        if self.image_id is not None:
            where.append(f"image {self.image_id}")
        if self.annotation_id is not None:
            where.append(f"annotation {self.annotation_id}")
        return f"{', '.join(where)}: {self.message}"


class DatasetError(ValueError):
    """A dataset that cannot be read; `issues` lists what is wrong (file, ids, message)."""

    def __init__(self, message: str, issues: list[ValidationIssue] | None = None) -> None:
        self.issues: list[ValidationIssue] = list(issues or [])
        if self.issues:
            shown = "; ".join(str(i) for i in self.issues[:5])
            more = len(self.issues) - 5
            message = f"{message}: {shown}" + (f" (and {more} more)" if more > 0 else "")
        super().__init__(message)


@dataclass(frozen=True)
class DatasetWarning:
    """Something a usable dataset likely gets wrong: what (`code`), where, and what to do.

    Codes: `class_missing_from_train`, `class_without_boxes`, `objects_below_min_size`.
    `details` holds the figures behind the message (JSON-able).
    """

    code: str
    message: str
    file: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping of this warning."""
        return {
            "code": self.code,
            "file": self.file,
            "message": self.message,
            "details": self.details,
        }

    def __str__(self) -> str:
        return f"{self.file}: {self.message}" if self.file else self.message
