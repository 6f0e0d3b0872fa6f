"""Tests for benchmarks/faultserver.py: each fault as a client sees it, the schedule, the counts."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from faultserver import (
    DEFAULT_WEIGHTS,
    Fault,
    FaultSchedule,
    FaultServer,
    FaultServerProcess,
    RefusedPort,
    parse_weights,
)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """A fault server that answers normally unless a request names its fault."""
    with FaultServer(FaultSchedule.clean(), stall_s=2.0, delay_s=0.05) as srv:
        yield srv


def _raw_exchange(port: int, fault: str, *, timeout: float = 2.0) -> bytes:
    """Send one GET naming ``fault`` on a fresh socket and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        head = f"GET /raw HTTP/1.1\r\nHost: x\r\nX-Fault: {fault}\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_ok_answers_200_with_the_request_target(server: FaultServer) -> None:
    """A normal answer is a 200 whose JSON body names the method, target and attempt index."""
    response = requests.get(f"{server.base_url}/jobs/1", timeout=2)
    assert response.status_code == 200
    assert response.json() == {"method": "GET", "path": "/jobs/1", "attempt": 0}


def test_keep_alive_serves_many_requests_on_one_connection(server: FaultServer) -> None:
    """Sequential requests through one requests.Session reuse a single connection."""
    with requests.Session() as client:
        for i in range(20):
            assert client.get(f"{server.base_url}/jobs/{i}", timeout=2).status_code == 200
    assert server.stats().connections == 1


def test_post_body_is_read_before_answering(server: FaultServer) -> None:
    """A POST with a body is read in full and the connection stays usable."""
    with requests.Session() as client:
        for _ in range(3):
            response = client.post(f"{server.base_url}/jobs", json={"x": "y" * 5000}, timeout=2)
            assert response.json()["method"] == "POST"
    assert server.stats().connections == 1


def test_5xx_answers_a_retryable_status(server: FaultServer) -> None:
    """The 5xx fault answers one of 500, 502, 503, 504."""
    response = requests.get(f"{server.base_url}/a", headers={"X-Fault": "5xx"}, timeout=2)
    assert response.status_code in (500, 502, 503, 504)


def test_429_carries_retry_after(server: FaultServer) -> None:
    """The 429 fault carries the configured Retry-After header."""
    response = requests.get(f"{server.base_url}/a", headers={"X-Fault": "429"}, timeout=2)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "1")


def test_delay_answers_normally_after_the_delay(server: FaultServer) -> None:
    """The delay fault answers 200 no sooner than delay_s."""
    start = time.perf_counter()
    response = requests.get(f"{server.base_url}/a", headers={"X-Fault": "delay"}, timeout=2)
    assert response.status_code == 200
    assert time.perf_counter() - start >= 0.05


def test_reset_sends_rst_after_reading_the_request(server: FaultServer) -> None:
    """The reset fault aborts the connection: the client's read fails with ECONNRESET."""
    with pytest.raises(ConnectionResetError):
        _raw_exchange(server.port, "reset")


def test_reset_surfaces_in_requests_as_connection_error(server: FaultServer) -> None:
    """Through requests, a reset is a ConnectionError."""
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base_url}/a", headers={"X-Fault": "reset"}, timeout=2)


def test_close_mid_body_sends_less_than_content_length(server: FaultServer) -> None:
    """The close-mid-body fault announces a Content-Length and closes before reaching it."""
    raw = _raw_exchange(server.port, "close_mid_body")
    head, _, body = raw.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert head.startswith(b"HTTP/1.1 200")
    assert 0 < len(body) < length


def test_close_mid_body_surfaces_in_requests_as_chunked_encoding_error(
    server: FaultServer,
) -> None:
    """Through requests, a body cut short raises ChunkedEncodingError."""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{server.base_url}/a", headers={"X-Fault": "close_mid_body"}, timeout=2)


def test_truncated_chunked_lacks_the_last_chunk(server: FaultServer) -> None:
    """The truncated-chunked fault sends one chunk and closes without the 0-size chunk."""
    raw = _raw_exchange(server.port, "truncated_chunked")
    assert b"transfer-encoding: chunked" in raw.lower()
    assert not raw.endswith(b"0\r\n\r\n")


def test_truncated_chunked_surfaces_in_requests_as_chunked_encoding_error(
    server: FaultServer,
) -> None:
    """Through requests, a truncated chunked body raises ChunkedEncodingError."""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{server.base_url}/a", headers={"X-Fault": "truncated_chunked"}, timeout=2)


def test_garbage_is_not_http(server: FaultServer) -> None:
    """The garbage fault answers bytes that are not an HTTP status line, then closes."""
    raw = _raw_exchange(server.port, "garbage")
    assert raw and not raw.startswith(b"HTTP/")


def test_garbage_surfaces_in_requests_as_connection_error(server: FaultServer) -> None:
    """Through requests, garbage is a ConnectionError (BadStatusLine underneath)."""
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base_url}/a", headers={"X-Fault": "garbage"}, timeout=2)


