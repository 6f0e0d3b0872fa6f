"""The deadline holds against servers that drip, stall or never answer (real loopback sockets)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Timeout

from observable_session import DeadlineExceeded, RequestsApiError, Session
from observable_session._deadline import WATCHDOG, Watchdog
from tests.rawserver import RawServer

DEADLINE = 0.5
SLACK = 0.1  # the promise: raised within 0.1 s after the deadline

Handler = Callable[[RawServer, socket.socket, bytes], bool]


def drip_headers(server: RawServer, conn: socket.socket, _: bytes) -> bool:
    """Send the status line and headers one byte every 20 ms, for ever."""
    for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Drip: " + b"a" * 10_000:
        if server.stopping.wait(0.02):
            break
        server.send(conn, bytes([byte]))
    return False


def drip_body(server: RawServer, conn: socket.socket, _: bytes) -> bool:
    """Send the headers, then the body one byte every 20 ms."""
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while not server.stopping.wait(0.02):
        server.send(conn, b"b")
    return False


def stall_after_headers(server: RawServer, conn: socket.socket, _: bytes) -> bool:
    """Send the headers, then nothing."""
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    server.stopping.wait(10)
    return False


def never_answer(server: RawServer, conn: socket.socket, _: bytes) -> bool:
    """Read the request, answer nothing."""
    server.stopping.wait(10)
    return False


def drip_503(server: RawServer, conn: socket.socket, _: bytes) -> bool:
    """A 503 (retried) whose body drips."""
    server.send(conn, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100000\r\n\r\n")
    while not server.stopping.wait(0.02):
        server.send(conn, b"b")
    return False


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], RawServer]]:
    """Start raw servers; close them after the test."""
    servers: list[RawServer] = []

    def start(handler: Handler) -> RawServer:
        server = RawServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def timed(call: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """Seconds ``call`` took and what it raised."""
    started = time.monotonic()
    try:
        call()
    except BaseException as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


HOSTILE = [drip_headers, drip_body, stall_after_headers, never_answer, drip_503]


@pytest.mark.parametrize("handler", HOSTILE, ids=[h.__name__ for h in HOSTILE])
def test_deadline_holds_without_stream(serve: Any, handler: Handler) -> None:
    """stream=False: DeadlineExceeded within 0.1 s after the deadline, whatever the server does."""
    server = serve(handler)
    with Session(base_url=server.url, sleep=lambda s: None) as s:
        took, exc = timed(lambda: s.get("/x", deadline=DEADLINE))
    assert isinstance(exc, DeadlineExceeded), exc
    assert took < DEADLINE + SLACK, took


@pytest.mark.parametrize(
    "handler", [drip_headers, never_answer], ids=["drip_headers", "never_answer"]
)
def test_deadline_holds_with_stream_until_the_response(serve: Any, handler: Handler) -> None:
    """stream=True: the deadline holds up to the point the response would be returned."""
    server = serve(handler)
    with Session(base_url=server.url, deadline=DEADLINE) as s:
        took, exc = timed(lambda: s.get("/x", stream=True))
    assert isinstance(exc, DeadlineExceeded) and took < DEADLINE + SLACK, (exc, took)


def test_stream_response_is_returned_and_its_body_is_the_callers(serve: Any) -> None:
    """stream=True with a dripping body: the response comes back; reading it is not cut."""
    server = serve(drip_body)
    with Session(base_url=server.url, deadline=0.3) as s:
        response = s.get("/x", stream=True)
        time.sleep(0.4)  # past the deadline: the watch was cancelled when send returned
        assert response.raw.read(3) == b"bbb"
        response.close()


def test_deadline_holds_on_a_mounted_adapter(serve: Any) -> None:
    """An HTTPAdapter the caller mounts gets the watched pools too."""
    server = serve(drip_body)
    with Session(base_url=server.url) as s:
        s.mount("http://", HTTPAdapter(max_retries=0))
        took, exc = timed(lambda: s.get("/x", deadline=DEADLINE))
    assert isinstance(exc, DeadlineExceeded) and took < DEADLINE + SLACK, (exc, took)


def test_deadline_holds_after_unpickling(serve: Any) -> None:
    """A session rebuilt by pickle still holds its deadline."""
    import pickle

    server = serve(drip_body)
    with pickle.loads(pickle.dumps(Session(base_url=server.url, deadline=DEADLINE))) as s:
        took, exc = timed(lambda: s.get("/x"))
    assert isinstance(exc, DeadlineExceeded) and took < DEADLINE + SLACK, (exc, took)


def test_without_deadline_a_slow_body_is_read_whole(serve: Any) -> None:
    """No deadline: a body that takes longer than any deadline above is read to its end."""

    def slow(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n")
        for _ in range(30):
            time.sleep(0.02)
            server.send(conn, b"s")
        return True

    server = serve(slow)
    with Session(base_url=server.url) as s:
        assert s.get("/x").content == b"s" * 30


def test_a_fired_deadline_never_shuts_a_reused_connection(serve: Any) -> None:
    """A call that finished returns its connection; another call's use of it is never cut."""

    def answer(server: RawServer, conn: socket.socket, head: bytes) -> bool:
        if b"/slow" in head:
            time.sleep(0.5)
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    server = serve(answer)
    with Session(base_url=server.url) as s:
        assert s.get("/fast", deadline=0.2).content == b"ok"
        # The same pooled connection now serves a call without deadline past 0.2 s.
        assert s.get("/slow").content == b"ok"
    assert server.connections == 1


