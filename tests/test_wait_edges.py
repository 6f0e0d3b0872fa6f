"""Session.wait where an attacker would push it: edge cases found in review.

Credentials on a poll location of another origin (checked with a second server that records
what it got), the overload options per poll, pauses too long to sleep, and the wait errors'
attributes through pickling.
"""

from __future__ import annotations

import pickle
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.auth import HTTPBasicAuth

from observable_session import (
    ApiHTTPError,
    CircuitBreaker,
    CircuitOpenError,
    InvalidConfigError,
    RetryBudget,
    Session,
    WaitFailed,
    WaitTimeout,
)

from .conftest import Reply, Upstream

SECRET = "wait-edge-secret-41c7"


def _done(response: requests.Response) -> bool:
    return str(response.json()["state"]) == "DONE"


def _submit_elsewhere(upstream: Upstream, other: Upstream) -> None:
    upstream.script("/jobs", Reply(202, {}, {"Location": f"{other.url}/status/1"}))
    other.script("/status/1", Reply(200, {"state": "DONE"}))


def _authorization(server: Upstream) -> list[str | None]:
    return [
        next((v for k, v in seen.headers.items() if k.lower() == "authorization"), None)
        for seen in server.seen
    ]


# -- credentials on a location of another origin ----------------------------------------------


def test_session_authorization_header_stays_off_another_origin(
    upstream: Upstream, other_upstream: Upstream, no_sleep: list[float]
) -> None:
    """An Authorization in the session's headers is dropped there, as a redirect drops it."""
    _submit_elsewhere(upstream, other_upstream)
    with Session(headers={"Authorization": f"Bearer {SECRET}"}, sleep=no_sleep.append) as api:
        api.wait(api.post(f"{upstream.url}/jobs"), until=_done)
    assert _authorization(upstream) == [f"Bearer {SECRET}"]
    assert other_upstream.hits() == 1 and _authorization(other_upstream) == [None]


def test_session_auth_stays_off_another_origin(
    upstream: Upstream, other_upstream: Upstream, no_sleep: list[float]
) -> None:
    """The session's ``auth`` (Basic here) is not applied to polls of another origin."""
    _submit_elsewhere(upstream, other_upstream)
    with Session(sleep=no_sleep.append) as api:
        api.auth = HTTPBasicAuth("user", SECRET)
        api.trust_env = False
        api.wait(api.post(f"{upstream.url}/jobs"), until=_done)
    assert _authorization(upstream)[0] is not None
    assert _authorization(other_upstream) == [None]


def test_auth_none_on_the_wait_still_keeps_the_session_auth_off(
    upstream: Upstream, other_upstream: Upstream, no_sleep: list[float]
) -> None:
    """auth=None means "the session's" in requests: it must not let that through either."""
    _submit_elsewhere(upstream, other_upstream)
    with Session(sleep=no_sleep.append) as api:
        api.auth = HTTPBasicAuth("user", SECRET)
        api.trust_env = False
        api.wait(api.post(f"{upstream.url}/jobs"), until=_done, auth=None)
    assert _authorization(other_upstream) == [None]


def test_auth_origins_still_let_the_auth_headers_through(
    upstream: Upstream, other_upstream: Upstream, no_sleep: list[float]
) -> None:
    """An origin in auth_origins gets the auth headers, Authorization among them."""
    _submit_elsewhere(upstream, other_upstream)
    with Session(
        base_url=upstream.url,
        auth_headers={"Authorization": f"Bearer {SECRET}"},
        auth_origins=[other_upstream.url],
        sleep=no_sleep.append,
    ) as api:
        api.wait(api.post("/jobs"), until=_done)
    assert _authorization(other_upstream) == [f"Bearer {SECRET}"]


def test_callers_own_authorization_for_the_wait_is_kept(
    upstream: Upstream, other_upstream: Upstream, no_sleep: list[float]
) -> None:
    """headers= passed to wait itself are the caller's choice for that origin."""
    _submit_elsewhere(upstream, other_upstream)
    with Session(headers={"Authorization": "Bearer submit"}, sleep=no_sleep.append) as api:
        api.wait(api.post(f"{upstream.url}/jobs"), until=_done, headers={"Authorization": "x y"})
    assert _authorization(other_upstream) == ["x y"]


# -- the overload options per poll ------------------------------------------------------------


def test_overload_options_pass_to_every_poll(upstream: Upstream, no_sleep: list[float]) -> None:
    """retry_budget=None on the wait: every failed poll gets all its retries."""
    upstream.script("/j", Reply(503), Reply(503), Reply(503), Reply(200, {"state": "DONE"}))
    budget = RetryBudget(max_tokens=1, token_ratio=0.1)  # would deny every retry
    with Session(
        base_url=upstream.url, retry_budget=budget, backoff_factor=0, sleep=no_sleep.append
    ) as api:
        api.wait("/j", until=_done, retry_budget=None, interval=0)
    assert upstream.hits("/j") == 4  # 3 attempts of the first poll, then the second poll


