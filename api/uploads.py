"""Streaming multipart uploads: the file part goes to a temporary file in chunks, size-capped."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request, status
from python_multipart import MultipartParser
from python_multipart.exceptions import ParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

from api.bounds import NUL, nul_message
from api.errors import FieldError
from api.filetypes import SNIFF_BYTES

logger = logging.getLogger(__name__)

MAX_FIELD_BYTES = 64 * 1024
"""Upper bound of a plain (non-file) form field; names and enum values are tiny."""

MULTIPART_OVERHEAD_BYTES = 1024 * 1024
"""Slack for boundaries and the small fields when comparing Content-Length to the file limit."""


@dataclass
class ReceivedUpload:
    """A multipart request taken in: its text fields and the one file, on local disk."""

    fields: dict[str, str]
    path: Path | None = None
    filename: str = ""
    size: int = 0
    sha256: str = ""
    head: bytes = b""

    def discard(self) -> None:
        """Delete the temporary file (idempotent)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


@dataclass
class _PartState:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)
    header_name: bytes = b""
    header_value: bytes = b""
    disposition: bytes = b""


def _too_large(file_field: str, max_bytes: int) -> FieldError:
    return FieldError(
        status.HTTP_413_CONTENT_TOO_LARGE,
        ["body", file_field],
        f"the file is larger than the limit of {max_bytes} bytes",
        type="too_large",
        headers={"Connection": "close"},
    )


async def receive_upload(
    request: Request, *, file_field: str, max_bytes: int, tmp_dir: Path
) -> ReceivedUpload:
    """Read a multipart body; the `file_field` part streams to disk, capped at `max_bytes`.

    Raises FieldError 413 (naming `file_field`) as soon as the cap is passed, 422 when the
    body is not multipart or has no such file; the temporary file is removed on any error.
    """
    content_type = request.headers.get("content-type", "")
    ctype, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise FieldError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            ["body"],
            "expected a multipart/form-data body with a file part",
            type="multipart",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        raise _too_large(file_field, max_bytes)

    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="upload-", dir=tmp_dir)
    upload = ReceivedUpload(fields={}, path=Path(tmp_name))
    out = os.fdopen(fd, "wb")
    digest = hashlib.sha256()
    part = _PartState()
    pending: list[bytes] = []
    errors: list[FieldError] = []
    seen_file = False

    def on_part_begin() -> None:
        nonlocal part
        part = _PartState()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part.header_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part.header_value += data[start:end]

    def on_header_end() -> None:
        if part.header_name.lower() == b"content-disposition":
            part.disposition = part.header_value
        part.header_name = b""
        part.header_value = b""

    def on_headers_finished() -> None:
        nonlocal seen_file
        _, options = parse_options_header(part.disposition)
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            part.filename = options[b"filename"].decode("utf-8", "replace")
            if part.name == file_field and NUL in part.filename:
                errors.append(
                    FieldError(422, ["body", file_field], nul_message("the file name"))
                )
            if part.name == file_field:
                if seen_file:
                    errors.append(
                        FieldError(422, ["body", file_field], "send exactly one file")
                    )
                seen_file = True
                upload.filename = part.filename

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if part.filename is not None:
            if part.name != file_field:
                return  # stray file parts are ignored, not stored
            upload.size += len(chunk)
            if upload.size > max_bytes:
                if not errors:
                    errors.append(_too_large(file_field, max_bytes))
                return
            if len(upload.head) < SNIFF_BYTES:
                upload.head += chunk[: SNIFF_BYTES - len(upload.head)]
            digest.update(chunk)
            pending.append(chunk)
        else:
            if len(part.data) + len(chunk) > MAX_FIELD_BYTES:
                errors.append(
                    FieldError(422, ["body", part.name], f"longer than {MAX_FIELD_BYTES} bytes")
                )
                return
            part.data.extend(chunk)

    def on_part_end() -> None:
        if part.filename is None and part.name:
            value = part.data.decode("utf-8", "replace")
            if NUL in value or NUL in part.name:
                errors.append(FieldError(422, ["body", part.name], nul_message()))
            upload.fields[part.name] = value

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        async for chunk in request.stream():
            parser.write(chunk)
            if errors:
                raise errors[0]
            if pending:
                data = b"".join(pending)
                pending.clear()
                # Disk writes go to a thread so a large upload never blocks the event loop.
                await anyio.to_thread.run_sync(out.write, data)
        parser.finalize()
        if errors:
            raise errors[0]
        out.close()
    except ParseError as exc:
        out.close()
        upload.discard()
        raise FieldError(422, ["body"], f"malformed multipart body: {exc}") from exc
    except ClientDisconnect:
        # Not a server error: nobody is left to answer, and the partial file is gone.
        out.close()
        upload.discard()
        logger.info("upload aborted by the client after %d bytes", upload.size)
        raise FieldError(
            400, ["body"], "the upload was aborted by the client", type="client_disconnect"
        ) from None
    except BaseException:
        out.close()
        upload.discard()
        raise
    if not seen_file:
        upload.discard()
        raise FieldError(422, ["body", file_field], "a file is required", type="missing")
    upload.sha256 = digest.hexdigest()
    return upload


def multipart_openapi(file_field: str, fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI request body of a streamed multipart route (FastAPI cannot infer it)."""
    properties: dict[str, Any] = {file_field: {"type": "string", "format": "binary"}}
    properties.update(fields)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [file_field],
                        "properties": properties,
                    }
                }
            },
        }
    }