def test_stall_sends_headers_then_nothing(server: FaultServer) -> None:
    """The stall fault sends the headers, then no body before the client's read timeout."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=0.3) as sock:
        sock.sendall(b"GET /s HTTP/1.1\r\nHost: x\r\nX-Fault: stall\r\n\r\n")
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
        with pytest.raises(TimeoutError):
            sock.recv(65536)


def test_stall_surfaces_in_requests_as_a_read_timeout(server: FaultServer) -> None:
    """Through requests, a stalled body ends in the read timeout, wrapped as ConnectionError."""
    start = time.perf_counter()
    with pytest.raises(requests.ConnectionError, match="timed out"):
        requests.get(f"{server.base_url}/a", headers={"X-Fault": "stall"}, timeout=(1, 0.2))
    assert time.perf_counter() - start < 1.5


def test_stall_closes_when_the_client_gives_up(server: FaultServer) -> None:
    """A stalled connection is released as soon as the client closes its end."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=1) as sock:
        sock.sendall(b"GET /s HTTP/1.1\r\nHost: x\r\nX-Fault: stall\r\n\r\n")
        sock.recv(65536)
    deadline = time.monotonic() + 1.0
    while server.stats().open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.stats().open_connections == 0


def test_refused_port_refuses_connections() -> None:
    """Connecting to a RefusedPort fails with ECONNREFUSED."""
    with RefusedPort() as refused, pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", refused.port), timeout=1)


def test_refused_port_surfaces_in_requests_as_connection_error() -> None:
    """Through requests, a refused port is a ConnectionError."""
    with RefusedPort() as refused, pytest.raises(requests.ConnectionError):
        requests.get(f"{refused.base_url}/a", timeout=1)


def test_fault_header_applies_per_attempt_at_a_target(server: FaultServer) -> None:
    """X-Fault "5xx,ok" gives the first attempt at a target 503 and later ones 200."""
    statuses = [
        requests.get(f"{server.base_url}/seq", headers={"X-Fault": "5xx,ok"}, timeout=2).status_code
        for _ in range(3)
    ]
    assert statuses == [503, 200, 200]


def test_stats_count_every_attempt_per_fault(server: FaultServer) -> None:
    """Every request read is counted once, under the fault it was served."""
    for fault in ("ok", "5xx", "reset", "garbage", "ok"):
        with contextlib.suppress(requests.ConnectionError):
            requests.get(f"{server.base_url}/c", headers={"X-Fault": fault}, timeout=2)
    stats = server.stats()
    assert stats.attempts == 5
    assert stats.by_fault == {"ok": 2, "5xx": 1, "reset": 1, "garbage": 1}


def test_stats_count_authorization_headers(server: FaultServer) -> None:
    """Attempts carrying an Authorization header are counted."""
    requests.get(server.base_url, headers={"Authorization": "Bearer t"}, timeout=2)
    requests.get(server.base_url, timeout=2)
    assert server.stats().with_authorization == 1


def test_stats_are_exact_under_concurrent_clients() -> None:
    """Eight threads with their own sessions: the server's count equals the client's."""
    schedule = FaultSchedule(3, {Fault.OK: 8, Fault.STATUS_5XX: 1, Fault.RESET: 1})
    sent = [0] * 8
    with FaultServer(schedule) as srv:

        def work(n: int) -> None:
            with requests.Session() as client:
                for i in range(100):
                    sent[n] += 1
                    with contextlib.suppress(requests.ConnectionError):
                        client.get(f"{srv.base_url}/t{n}/{i}", timeout=2)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = srv.stats()
    assert stats.attempts == sum(sent) == sum(stats.by_fault.values())


def test_reset_stats_zeroes_counts_and_attempt_indices(server: FaultServer) -> None:
    """After reset_stats, counters are zero and a target's attempt index starts again at 0."""
    requests.get(f"{server.base_url}/r", timeout=2)
    server.reset_stats()
    assert server.stats().attempts == 0
    assert requests.get(f"{server.base_url}/r", timeout=2).json()["attempt"] == 0


def test_schedule_replays_the_same_faults_for_the_same_seed() -> None:
    """Two schedules with one seed draw identical faults for every (target, attempt)."""
    a, b = FaultSchedule(11), FaultSchedule(11)
    keys = [(f"/jobs/{i}", n) for i in range(300) for n in range(3)]
    assert [a.draw(k, n) for k, n in keys] == [b.draw(k, n) for k, n in keys]


def test_schedule_differs_for_another_seed() -> None:
    """Another seed draws another sequence of faults."""
    keys = [f"/jobs/{i}" for i in range(300)]
    assert [FaultSchedule(1).draw(k, 0) for k in keys] != [
        FaultSchedule(2).draw(k, 0) for k in keys
    ]


def test_schedule_never_draws_a_zero_weight_fault() -> None:
    """A fault weighted 0 is never drawn, and refused is never drawn by the server."""
    schedule = FaultSchedule(5, {Fault.OK: 1, Fault.GARBAGE: 1, Fault.REFUSED: 5})
    drawn = {schedule.draw(f"/k/{i}", 0).fault for i in range(500)}
    assert drawn == {Fault.OK, Fault.GARBAGE}


