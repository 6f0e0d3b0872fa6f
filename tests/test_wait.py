"""Session.wait against real loopback servers: predicates, pauses, targets, deadline, errors."""

from __future__ import annotations

import math
import pickle
import threading
import time
from typing import Any

import pytest
import requests

from observable_session import (
    ApiConnectionError,
    ApiHTTPError,
    DeadlineExceeded,
    InvalidConfigError,
    InvalidURLError,
    Session,
    WaitFailed,
    WaitTimeout,
)

from .conftest import Reply, Reset, Upstream

SECRET = "wait-secret-7f3a9c"


def _state(response: requests.Response) -> str:
    return str(response.json()["state"])


def _done(response: requests.Response) -> bool:
    return _state(response) == "DONE"


def _failed(response: requests.Response) -> bool:
    return _state(response) == "FAILED"


def _session(upstream: Upstream, sleeps: list[float], **kwargs: Any) -> Session:
    kwargs.setdefault("backoff_factor", 0)
    return Session(base_url=upstream.url, sleep=sleeps.append, **kwargs)


def _job(*states: str, **headers: str) -> list[Reply]:
    return [Reply(200, {"state": s}, dict(headers)) for s in states]


def test_returns_the_response_until_matches(upstream: Upstream, no_sleep: list[float]) -> None:
    """The wait polls until ``until`` is true and returns that response."""
    upstream.script("/jobs/1", *_job("QUEUED", "RUNNING", "DONE"))
    with _session(upstream, no_sleep) as api:
        response = api.wait("/jobs/1", until=_done, jitter=0)
    assert _state(response) == "DONE"
    assert upstream.hits("/jobs/1") == 3
    assert no_sleep == [1.0, 1.5]


def test_interval_grows_by_multiplier_up_to_max(upstream: Upstream, no_sleep: list[float]) -> None:
    """Pauses start at ``interval``, grow by ``multiplier`` and stop at ``max_interval``."""
    upstream.script("/j", *_job(*["RUNNING"] * 5, "DONE"))
    with _session(upstream, no_sleep) as api:
        api.wait("/j", until=_done, interval=1, multiplier=2, max_interval=5, jitter=0)
    assert no_sleep == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_stays_within_its_share(upstream: Upstream, no_sleep: list[float]) -> None:
    """Each jittered pause lies in ``[1 - jitter, 1 + jitter]`` times the computed one."""
    upstream.script("/j", *_job(*["RUNNING"] * 30, "DONE"))
    with _session(upstream, no_sleep) as api:
        api.wait("/j", until=_done, interval=2, multiplier=1, max_interval=10, jitter=0.5)
    assert len(no_sleep) == 30
    assert all(1.0 <= s <= 3.0 for s in no_sleep)
    assert len(set(no_sleep)) > 1


def test_fail_when_raises_wait_failed(upstream: Upstream, no_sleep: list[float]) -> None:
    """``fail_when`` ends the wait with WaitFailed carrying the response and the poll count."""
    upstream.script("/jobs/2", *_job("RUNNING", "FAILED"))
    with _session(upstream, no_sleep) as api, pytest.raises(WaitFailed) as info:
        api.wait("/jobs/2", until=_done, fail_when=_failed)
    assert info.value.polls == 2
    assert info.value.response is not None and _state(info.value.response) == "FAILED"
    assert isinstance(info.value, requests.RequestException)


def test_fail_when_is_checked_before_until(upstream: Upstream, no_sleep: list[float]) -> None:
    """When both predicates hold, the wait fails."""
    upstream.script("/j", *_job("DONE"))
    with _session(upstream, no_sleep) as api, pytest.raises(WaitFailed):
        api.wait("/j", until=lambda r: True, fail_when=lambda r: True)


