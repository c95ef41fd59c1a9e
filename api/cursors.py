"""Keyset cursors of the job list: an opaque token naming the last row a page showed.

A cursor is the URL-safe base64 of `<created_at ISO 8601>|<id>`; clients pass back what
`next_cursor` gave them and never build one. Keyset pages stay right while jobs are added
(an offset would shift) and cost the same deep in the history as on the first page.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from api.bounds import MAX_ID

MAX_CURSOR_LENGTH = 200


class BadCursor(ValueError):
    """A string that is not a cursor this API issued."""


def encode_cursor(created_at: datetime, row_id: int) -> str:
    """The cursor of the row at (created_at, id)."""
    moment = (created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)).astimezone(UTC)
    raw = f"{moment.isoformat()}|{row_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """(created_at, id) from a cursor; BadCursor for anything `encode_cursor` did not make."""
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise BadCursor("not a cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        moment, _, row_id = raw.partition("|")
        created_at = datetime.fromisoformat(moment)
        number = int(row_id)
        if created_at.tzinfo is None or not 1 <= number <= MAX_ID:
            raise ValueError("out of range")
        return created_at.astimezone(UTC), number
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise BadCursor("not a cursor") from None
