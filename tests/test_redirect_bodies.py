"""A redirect's body with ``stream=True``: read bounded before the hop is followed."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from observable_session import DeadlineExceeded, Session
from tests.rawserver import RawServer, start

MB = 1 << 20


def redirect_then_ok(size: int, *, drip: bool = False) -> Any:
    """``/`` answers a 302 to ``/done`` with a body of ``size`` bytes; ``/done`` answers 200."""

    def handler(server: RawServer, conn: socket.socket, head: bytes) -> bool:
        if head.startswith(b"GET /done"):
            server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return True
        server.send(conn, b"HTTP/1.1 302 Found\r\nLocation: /done\r\n")
        server.send(conn, b"Content-Length: %d\r\n\r\n" % size)
        block = b"r" * 65536
        left = size
        try:
            while left > 0:
                if drip and server.stopping.wait(0.05):
                    return False
                chunk = block[: 1 if drip else left]
                server.send(conn, chunk)
                left -= len(chunk)
        except OSError:
            return False
        return True

    return handler


def test_a_huge_302_body_is_not_read_whole(raw: list[RawServer]) -> None:
    """A 302 with a 200 MB body and stream=True: a bounded prefix is read, its connection closed."""
    server = start(raw, redirect_then_ok(200 * MB))
    with Session(base_url=server.url) as s:
        response = s.get("/", stream=True, timeout=10)
        assert response.content == b"ok" and response.history[0].status_code == 302
        assert response.history[0].content == b""
    time.sleep(0.2)
    assert server.sent < 32 * MB, server.sent
    assert server.connections == 2  # the half-read connection was not reused


def test_a_small_302_body_is_kept_and_its_connection_reused(raw: list[RawServer]) -> None:
    """A 302 body within error_body_limit is read whole, kept on the history, and reused."""
    server = start(raw, redirect_then_ok(100))
    with Session(base_url=server.url) as s:
        response = s.get("/", stream=True, timeout=10)
        assert response.content == b"ok"
        assert response.history[0].content == b"r" * 100
    assert (server.requests, server.connections) == (2, 1)


def test_a_dripping_302_body_does_not_hold_the_call(raw: list[RawServer]) -> None:
    """A 302 whose body drips a byte every 50 ms: followed after the drain budget, not 50 s."""
    server = start(raw, redirect_then_ok(1000, drip=True))
    started = time.monotonic()
    with Session(base_url=server.url) as s:
        assert s.get("/", stream=True, timeout=10).content == b"ok"
    assert time.monotonic() - started < 2


def test_a_dripping_302_body_under_a_deadline_raises_in_time(raw: list[RawServer]) -> None:
    """Dripping 302 bodies (chained) under a deadline: DeadlineExceeded within 0.1 s of it."""

    def handler(server: RawServer, conn: socket.socket, head: bytes) -> bool:
        server.send(conn, b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 40\r\n\r\n")
        for _ in range(40):
            if server.stopping.wait(0.05):
                return False
            server.send(conn, b"r")
        return True

    server = start(raw, handler)
    started = time.monotonic()
    with Session(base_url=server.url) as s, pytest.raises(DeadlineExceeded):
        s.get("/", stream=True, timeout=10, deadline=0.5)
    assert time.monotonic() - started < 0.6