def test_retry_after_on_202_sets_the_next_pause(upstream: Upstream, no_sleep: list[float]) -> None:
    """A ``Retry-After`` on a poll response is the next pause, capped by ``max_interval``."""
    upstream.script(
        "/j",
        Reply(202, {"state": "RUNNING"}, {"Retry-After": "3"}),
        Reply(202, {"state": "RUNNING"}, {"Retry-After": "60"}),
        Reply(202, {"state": "RUNNING"}, {"Retry-After": "-5"}),
        Reply(202, {"state": "RUNNING"}, {"Retry-After": "soon"}),
        Reply(202, {"state": "RUNNING"}, {"Retry-After": "9" * 400}),
        Reply(202, {"state": "RUNNING"}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        Reply(202, {"state": "RUNNING"}, {"Retry-After": "nan"}),
        *_job("DONE"),
    )
    with _session(upstream, no_sleep) as api:
        api.wait("/j", until=_done, interval=1, multiplier=1, max_interval=10, jitter=0)
    # 3 as told; 60 capped at 10; a negative value is invalid and an unparseable one ignored:
    # both fall back to the interval; a 400-digit one is capped; a date in the past means now
    # (no sleep at all); "nan" is not a number of seconds.
    assert no_sleep == [3.0, 10.0, 1.0, 1.0, 10.0, 1.0]


def test_retry_after_zero_polls_at_once(upstream: Upstream, no_sleep: list[float]) -> None:
    """``Retry-After: 0`` means no pause at all."""
    upstream.script("/j", Reply(202, {"state": "RUNNING"}, {"Retry-After": "0"}), *_job("DONE"))
    with _session(upstream, no_sleep) as api:
        api.wait("/j", until=_done)
    assert no_sleep == []
    assert upstream.hits("/j") == 2


def test_submit_response_location_is_polled(upstream: Upstream, no_sleep: list[float]) -> None:
    """A submit Response: its Location is polled, after its Retry-After."""
    upstream.script("/jobs", Reply(202, {"id": "7"}, {"Location": "/jobs/7", "Retry-After": "2"}))
    upstream.script("/jobs/7", *_job("RUNNING", "DONE"))
    with _session(upstream, no_sleep) as api:
        submitted = api.post("/jobs", json={"program": "bell"})
        response = api.wait(submitted, until=_done, jitter=0)
    assert _state(response) == "DONE"
    assert no_sleep == [2.0, 1.0]
    assert [s.method for s in upstream.seen] == ["POST", "GET", "GET"]


def test_operation_location_wins_over_location(upstream: Upstream, no_sleep: list[float]) -> None:
    """``Operation-Location`` is preferred; without Retry-After the first pause is interval."""
    upstream.script(
        "/jobs", Reply(202, {}, {"Location": "/jobs/1", "Operation-Location": "/operations/9"})
    )
    upstream.script("/operations/9", *_job("DONE"))
    with _session(upstream, no_sleep) as api:
        api.wait(api.post("/jobs"), until=_done, interval=0.5)
    assert upstream.hits("/operations/9") == 1
    assert upstream.hits("/jobs/1") == 0
    assert no_sleep == [0.5]


def test_response_without_location_is_refused(upstream: Upstream, no_sleep: list[float]) -> None:
    """A Response with neither header: a typed error, and nothing is polled."""
    upstream.script("/jobs", Reply(201, {"id": "1"}))
    with _session(upstream, no_sleep) as api:
        submitted = api.post("/jobs")
        with pytest.raises(InvalidConfigError, match="Operation-Location nor a Location"):
            api.wait(submitted, until=_done)
    assert upstream.hits() == 1


def test_non_http_location_is_refused(upstream: Upstream, no_sleep: list[float]) -> None:
    """A Location that is not http(s) is refused before any poll."""
    upstream.script("/jobs", Reply(202, {}, {"Location": "file:///etc/passwd"}))
    with _session(upstream, no_sleep) as api:
        submitted = api.post("/jobs")
        with pytest.raises(InvalidURLError):
            api.wait(submitted, until=_done)
    assert upstream.hits() == 1


@pytest.mark.parametrize("with_base_url", [True, False])
def test_location_on_another_origin_gets_no_auth(
    upstream: Upstream, other_upstream: Upstream, no_sleep: list[float], with_base_url: bool
) -> None:
    """As on a redirect, polls to another origin carry none of the auth headers."""
    upstream.script("/jobs", Reply(202, {}, {"Location": f"{other_upstream.url}/status/1"}))
    other_upstream.script("/status/1", *_job("DONE"))
    base = upstream.url if with_base_url else None
    with Session(base_url=base, auth_headers={"X-API-Key": SECRET}, sleep=no_sleep.append) as api:
        api.wait(api.post(f"{upstream.url}/jobs"), until=_done)
    assert upstream.seen[0].headers.get("X-API-Key") == SECRET
    assert other_upstream.hits() == 1
    assert all("X-API-Key" not in s.headers for s in other_upstream.seen)


def test_location_on_same_origin_keeps_auth(upstream: Upstream, no_sleep: list[float]) -> None:
    """Polls to the submit's own origin carry the auth headers."""
    upstream.script("/jobs", Reply(202, {}, {"Location": "/jobs/1"}))
    upstream.script("/jobs/1", *_job("DONE"))
    with Session(auth_headers={"X-API-Key": SECRET}, sleep=no_sleep.append) as api:
        api.wait(api.post(f"{upstream.url}/jobs"), until=_done)
    assert [s.headers.get("X-API-Key") for s in upstream.seen] == [SECRET, SECRET]


def test_path_params_and_template(upstream: Upstream, no_sleep: list[float]) -> None:
    """A URL target takes ``path_params`` like ``request`` does."""
    upstream.script("/jobs/a%2Fb", *_job("DONE"))
    with _session(upstream, no_sleep) as api:
        api.wait("/jobs/{job_id}", path_params={"job_id": "a/b"}, until=_done)
    assert upstream.hits("/jobs/a%2Fb") == 1


def test_deadline_during_a_sleep_cuts_the_sleep(upstream: Upstream, no_sleep: list[float]) -> None:
    """A pause longer than what is left is cut to it; then WaitTimeout, no further poll."""
    upstream.script("/j", *_job("RUNNING"))
    with _session(upstream, no_sleep) as api, pytest.raises(WaitTimeout) as info:
        api.wait("/j", until=_done, interval=10, deadline=5)
    assert len(no_sleep) == 1 and 4.5 < no_sleep[0] <= 5.0
    assert info.value.polls == 1
    assert info.value.response is not None and _state(info.value.response) == "RUNNING"
    assert isinstance(info.value, DeadlineExceeded)
    assert upstream.hits("/j") == 1


def test_deadline_on_the_real_clock(upstream: Upstream) -> None:
    """With real sleeps the wait ends within 0.1 s after its deadline."""
    upstream.script("/j", *_job("RUNNING"))
    with Session(base_url=upstream.url) as api:
        started = time.monotonic()
        with pytest.raises(WaitTimeout):
            api.wait("/j", until=_done, interval=0.05, multiplier=2, max_interval=1, deadline=0.4)
        elapsed = time.monotonic() - started
    assert 0.35 <= elapsed <= 0.5


def test_deadline_during_a_poll(upstream: Upstream, no_sleep: list[float]) -> None:
    """A poll that outlives the deadline is cut: WaitTimeout within 0.1 s of it."""
    upstream.script("/j", *_job("RUNNING"), Reply(200, {"state": "DONE"}, delay=2.0))
    with _session(upstream, no_sleep) as api:
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as info:
            api.wait("/j", until=_done, interval=0, deadline=0.4)
        elapsed = time.monotonic() - started
    assert 0.35 <= elapsed <= 0.5
    assert info.value.polls == 2
    assert isinstance(info.value.__cause__, BaseException)


def test_default_deadline_is_the_sessions(upstream: Upstream, no_sleep: list[float]) -> None:
    """Without ``deadline=`` the session's deadline bounds the whole wait."""
    upstream.script("/j", *_job("RUNNING"))
    with _session(upstream, no_sleep, deadline=3) as api, pytest.raises(WaitTimeout):
        api.wait("/j", until=_done, interval=10, max_interval=10)
    assert len(no_sleep) == 1 and 2.5 < no_sleep[0] <= 3.0


def test_retryable_5xx_after_retries_goes_on(upstream: Upstream, no_sleep: list[float]) -> None:
    """A poll still 503 after its retries does not end the wait; predicates never see it."""
    upstream.script("/j", Reply(503, {"message": "busy"}), Reply(503), Reply(503), *_job("DONE"))
    with _session(upstream, no_sleep) as api:
        response = api.wait("/j", until=_done)
    assert _state(response) == "DONE"
    assert upstream.hits("/j") == 4  # three attempts of the first poll, one of the second


def test_retryable_5xx_without_room_ends_with_the_error(
    upstream: Upstream, no_sleep: list[float]
) -> None:
    """When the deadline leaves no room for the next pause, the poll's error ends the wait."""
    upstream.script("/j", Reply(503, {"message": "busy"}))
    with _session(upstream, no_sleep) as api, pytest.raises(ApiHTTPError) as info:
        api.wait("/j", until=_done, interval=10, deadline=5)
    assert info.value.status_code == 503
    assert no_sleep == []


def test_4xx_always_ends_the_wait(upstream: Upstream, no_sleep: list[float]) -> None:
    """A 4xx is never waited through, not even a 429 with Retry-After."""
    upstream.script("/gone", Reply(404, {"message": "no such job"}))
    upstream.script("/busy", Reply(429, {"message": "slow down"}, {"Retry-After": "0"}))
    with _session(upstream, no_sleep, retries_total=0) as api:
        with pytest.raises(ApiHTTPError, match="no such job"):
            api.wait("/gone", until=_done)
        with pytest.raises(ApiHTTPError) as info:
            api.wait("/busy", until=_done)
    assert info.value.status_code == 429
    assert upstream.hits() == 2


def test_connection_reset_mid_wait_goes_on(upstream: Upstream, no_sleep: list[float]) -> None:
    """A GET poll whose connection is reset on every retry is retried by the next poll."""
    upstream.script("/j", *_job("RUNNING"), Reset(), Reset(), Reset(), *_job("DONE"))
    with _session(upstream, no_sleep) as api:
        assert _state(api.wait("/j", until=_done)) == "DONE"
    assert upstream.hits("/j") == 5


def test_refused_connection_ends_a_post_wait(refused_url: str, no_sleep: list[float]) -> None:
    """A POST poll that cannot be told from a read failure is not repeated."""
    with Session(sleep=no_sleep.append, backoff_factor=0) as api:
        with pytest.raises(ApiConnectionError):
            api.wait(f"{refused_url}/j", until=_done, method="POST")
    assert no_sleep == []


def test_predicate_errors_propagate(upstream: Upstream, no_sleep: list[float]) -> None:
    """An exception in ``until`` ends the wait (r.json() on no JSON: still a ValueError)."""
    upstream.script("/j", Reply(200, b"not json"))
    with _session(upstream, no_sleep) as api, pytest.raises(ValueError):
        api.wait("/j", until=_done)


def test_concurrent_waits_on_one_session(upstream: Upstream) -> None:
    """Many threads waiting on one session each get their own job's final response."""
    count = 24
    for n in range(count):
        upstream.script(
            f"/jobs/{n}", *_job("QUEUED", "RUNNING"), Reply(200, {"state": "DONE", "n": n})
        )
    results: dict[int, Any] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)
    with Session(base_url=upstream.url, sleep=lambda s: None, backoff_factor=0) as api:

        def work(n: int) -> None:
            barrier.wait(timeout=10)
            try:
                results[n] = api.wait(f"/jobs/{n}", until=_done, interval=0.001).json()["n"]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert results == {n: n for n in range(count)}
    assert upstream.hits() == 3 * count


