"""User errors as HTTP answers with a JSON body that names the field or file at fault."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import HTTPException, status


class FieldError(HTTPException):
    """A 4xx answer whose `detail` lists `{loc, msg, type}` like FastAPI's own 422."""

    def __init__(
        self,
        status_code: int,
        loc: Sequence[str | int],
        msg: str,
        *,
        type: str = "value_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            status_code,
            detail=[{"loc": list(loc), "msg": msg, "type": type}],
            headers=headers,
        )


class FieldErrors(HTTPException):
    """A 422 answer carrying several field errors at once."""

    def __init__(self, errors: list[dict[str, object]]) -> None:
        super().__init__(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=errors)


def not_found(resource: str, resource_id: int | str) -> HTTPException:
    """404 for a row that does not exist or belongs to another team (no difference shown)."""
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{resource} {resource_id} not found")


def conflict(message: str) -> HTTPException:
    """409 for an action the resource's current state does not allow."""
    return HTTPException(status.HTTP_409_CONFLICT, detail=message)


def unavailable(message: str) -> HTTPException:
    """503 when a service the request needs (broker, blob store) cannot be reached."""
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=message)
