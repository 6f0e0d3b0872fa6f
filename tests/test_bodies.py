"""Error bodies with stream=True: bounded in bytes and time, decoded, never a bare exception."""

from __future__ import annotations

import gzip
import socket
import time
from typing import Any

import pytest
import requests

from observable_session import (
    ApiConnectionError,
    ApiContentDecodingError,
    ApiHTTPError,
    RequestsApiError,
    Session,
)
from tests.rawserver import RawServer, start

MB = 1 << 20


def head(status: str, *headers: str) -> bytes:
    """A response head."""
    return ("\r\n".join([f"HTTP/1.1 {status}", *headers]) + "\r\n\r\n").encode("latin-1")


def huge(status: str, size: int) -> Any:
    """A handler answering ``status`` with a body of ``size`` bytes, sent as it is read."""

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(conn, head(status, f"Content-Length: {size}", "Content-Type: text/plain"))
        block = (b"e" * 63 + b" ") * 1024  # words: a cut body keeps all but its last
        left = size
        while left > 0:
            server.send(conn, block[:left])
            left -= len(block)
        return True

    return handler


def session(url: str, **kwargs: Any) -> Session:
    """A session that records sleeps instead of sleeping."""
    return Session(base_url=url, sleep=lambda s: None, **kwargs)


def test_huge_500_message_reads_a_bounded_prefix(raw: list[RawServer]) -> None:
    """A 200 MB 500 with stream=True: a bounded prefix is read, then the connection is closed."""
    handler = huge("500 Internal Server Error", 200 * MB)
    server = start(raw, handler)
    with session(server.url, retries_total=0) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/big", stream=True)
    assert info.value.status_code == 500 and "eeee" in str(info.value)
    time.sleep(0.2)
    assert server.sent < 32 * MB, server.sent


def test_huge_503_retried_twice_is_drained_bounded(raw: list[RawServer]) -> None:
    """A 200 MB 503 retried twice: each drain reads a bounded prefix and closes the connection."""
    server = start(raw, huge("503 Service Unavailable", 200 * MB))
    started = time.monotonic()
    with session(server.url) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/big", stream=True)
    assert info.value.attempts == 3 and time.monotonic() - started < 10
    time.sleep(0.2)
    assert server.connections == 3 and server.sent < 3 * 32 * MB, server.sent


def test_message_reads_at_most_error_body_limit_bytes(raw: list[RawServer]) -> None:
    """The message read stops at error_body_limit bytes (counted at the response's read1)."""
    server = start(raw, huge("400 Bad Request", 4 * MB))
    counted: list[int] = []

    def count_reads(r: requests.Response, **_: Any) -> requests.Response:
        original = r.raw.read1

        def read1(amt: int | None = None, decode_content: bool | None = None) -> bytes:
            data: bytes = original(amt, decode_content=decode_content)
            counted.append(len(data))
            return data

        r.raw.read1 = read1  # type: ignore[method-assign]
        return r

    with session(server.url, error_body_limit=1000) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/x", stream=True, hooks={"response": count_reads})
    assert sum(counted) == 1000
    assert str(info.value).count("e") >= 999 - 100  # the message keeps 1000 characters


def test_message_is_decoded_with_the_response_charset(raw: list[RawServer]) -> None:
    """A latin-1 body is decoded as latin-1, not as UTF-8."""
    body = "café déjà".encode("latin-1")

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(
            conn,
            head(
                "400 Bad Request",
                f"Content-Length: {len(body)}",
                "Content-Type: text/plain; charset=iso-8859-1",
            )
            + body,
        )
        return True

    server = start(raw, handler)
    with session(server.url) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/x", stream=True)
    assert "café déjà" in str(info.value)
    assert info.value.response is not None and info.value.response.content == body


def test_dripping_error_body_does_not_hold_the_call(raw: list[RawServer]) -> None:
    """A 500 body dripping a byte per 50 ms (10 kB long) ends within the read budget."""

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(conn, head("500 Internal Server Error", "Content-Length: 10000"))
        for _ in range(10000):
            time.sleep(0.05)
            server.send(conn, b"d")
        return False

    server = start(raw, handler)
    started = time.monotonic()
    with session(server.url) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/drip", stream=True)
    assert info.value.attempts == 3
    assert time.monotonic() - started < 2.5