def test_wait_timeout_and_failed_pickle_with_polls() -> None:
    """The wait errors keep their type and poll count through pickling."""
    for cls in (WaitFailed, WaitTimeout):
        copy = pickle.loads(pickle.dumps(cls("wait for GET x", polls=4)))
        assert type(copy) is cls and copy.polls == 4 and str(copy) == "wait for GET x"


def test_messages_mask_the_url(upstream: Upstream, no_sleep: list[float]) -> None:
    """A credential in the polled URL's query never reaches the error message."""
    upstream.script("/j", *_job("RUNNING"))
    with _session(upstream, no_sleep) as api, pytest.raises(WaitTimeout) as info:
        api.wait(f"/j?access_token={SECRET}", until=_done, interval=10, deadline=1)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


_BAD: list[tuple[str, Any]] = [
    ("interval", math.nan),
    ("interval", -1),
    ("interval", math.inf),
    ("interval", "1"),
    ("interval", True),
    ("max_interval", math.nan),
    ("max_interval", 0.5),  # below interval
    ("multiplier", 0.5),
    ("multiplier", math.nan),
    ("jitter", -0.1),
    ("jitter", 1.5),
    ("jitter", math.nan),
    ("deadline", 0),
    ("deadline", -3),
    ("deadline", math.nan),
    ("deadline", math.inf),
    ("until", None),
    ("until", "DONE"),
    ("fail_when", 3),
    ("method", ""),
    ("method", "GET /x"),
    ("method", 7),
    ("raise_for_status", True),
    ("no_such_argument", 1),
]


