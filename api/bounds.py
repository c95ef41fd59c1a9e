"""Limits of what the API takes in: integers the database columns hold, text without NUL."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

MAX_ID = 2**31 - 1
"""Largest row id of an `Integer` primary key (PostgreSQL int4): teams, users, jobs, ..."""

MAX_BIG_ID = 2**63 - 1
"""Largest id of a `BigInteger` primary key (metric points, job events; int8 and SQLite)."""

MAX_OFFSET = 2**31 - 1
"""Largest `?offset=` of a list."""

NUL = "\x00"


def parse_row_id(text: str, *, maximum: int = MAX_ID) -> int | None:
    """`text` as a row id (ASCII digits, 1 to `maximum`), else None."""
    raw = text.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(maximum)):
        return None
    value = int(raw)
    return value if 1 <= value <= maximum else None


def nul_message(what: str = "the value") -> str:
    """The message of a 422 for a NUL byte (the database's text columns cannot hold one)."""
    return f"{what} contains a NUL byte (\\u0000), which is not allowed"


def bad_json_values(
    value: Any, loc: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(loc, message) of every NUL in the strings and keys of `value` and every non-finite number.

    JSON parsed by Python may carry NaN and Infinity, which neither PostgreSQL's json type
    nor a strict JSON reader accepts.
    """
    if isinstance(value, str):
        if NUL in value:
            yield loc, nul_message()
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield loc, f"{value} is not a finite number"
    elif isinstance(value, dict):
        for key, item in value.items():
            key_loc = (*loc, str(key))
            if isinstance(key, str) and NUL in key:
                yield key_loc, nul_message("the key")
            yield from bad_json_values(item, key_loc)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from bad_json_values(item, (*loc, index))