def test_cut_short_chunked_4xx_is_typed(raw: list[RawServer]) -> None:
    """A 404 whose chunked body is cut short: ApiHTTPError with stream=True, typed without."""

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(conn, head("404 Not Found", "Transfer-Encoding: chunked") + b"10\r\nshort")
        return False

    server = start(raw, handler)
    with session(server.url) as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/cut", stream=True)
        assert info.value.status_code == 404
        with pytest.raises(ApiConnectionError):
            s.get("/cut")


def test_broken_gzip_5xx_is_typed(raw: list[RawServer]) -> None:
    """A 500 with broken gzip: ApiHTTPError with stream=True, ApiContentDecodingError without."""
    body = gzip.compress(b"x" * 100)[:10] + b"garbage-not-gzip"

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(
            conn,
            head(
                "500 Internal Server Error",
                f"Content-Length: {len(body)}",
                "Content-Encoding: gzip",
            )
            + body,
        )
        return True

    server = start(raw, handler)
    with session(server.url) as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/gz", stream=True)
        assert info.value.attempts == 3
        with pytest.raises(ApiContentDecodingError):
            s.get("/gz")


def test_every_failure_is_typed_under_stream(raw: list[RawServer]) -> None:
    """stream=True with cut-short, broken-gzip and reset bodies: only RequestsApiError escapes."""
    faults = [
        head("400 Bad Request", "Transfer-Encoding: chunked") + b"zz\r\n",
        head("502 Bad Gateway", "Content-Length: 20", "Content-Encoding: gzip") + b"\x1f\x8bxx",
        head("503 Service Unavailable", "Content-Length: 5000") + b"partial",
    ]
    index = iter(range(1000))

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(conn, faults[next(index) % len(faults)])
        return False

    server = start(raw, handler)
    with session(server.url, retries_total=0) as s:
        for _ in range(len(faults) * 2):
            with pytest.raises(RequestsApiError):
                s.post("/f", stream=True, data=b"x")


def test_without_stream_the_body_is_read_as_requests_does(raw: list[RawServer]) -> None:
    """stream=False: the whole 1 MB body is on the error's response, the message is capped."""
    server = start(raw, huge("400 Bad Request", MB))
    with session(server.url) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/x")
    assert info.value.response is not None and len(info.value.response.content) == MB
    assert len(str(info.value)) < 2000


def test_small_retried_body_is_drained_and_connection_reused(raw: list[RawServer]) -> None:
    """A small 503 body is drained: the retry goes over the same connection."""
    answers = iter([head("503 Service Unavailable", "Content-Length: 4") + b"busy"])

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(conn, next(answers, head("200 OK", "Content-Length: 2") + b"ok"))
        return True

    server = start(raw, handler)
    with session(server.url) as s:
        assert s.get("/r", stream=True).content == b"ok"
    assert (server.requests, server.connections) == (2, 1)


def test_large_retried_body_closes_the_connection(raw: list[RawServer]) -> None:
    """A 503 body larger than the limit is not drained: the retry uses a new connection."""
    answers = iter([head("503 Service Unavailable", f"Content-Length: {MB}") + b"b" * MB])

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        try:
            server.send(conn, next(answers, head("200 OK", "Content-Length: 2") + b"ok"))
        except OSError:
            return False
        return True

    server = start(raw, handler)
    with session(server.url) as s:
        assert s.get("/r", stream=True).content == b"ok"
    assert (server.requests, server.connections) == (2, 2)


@pytest.mark.parametrize("charset", ["idna", "punycode", "base64", "x-unknown"])
@pytest.mark.parametrize("stream", [True, False])
def test_hostile_charset_still_gives_a_typed_error(
    raw: list[RawServer], charset: str, stream: bool
) -> None:
    """A charset that cannot decode (idna raises UnicodeError) falls back to UTF-8, typed."""
    body = b"\xff\xfe bad \x80 bytes"

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(
            conn,
            head(
                "400 Bad Request",
                f"Content-Length: {len(body)}",
                f"Content-Type: text/plain; charset={charset}",
            )
            + body,
        )
        return True

    server = start(raw, handler)
    with session(server.url) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/x", stream=stream)
    assert "bad" in str(info.value) and "bytes" in str(info.value)


