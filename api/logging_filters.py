"""Log filters that keep credentials out of logs: query parameters of tickets and tokens."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
REDACTED_PARAMS = frozenset({"ticket", "access_token", "token"})
REDACTED = "[redacted]"

# One `name=value` of a query string; the value runs up to the next separator or the end of
# the URL inside a log line (space or quote).
_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#\s\"?]+)=(?P<value>[^&;#\s\"]*)")


def redact_query(text: str) -> str:
    """`text` with the values of credential query parameters replaced by `[redacted]`."""
    if "?" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if unquote_plus(name).strip().lower() not in REDACTED_PARAMS:
            return match.group(0)
        return f"{match.group('sep')}{name}={REDACTED}"

    return _PARAM.sub(replace, text)


def _redacted(value: Any) -> Any:
    return redact_query(value) if isinstance(value, str) else value


class QueryRedactionFilter(logging.Filter):
    """Rewrites a record's message and arguments so that no ticket or token is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redacted(arg) for key, arg in record.args.items()}
        return True


def install_access_log_redaction() -> None:
    """Attach the redaction filter to uvicorn's access logger (once per process)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, QueryRedactionFilter) for f in logger.filters):
        logger.addFilter(QueryRedactionFilter())