def test_many_threads_with_deadlines_each_hold(serve: Any) -> None:
    """Eight threads against a dripping server: every one raises DeadlineExceeded on time."""
    server = serve(drip_body)
    results: list[tuple[float, BaseException | None]] = []
    lock = threading.Lock()
    with Session(base_url=server.url) as s:

        def one() -> None:
            result = timed(lambda: s.get("/x", deadline=DEADLINE))
            with lock:
                results.append(result)

        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
    assert len(results) == 8
    assert all(isinstance(e, DeadlineExceeded) and t < DEADLINE + 0.3 for t, e in results)


def test_watchdog_heap_stays_bounded_when_calls_finish_first() -> None:
    """Cancelled watches are compacted away: 10 000 finished calls leave a small heap."""
    dog = Watchdog()
    far = time.monotonic() + 3600
    for _ in range(10_000):
        dog.cancel(dog.watch(far))
    assert dog.pending() < 200


def test_watchdog_fires_a_due_watch() -> None:
    """A watch whose time passes is marked fired by the shared thread."""
    watch = WATCHDOG.watch(time.monotonic() + 0.05)
    time.sleep(0.2)
    assert watch.fired
    WATCHDOG.cancel(watch)


def test_deadline_exceeded_is_a_requests_timeout(serve: Any) -> None:
    """The raised error keeps requests' hierarchy (except requests.Timeout works)."""
    server = serve(never_answer)
    with Session(base_url=server.url) as s, pytest.raises(requests.Timeout):
        s.get("/x", deadline=0.2)


class _Conn:
    """Stands for a urllib3 connection: just its socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock


def test_a_detached_connection_is_never_shut() -> None:
    """A connection back in the pool (detached) survives its old call's deadline firing."""
    left, right = socket.socketpair()
    with left, right:
        watch = Watchdog().watch(time.monotonic())
        conn = _Conn(left)
        watch.attach(conn)
        watch.detach(conn)
        watch.fire()
        right.sendall(b"x")
        assert watch.fired and not watch.shut and left.recv(1) == b"x"


def test_an_attached_connection_is_shut_when_fired() -> None:
    """Firing shuts the attached socket: a blocked reader sees EOF at once."""
    left, right = socket.socketpair()
    with left, right:
        watch = Watchdog().watch(time.monotonic())
        watch.attach(_Conn(left))
        watch.fire()
        left.settimeout(1)
        assert watch.shut and left.recv(1) == b""


def test_a_hook_request_without_deadline_is_not_cut_by_the_outer_one(serve: Any) -> None:
    """A request made from a response hook is its own call: the outer deadline never cuts it."""

    def answer(server: RawServer, conn: socket.socket, head: bytes) -> bool:
        if b"/slow" in head:
            time.sleep(0.6)
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    server = serve(answer)
    inner: list[bytes] = []
    with Session(base_url=server.url) as s:

        def hook(r: requests.Response, **_: Any) -> requests.Response:
            if r.url.endswith("/outer"):
                inner.append(s.get("/slow").content)
            return r

        assert s.get("/outer", deadline=0.3, hooks={"response": hook}).content == b"ok"
    assert inner == [b"ok"] and server.requests == 2  # the inner call was never cut and retried