KEY = "sk-live-0123456789abcdefghijklmnop"


@pytest.mark.parametrize("pad", [980, 990, 995, 999])
@pytest.mark.parametrize("stream", [True, False])
def test_a_secret_across_the_message_cut_is_masked_whole(
    raw: list[RawServer], pad: int, stream: bool
) -> None:
    """A server that pads its echo so the key straddles the 1000-character cut leaks nothing."""
    body = ("x" * pad + KEY + " tail").encode()

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(conn, head("400 Bad Request", f"Content-Length: {len(body)}") + body)
        return True

    server = start(raw, handler)
    with (
        Session(base_url=server.url, auth_headers={"X-Key": KEY}) as s,
        pytest.raises(ApiHTTPError) as info,
    ):
        s.get("/x", stream=stream)
    message = str(info.value) + repr(info.value)
    assert not any(KEY[:n] in message for n in range(6, len(KEY) + 1)), message[-60:]


@pytest.mark.parametrize("stream", [True, False])
def test_deeply_nested_json_error_is_typed(raw: list[RawServer], stream: bool) -> None:
    """A JSON error body nested 30,000 deep (RecursionError in json) still gives ApiHTTPError."""
    body = b"[" * 30000 + b"]" * 30000

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(
            conn,
            head(
                "400 Bad Request", f"Content-Length: {len(body)}", "Content-Type: application/json"
            )
            + body,
        )
        return True

    server = start(raw, handler)
    with session(server.url) as s, pytest.raises(ApiHTTPError):
        s.get("/x", stream=stream)


@pytest.mark.parametrize("stream", [True, False])
def test_a_secret_cut_by_the_body_limit_is_not_half_shown(
    raw: list[RawServer], stream: bool
) -> None:
    """Padding that puts the key across the 64 KiB read limit (strip() brings it to the front)."""
    body = (" " * (65536 - 12) + KEY + " tail").encode()

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(conn, head("400 Bad Request", f"Content-Length: {len(body)}") + body)
        return True

    server = start(raw, handler)
    with (
        Session(base_url=server.url, auth_headers={"X-Key": KEY}) as s,
        pytest.raises(ApiHTTPError) as info,
    ):
        s.get("/x", stream=stream)
    message = str(info.value) + repr(info.value)
    assert not any(KEY[:n] in message for n in range(6, len(KEY) + 1)), message[-60:]


def test_a_secret_cut_where_the_server_stops_is_not_half_shown(raw: list[RawServer]) -> None:
    """stream=True: a body cut short in the middle of an echoed key shows none of it."""
    sent = ("x" * 500 + " " + KEY[:16]).encode()

    def handler(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(conn, head("400 Bad Request", "Content-Length: 5000") + sent)
        return False

    server = start(raw, handler)
    with (
        Session(base_url=server.url, auth_headers={"X-Key": KEY}) as s,
        pytest.raises(ApiHTTPError) as info,
    ):
        s.get("/x", stream=True)
    message = str(info.value) + repr(info.value)
    assert not any(KEY[:n] in message for n in range(6, 17)), message[-60:]


class _MinimalRaw:
    """A raw body of a custom transport: read1 and read only (no closed, no connection)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read1(self, n: int = -1, decode_content: bool | None = None) -> bytes:
        chunk, self._data = self._data[:n], self._data[n:]
        return chunk

    read = read1


class _Transport(requests.adapters.BaseAdapter):
    """Answers every request with a 500 whose body is a _MinimalRaw."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = 500
        response.raw = _MinimalRaw(b"custom transport says no")
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


@pytest.mark.parametrize("retries", [0, 2])
@pytest.mark.parametrize("stream", [True, False])
def test_a_custom_transport_raw_without_closed_is_read(retries: int, stream: bool) -> None:
    """A transport whose raw body is not urllib3's: retried, drained, the message has the body."""
    with Session(retries_total=retries, sleep=lambda s: None) as s:
        s.mount("mock://", _Transport())
        with pytest.raises(ApiHTTPError) as info:
            s.get("mock://host/x", stream=stream)
    assert "custom transport says no" in str(info.value)
    assert info.value.attempts == retries + 1
