"""A minimal keep-alive HTTP/1.1 client for load generation (what `wrk` does, in asyncio).

`bench.api_load` drives every server under test from one Python process on the same small
machine as the servers: whatever the client spends per request is CPU the servers do not
get. httpx's AsyncClient spends about a millisecond per request (request building, header
models, cookies, decoding); this client writes one prepared request and reads the status
line, the headers and a `Content-Length` or chunked body, and nothing else. It checks the
status, not the body: the servers' answers are checked by the API's own tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlsplit


class HTTPProtocolError(Exception):
    """The server's answer is not HTTP/1.1 as this client reads it."""


class KeepAliveConnection:
    """One TCP connection to `base` (http://host:port), reopened when the server closes it."""

    def __init__(self, base: str, headers: dict[str, str], *, timeout: float) -> None:
        parts = urlsplit(base)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"{base!r}: only http://host:port is supported")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        fixed = {"Host": f"{self.host}:{self.port}", "Accept-Encoding": "gzip", **headers}
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    def encode(self, method: str, path: str, body: dict[str, Any] | None) -> bytes:
        """The request's bytes: a JSON body when `body` is given."""
        head = f"{method} {path} HTTP/1.1\r\n{self._fixed}"
        if body is None:
            return f"{head}\r\n".encode()
        payload = json.dumps(body, separators=(",", ":")).encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        return head.encode() + payload

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> int:
        """Send one request, read the whole answer; its status code."""
        return await asyncio.wait_for(self._exchange(self.encode(method, path, body)), self.timeout)

    async def _exchange(self, data: bytes) -> int:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        try:
            self._writer.write(data)
            await self._writer.drain()
            status, keep_alive = await read_response(self._reader)
        except BaseException:
            await self.close()
            raise
        if not keep_alive:
            await self.close()
        return status

    async def close(self) -> None:
        """Close the connection (the next request opens another)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response (status line, headers, body); (status, keep-alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HTTPProtocolError(f"not a status line: {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    keep_alive = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        await _read_chunks(reader)
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif status >= 200 and status not in (204, 304):
        await reader.read()  # the body runs to the end of the connection
        keep_alive = False
    return status, keep_alive


async def _read_chunks(reader: asyncio.StreamReader) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then a blank line
                pass
            return
        await reader.readexactly(size + 2)  # the chunk and its CRLF
