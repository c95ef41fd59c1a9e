"""bench.http_client against a real HTTP/1.1 server on loopback (http.server in a thread)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from bench.http_client import HTTPProtocolError, KeepAliveConnection


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str, bytes, str]]] = []
    connections: ClassVar[set[tuple[str, int]]] = set()

    def log_message(self, *_args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append(
            (self.command, self.path, body, self.headers.get("Authorization", ""))
        )
        type(self).connections.add(self.client_address)
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked world"):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            payload = b"bye"
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True
        elif self.path == "/garbage":
            self.wfile.write(b"SPAM 200 OK\r\n\r\n")
            self.close_connection = True
        else:
            payload = json.dumps({"path": self.path}).encode()
            self.send_response(404 if self.path == "/missing" else 200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    do_GET = _answer
    do_POST = _answer


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen = []
    _Handler.connections = set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_requests_share_one_connection_and_report_statuses(server: str) -> None:
    async def go() -> list[int]:
        connection = KeepAliveConnection(server, {"Authorization": "Bearer t"}, timeout=5.0)
        try:
            return [
                await connection.request("GET", "/a"),
                await connection.request("GET", "/chunked"),
                await connection.request("POST", "/search", {"q": [1, 2]}),
                await connection.request("GET", "/missing"),
            ]
        finally:
            await connection.close()

    assert asyncio.run(go()) == [200, 200, 200, 404]
    assert [(m, p) for m, p, _, _ in _Handler.seen] == [
        ("GET", "/a"),
        ("GET", "/chunked"),
        ("POST", "/search"),
        ("GET", "/missing"),
    ]
    assert json.loads(_Handler.seen[2][2]) == {"q": [1, 2]}
    assert {auth for *_, auth in _Handler.seen} == {"Bearer t"}
    assert len(_Handler.connections) == 1  # kept alive across a chunked body


def test_a_closed_connection_is_reopened(server: str) -> None:
    async def go() -> list[int]:
        connection = KeepAliveConnection(server, {}, timeout=5.0)
        try:
            return [await connection.request("GET", p) for p in ("/close", "/b", "/c")]
        finally:
            await connection.close()

    assert asyncio.run(go()) == [200, 200, 200]
    assert len(_Handler.connections) == 2


def test_an_answer_that_is_not_http_raises(server: str) -> None:
    async def go() -> int:
        connection = KeepAliveConnection(server, {}, timeout=5.0)
        try:
            return await connection.request("GET", "/garbage")
        finally:
            await connection.close()

    with pytest.raises(HTTPProtocolError, match="not a status line"):
        asyncio.run(go())


def test_only_plain_http_urls() -> None:
    with pytest.raises(ValueError, match="only http://"):
        KeepAliveConnection("https://example.org", {}, timeout=1.0)


@pytest.mark.parametrize("client", ["raw", "httpx"])
def test_drive_counts_answers_and_failures_with_either_client(server: str, client: str) -> None:
    from bench.api_load import drive

    paths = iter(["/a", "/missing", "/b", "/missing", "/c", "/d"])

    def make(_rng: object) -> tuple[str, str, None]:
        return "GET", next(paths), None

    result = asyncio.run(
        drive(server, "t", make, clients=2, requests=6, max_seconds=10.0, client=client)
    )
    assert len(result.latencies) == 6
    assert result.errors == 2 and result.reasons == {"HTTP 404": 2}
    assert {auth for *_, auth in _Handler.seen} == {"Bearer t"}