def test_breaker_per_wait(upstream: Upstream, no_sleep: list[float]) -> None:
    """circuit_breaker= on the wait applies to its polls: an open one rejects them."""
    upstream.script("/j", Reply(503))
    breaker = CircuitBreaker(minimum_throughput=1)
    with Session(base_url=upstream.url, retries_total=0, sleep=no_sleep.append) as api:
        with pytest.raises(CircuitOpenError):
            api.wait("/j", until=_done, circuit_breaker=breaker, method="POST", interval=0)
    assert upstream.hits("/j") == 1


def test_retry_after_exceeded_per_wait_ends_it_with_retry_after(
    upstream: Upstream, no_sleep: list[float]
) -> None:
    """A poll told to come back in 10 minutes ends the wait at once, carrying retry_after."""
    upstream.script("/j", Reply(503, {}, {"Retry-After": "600"}))
    with Session(base_url=upstream.url, sleep=no_sleep.append) as api:
        with pytest.raises(ApiHTTPError) as info:
            api.wait("/j", until=_done, retry_after_exceeded="raise", deadline=60)
    assert info.value.retry_after == 600.0 and info.value.retry_denied == "retry_after"
    assert no_sleep == [] and upstream.hits("/j") == 1


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("retry_budget", 10),
        ("circuit_breaker", "on"),
        ("idempotency_key", "bad header"),
        ("retry_after_exceeded", "wait"),
    ],
)
def test_bad_overload_options_fail_before_any_poll(
    upstream: Upstream, no_sleep: list[float], name: str, bad: object
) -> None:
    """A bad overload option is refused before the first poll, naming the argument."""
    with Session(base_url=upstream.url, sleep=no_sleep.append) as api:
        with pytest.raises(InvalidConfigError, match=name):
            api.wait("/j", until=_done, **{name: bad})
    assert upstream.hits() == 0


# -- pauses too long to sleep -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), [("interval", 1e300), ("max_interval", 86400.5)])
def test_pauses_longer_than_a_day_are_refused(
    upstream: Upstream, no_sleep: list[float], name: str, value: float
) -> None:
    """time.sleep overflows on huge finite pauses: refused up front, typed."""
    kwargs: dict[str, Any] = {"until": _done, "max_interval": 86400.0, name: value}
    with Session(base_url=upstream.url, sleep=no_sleep.append) as api:
        with pytest.raises(InvalidConfigError, match=rf"^{name} must .*<= 86400") as info:
            api.wait("/j", **kwargs)
    assert str(value) not in str(info.value)
    assert upstream.hits() == 0


def test_a_pause_of_a_day_is_accepted(upstream: Upstream, no_sleep: list[float]) -> None:
    """The bound is inclusive: a daily poll is a wait."""
    upstream.script("/j", Reply(200, {"state": "RUNNING"}), Reply(200, {"state": "DONE"}))
    with Session(base_url=upstream.url, sleep=no_sleep.append) as api:
        api.wait("/j", until=_done, interval=86400, max_interval=86400, jitter=0)
    assert no_sleep == [86400.0]


# -- pickling -----------------------------------------------------------------------------------


def test_wait_failed_keeps_its_status_through_pickling(
    upstream: Upstream, no_sleep: list[float]
) -> None:
    """A pickled WaitFailed keeps polls and the last response's status (not the response)."""
    upstream.script("/j", Reply(200, {"state": "RUNNING"}), Reply(200, {"state": "FAILED"}))
    with Session(base_url=upstream.url, sleep=no_sleep.append) as api:
        with pytest.raises(WaitFailed) as info:
            api.wait("/j", until=_done, fail_when=lambda r: r.json()["state"] == "FAILED")
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.polls, copy.status_code, copy.response) == (2, 200, None)


# -- a server that drips its body -----------------------------------------------------------


@pytest.fixture
def dripping_url() -> Iterator[str]:
    """A server that sends headers, then one body byte every 50 ms (40 bytes at most)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
                for _ in range(40):
                    if stop.is_set():
                        break
                    try:
                        conn.sendall(b"x")
                    except OSError:
                        break
                    time.sleep(0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_deadline_holds_against_a_dripping_poll(dripping_url: str) -> None:
    """A poll whose body drips a byte every 50 ms is cut at the wait's deadline."""
    with Session(base_url=dripping_url) as api:
        started = time.monotonic()
        with pytest.raises(WaitTimeout):
            api.wait("/j", until=lambda r: False, deadline=0.3)
        elapsed = time.monotonic() - started
    assert elapsed <= 0.4