def test_schedule_shares_follow_the_weights() -> None:
    """Over many targets each fault's share is near its weight."""
    schedule = FaultSchedule(9, {Fault.OK: 3, Fault.RESET: 1})
    resets = sum(schedule.draw(f"/k/{i}", 0).fault is Fault.RESET for i in range(8000))
    assert 0.22 < resets / 8000 < 0.28


def test_refuses_follows_the_refused_share() -> None:
    """refuses() sends about the REFUSED share of logical requests to the refused port."""
    schedule = FaultSchedule(4, {Fault.OK: 9, Fault.REFUSED: 1})
    refused = sum(schedule.refuses(f"/k/{i}") for i in range(8000))
    assert 0.08 < refused / 8000 < 0.12


def test_schedule_rejects_negative_weights() -> None:
    """A negative weight is refused when the schedule is built."""
    with pytest.raises(ValueError, match="negative"):
        FaultSchedule(0, {Fault.OK: 1, Fault.RESET: -1})


def test_schedule_round_trips_through_json() -> None:
    """to_json and from_json give back an equal schedule."""
    schedule = FaultSchedule(7, dict(DEFAULT_WEIGHTS))
    assert FaultSchedule.from_json(schedule.to_json()) == schedule


def test_parse_weights_reads_name_value_pairs() -> None:
    """parse_weights reads "ok=9,reset=1" and weighs unnamed faults 0."""
    weights = parse_weights("ok=9, reset=1")
    assert (weights[Fault.OK], weights[Fault.RESET], weights[Fault.STALL]) == (9.0, 1.0, 0.0)


def test_close_releases_the_port() -> None:
    """After close, the server's port refuses connections."""
    srv = FaultServer().start()
    port = srv.port
    srv.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_process_server_serves_and_reports_stats() -> None:
    """The subprocess server answers over HTTP and reports its counts over its pipe."""
    with FaultServerProcess(FaultSchedule.clean()) as proc:
        with requests.Session() as client:
            for i in range(5):
                client.get(f"{proc.base_url}/p/{i}", timeout=2)
        stats = proc.stats()
        proc.reset_stats()
        after = proc.stats()
    assert (stats.attempts, stats.connections, after.attempts) == (5, 1, 0)


def test_process_server_takes_a_new_schedule() -> None:
    """set_schedule on the subprocess server changes the faults it serves."""
    with FaultServerProcess(FaultSchedule.clean()) as proc:
        proc.set_schedule(FaultSchedule(0, {Fault.STATUS_429: 1}))
        response = requests.get(f"{proc.base_url}/x", timeout=2)
    assert response.status_code == 429
    assert json.loads(response.content)["path"] == "/x"


def test_drip_headers_sends_one_byte_at_a_time(server: FaultServer) -> None:
    """drip_headers: the status line arrives a byte per drip interval, never a blank line."""
    server.drip_s = 0.01
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"GET /d HTTP/1.1\r\nHost: x\r\nX-Fault: drip_headers\r\n\r\n")
        started = time.monotonic()
        got = b""
        while len(got) < 20:
            got += sock.recv(1)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and time.monotonic() - started >= 0.15


def test_drip_body_sends_headers_then_a_byte_at_a_time(server: FaultServer) -> None:
    """drip_body: the headers at once, then the 100 kB body a byte per drip interval."""
    server.drip_s = 0.01
    response = requests.get(
        f"{server.base_url}/d", headers={"X-Fault": "drip_body"}, stream=True, timeout=2
    )
    assert response.headers["Content-Length"] == "100000"
    started = time.monotonic()
    assert response.raw.read(10) == b"d" * 10 and time.monotonic() - started >= 0.05
    response.close()


def test_drip_body_is_an_ordinary_answer_for_a_streaming_client(server: FaultServer) -> None:
    """A client that says X-Stream: 1 reads its body itself: it is served normally."""
    response = requests.get(
        f"{server.base_url}/d", headers={"X-Fault": "drip_body", "X-Stream": "1"}, timeout=2
    )
    assert response.status_code == 200 and response.json()["path"] == "/d"
    assert server.stats().by_fault == {"ok": 1}


def test_huge_5xx_promises_a_huge_body_to_a_streaming_client(server: FaultServer) -> None:
    """huge_5xx:500 to a streaming client: a 500 whose Content-Length is 200 MB."""
    response = requests.get(
        f"{server.base_url}/h",
        headers={"X-Fault": "huge_5xx:500", "X-Stream": "1"},
        stream=True,
        timeout=2,
    )
    assert response.status_code == 500 and response.headers["Content-Length"] == str(200 << 20)
    assert response.raw.read(65536) == b"h" * 65536
    response.close()
    assert server.stats().by_fault == {"huge_5xx": 1}


def test_huge_5xx_is_an_ordinary_5xx_for_a_client_reading_whole_bodies(
    server: FaultServer,
) -> None:
    """Without X-Stream the huge body is not sent: an ordinary 503, counted as 5xx."""
    response = requests.get(f"{server.base_url}/h", headers={"X-Fault": "huge_5xx"}, timeout=2)
    assert response.status_code == 503 and len(response.content) < 1000
    assert server.stats().by_fault == {"5xx": 1}