def test_error_message_read_is_cut_by_the_deadline(serve: Any) -> None:
    """stream=True, a dripping 500: building the message stops at the deadline too."""

    def drip_500(server: RawServer, conn: socket.socket, _: bytes) -> bool:
        server.send(conn, b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 9999\r\n\r\n")
        while not server.stopping.wait(0.02):
            server.send(conn, b"m")
        return False

    server = serve(drip_500)
    with Session(base_url=server.url, retries_total=0) as s:
        took, exc = timed(lambda: s.get("/x", stream=True, deadline=0.3))
    assert exc is not None and isinstance(exc, RequestsApiError) and took < 0.3 + SLACK, took


def test_urllib3_timeout_object_is_cut_by_the_deadline(serve: Any) -> None:
    """timeout=urllib3.Timeout(...) is cut to the deadline like a number or a pair."""
    server = serve(never_answer)
    with Session(base_url=server.url) as s:
        took, exc = timed(lambda: s.get("/x", timeout=Timeout(connect=5, read=30), deadline=0.3))
    assert isinstance(exc, DeadlineExceeded) and took < 0.3 + SLACK, took


@pytest.mark.parametrize("handler", [drip_body, drip_headers], ids=["drip_body", "drip_headers"])
def test_deadline_holds_for_post(serve: Any, handler: Handler) -> None:
    """POST (never retried after a read failure) gets DeadlineExceeded on time too."""
    server = serve(handler)
    with Session(base_url=server.url) as s:
        took, exc = timed(lambda: s.post("/x", data=b"job", deadline=DEADLINE))
    assert isinstance(exc, DeadlineExceeded) and took < DEADLINE + SLACK, (exc, took)


def test_watchdog_starts_afresh_in_a_forked_child() -> None:
    """After fork the child has an empty heap and its own thread, and its watches fire."""
    import os

    parent_watch = WATCHDOG.watch(time.monotonic() + 100)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 3
        try:
            empty = WATCHDOG.pending() == 0
            watch = WATCHDOG.watch(time.monotonic() + 0.05)
            time.sleep(0.3)
            code = 0 if (empty and watch.fired) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    WATCHDOG.cancel(parent_watch)
    assert os.waitstatus_to_exitcode(status) == 0


def test_deadline_holds_through_an_http_proxy(serve: Any) -> None:
    """Through an HTTP proxy (a dripping one), the proxy's connection is watched too."""
    proxy = serve(drip_body)
    with Session() as s:
        s.proxies = {"http": proxy.url}
        took, exc = timed(lambda: s.get("http://upstream.invalid/x", deadline=DEADLINE))
    assert isinstance(exc, DeadlineExceeded) and took < DEADLINE + SLACK, (exc, took)
    assert proxy.requests >= 1


def test_a_short_deadline_wakes_a_watchdog_sleeping_on_a_long_one(serve: Any) -> None:
    """A watch an hour away does not make a 0.3 s deadline wait for it."""
    server = serve(drip_body)
    far = WATCHDOG.watch(time.monotonic() + 3600)
    time.sleep(0.05)  # the thread is now asleep until the far deadline
    try:
        with Session(base_url=server.url) as s:
            took, exc = timed(lambda: s.get("/x", deadline=0.3))
    finally:
        WATCHDOG.cancel(far)
    assert isinstance(exc, DeadlineExceeded) and took < 0.3 + SLACK, (exc, took)


def test_deadline_holds_during_a_dripping_tls_handshake() -> None:
    """https: a server that drips its handshake record a byte at a time is cut at the deadline."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def tls_drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)  # the ClientHello
            for byte in b"\x16\x03\x03\x40\x00" + b"\x02" * 16384:  # one 16 kB record
                if stop.wait(0.02):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=tls_drip, daemon=True)
    thread.start()
    try:
        with Session() as s:
            took, exc = timed(
                lambda: s.get(f"https://127.0.0.1:{port}/", deadline=DEADLINE, verify=False)
            )
    finally:
        stop.set()
        listener.close()
        thread.join(2)
    assert isinstance(exc, DeadlineExceeded) and took < DEADLINE + SLACK, (exc, took)
