"""Parsing untrusted JSON: bounded nesting (checked before parsing), no NaN or Infinity."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

MAX_DEPTH = 64
"""Deepest nesting of arrays/objects accepted; COCO files need 5 (segmentation polygons)."""

_KEEP_ONLY_STRUCTURE = bytes(range(256)).translate(None, b'"[]{}')
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
_CHUNK = 1 << 23


class JsonError(ValueError):
    """JSON that is refused: broken, nested too deeply, or holding NaN / Infinity."""


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of `[`/`{` in JSON text, brackets inside strings not counted.

    Linear and vectorised (a few bytes operations and numpy), so it is cheap next to parsing
    and never recurses: escaped backslashes and quotes are dropped, then everything but quotes
    and brackets; adjacent quote pairs carry no bracket and go too; quote parity then tells
    which of the remaining brackets lie inside strings.
    """
    flat = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _KEEP_ONLY_STRUCTURE)
    flat = flat.replace(b'""', b"")
    symbols = np.frombuffer(flat, dtype=np.uint8)
    level, in_string, deepest = 0, 0, 0
    for start in range(0, len(symbols), _CHUNK):
        chunk = symbols[start : start + _CHUNK]
        inside = (np.cumsum(chunk == ord('"'), dtype=np.int64) + in_string) & 1
        step = _STEP[chunk].astype(np.int64)
        step[inside.astype(bool)] = 0
        levels = np.cumsum(step) + level
        deepest = max(deepest, int(levels.max()))
        level, in_string = int(levels[-1]), int(inside[-1])
    return deepest


def _refuse_constant(name: str) -> Any:
    raise JsonError(f"{name} is not allowed (JSON numbers must be finite)")


def loads_strict(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON bytes (UTF-8, BOM allowed); JsonError names what is wrong and where."""
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise JsonError(f"nested {depth} levels deep; at most {max_depth} are allowed")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JsonError(f"not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise JsonError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except RecursionError as exc:  # cannot happen below max_depth; kept as a last guard
        raise JsonError(f"nested too deeply; at most {max_depth} levels are allowed") from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        if isinstance(exc, JsonError):
            raise
        raise JsonError(f"not valid JSON ({str(exc).split(';')[0]})") from exc