@pytest.mark.parametrize(("name", "value"), _BAD, ids=[f"{n}={v!r}" for n, v in _BAD])
def test_bad_arguments_are_refused_before_any_poll(
    upstream: Upstream, no_sleep: list[float], name: str, value: Any
) -> None:
    """Every bad argument: InvalidConfigError naming it (never its value), nothing sent."""
    kwargs: dict[str, Any] = {"until": _done, name: value}
    with _session(upstream, no_sleep) as api, pytest.raises(InvalidConfigError) as info:
        api.wait("/j", **kwargs)
    assert name in str(info.value)
    if isinstance(value, str) and value:
        assert value not in str(info.value)
    assert upstream.hits() == 0


def test_bad_target_is_refused(upstream: Upstream, no_sleep: list[float]) -> None:
    """A target that is neither a URL nor a Response, or path_params with a Response."""
    upstream.script("/jobs", Reply(202, {}, {"Location": "/jobs/1"}))
    with _session(upstream, no_sleep) as api:
        with pytest.raises(InvalidConfigError, match="target"):
            api.wait(42, until=_done)  # type: ignore[arg-type]
        submitted = api.post("/jobs")
        with pytest.raises(InvalidConfigError, match="path_params"):
            api.wait(submitted, until=_done, path_params={"a": "b"})
    assert upstream.hits() == 1


def test_poll_giving_up_early_does_not_end_the_wait_early(upstream: Upstream) -> None:
    """A poll whose retry backoff does not fit: the wait polls on and times out on time."""
    upstream.script("/j", Reply(503, {"message": "busy"}))
    with Session(base_url=upstream.url, backoff_factor=5) as api:
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as info:
            api.wait("/j", until=_done, interval=0.1, multiplier=1, jitter=0, deadline=0.5)
        elapsed = time.monotonic() - started
    assert 0.45 <= elapsed <= 0.6
    assert info.value.polls >= 3
    assert isinstance(info.value.__cause__, BaseException)
    assert info.value.response is not None and info.value.response.status_code == 503


def test_streamed_poll_responses_are_released(upstream: Upstream, no_sleep: list[float]) -> None:
    """With stream=True, a poll response the wait moves past is closed (its connection freed)."""
    upstream.script("/j", *_job("RUNNING", "RUNNING", "DONE"))
    seen: list[requests.Response] = []

    def until(response: requests.Response) -> bool:
        seen.append(response)
        return _done(response)

    with _session(upstream, no_sleep) as api:
        final = api.wait("/j", until=until, stream=True)
    assert final is seen[-1]
    assert all(r.raw.closed for r in seen[:-1])
