"""The overload policies inside a real Session, against real loopback servers.

Retry budget (on by default), circuit breaker, idempotency keys and ``retry_after_exceeded``:
what reaches the server, what the caller gets, and what the telemetry says.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from observable_session import (
    ApiConnectionError,
    ApiHTTPError,
    CircuitBreaker,
    CircuitOpenError,
    InvalidConfigError,
    RequestsApiError,
    RetryBudget,
    Session,
)
from observable_session.telemetry import _semconv as sc
from tests.conftest import Otel, Reply, Reset, Upstream


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def make(url: str, sleeps: list[float] | None = None, **kwargs: Any) -> Session:
    """A session that records its sleeps instead of sleeping."""
    record = sleeps if sleeps is not None else []
    return Session(base_url=url, sleep=record.append, **kwargs)


def failing_calls(session: Session, path: str, n: int) -> list[RequestsApiError]:
    """Make ``n`` calls that all fail; return their errors."""
    errors = []
    for _ in range(n):
        with pytest.raises(RequestsApiError) as info:
            session.get(path)
        errors.append(info.value)
    return errors


# -- the retry budget -------------------------------------------------------------------------


def test_budget_is_on_by_default(upstream: Upstream) -> None:
    """A new session has its own RetryBudget(10, 0.1); two sessions do not share it."""
    a, b = make(upstream.url), make(upstream.url)
    assert isinstance(a.retry_budget, RetryBudget)
    assert (a.retry_budget.max_tokens, a.retry_budget.token_ratio) == (10.0, 0.1)
    assert a.retry_budget is not b.retry_budget


def test_sustained_outage_stays_under_1_2_attempts_per_call(upstream: Upstream) -> None:
    """50 calls to an upstream that only answers 503: 53 attempts, not 150."""
    upstream.script("/down", Reply(503))
    with make(upstream.url) as s:
        errors = failing_calls(s, "/down", 50)
    assert upstream.hits("/down") == 3 + 2 + 48
    assert upstream.hits("/down") / 50 <= 1.2
    assert [e.attempts for e in errors[:3]] == [3, 2, 1]
    assert all(isinstance(e, ApiHTTPError) and e.status_code == 503 for e in errors)


def test_denied_retry_ends_with_the_error_it_had_saying_budget(upstream: Upstream) -> None:
    """A call whose retry the budget denies raises its own 503, with retry_denied="budget"."""
    upstream.script("/down", Reply(503))
    with make(upstream.url) as s:
        errors = failing_calls(s, "/down", 5)
    assert errors[0].retry_denied is None  # it ran out of retries_total, not of budget
    assert all(e.retry_denied == "budget" for e in errors[1:])
    assert all(e.attempts == 1 for e in errors[2:])


def test_denied_connection_retry_says_budget(refused_url: str) -> None:
    """Refused connections spend the budget too; the ApiConnectionError says so."""
    with make(refused_url) as s:
        errors = failing_calls(s, "/x", 6)
    assert all(isinstance(e, ApiConnectionError) for e in errors)
    assert errors[-1].retry_denied == "budget" and errors[-1].attempts == 1


def test_isolated_failures_are_all_retried(upstream: Upstream) -> None:
    """One call in twenty fails once (its retry succeeding): every one of them is retried."""
    with make(upstream.url) as s:
        for n in range(200):
            if n % 20 == 0:
                upstream.script(f"/poll/{n}", Reply(503), Reply(200))
            assert s.get(f"/poll/{n}").status_code == 200
    assert upstream.hits() == 200 + 10


def test_budget_none_retries_every_failure(upstream: Upstream) -> None:
    """retry_budget=None: today's behaviour, three attempts per failing call."""
    upstream.script("/down", Reply(503))
    with make(upstream.url, retry_budget=None) as s:
        failing_calls(s, "/down", 20)
    assert upstream.hits("/down") == 60


def test_budget_per_call_override(upstream: Upstream) -> None:
    """A drained budget denies, but retry_budget=None on one call retries it in full."""
    upstream.script("/down", Reply(503))
    with make(upstream.url) as s:
        failing_calls(s, "/down", 5)
        before = upstream.hits("/down")
        with pytest.raises(ApiHTTPError) as info:
            s.get("/down", retry_budget=None)
    assert upstream.hits("/down") - before == 3
    assert info.value.retry_denied is None


def test_budget_is_counted_per_origin(upstream: Upstream, other_upstream: Upstream) -> None:
    """Draining one origin's bucket leaves another origin's retries alone."""
    upstream.script("/down", Reply(503))
    other_upstream.script("/flaky", Reply(503), Reply(200))
    with make(upstream.url) as s:
        failing_calls(s, "/down", 10)
        assert s.get(other_upstream.url + "/flaky").status_code == 200
    assert other_upstream.hits("/flaky") == 2


def test_shared_budget_object_is_shared(upstream: Upstream) -> None:
    """One RetryBudget handed to two sessions is one bucket per origin for both."""
    upstream.script("/down", Reply(503))
    budget = RetryBudget()
    with make(upstream.url, retry_budget=budget) as a, make(upstream.url, retry_budget=budget) as b:
        failing_calls(a, "/down", 3)
        errors = failing_calls(b, "/down", 1)
    assert errors[0].retry_denied == "budget"


def test_4xx_neither_spends_nor_refills(upstream: Upstream) -> None:
    """A 404 is not a retryable failure and not a success: the bucket does not move."""
    upstream.script("/missing", Reply(404))
    budget = RetryBudget()
    with make(upstream.url, retry_budget=budget) as s:
        failing_calls(s, "/missing", 30)
    assert budget.tokens(("http", "127.0.0.1", upstream.port)) == 10.0


def test_denied_retry_telemetry(upstream: Upstream, otel: Otel) -> None:
    """Counter by reason and server, and a span event on the logical span."""
    upstream.script("/down", Reply(503))
    with make(upstream.url, **otel.providers()) as s:
        failing_calls(s, "/down", 4)
    points = otel.points(sc.METRIC_RETRIES_DENIED)
    assert sum(p.value for p in points) == 3
    attrs = dict(points[0].attributes)
    assert attrs[sc.RETRY_DENIED_BY] == "budget"
    assert attrs[sc.SERVER_ADDRESS] == "127.0.0.1"
    events = [
        e for span in otel.spans("INTERNAL") for e in span.events if e.name == sc.RETRY_DENIED_EVENT
    ]
    assert len(events) == 3
    assert events[0].attributes[sc.RETRY_DENIED_BY] == "budget"
    assert events[0].attributes[sc.RETRY_REASON] == "503"


# -- the circuit breaker ----------------------------------------------------------------------


def test_breaker_is_off_by_default(upstream: Upstream) -> None:
    """No breaker unless asked for: 100 failing calls all reach the server."""
    upstream.script("/down", Reply(503))
    with make(upstream.url, retry_budget=None, retries_total=0) as s:
        assert s.circuit_breaker is None
        failing_calls(s, "/down", 100)
    assert upstream.hits("/down") == 100


def open_breaker(session: Session, path: str, n: int = 4) -> None:
    """Fail ``n`` calls so a breaker with minimum_throughput=n opens."""
    failing_calls(session, path, n)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket that answers one HTTP 503 per accepted connection, counted by hand."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


def _answer_503(sock: socket.socket) -> None:
    conn, _ = sock.accept()
    with conn:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 503 Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def test_open_breaker_fails_at_once_without_a_socket(listener: socket.socket) -> None:
    """Once open, calls raise CircuitOpenError and no connection is even attempted."""
    import threading

    port = listener.getsockname()[1]
    cb = CircuitBreaker(minimum_throughput=3, clock=Clock())
    with make(
        f"http://127.0.0.1:{port}", retry_budget=None, retries_total=0, circuit_breaker=cb
    ) as s:
        for _ in range(3):
            server = threading.Thread(target=_answer_503, args=(listener,))
            server.start()
            with pytest.raises(ApiHTTPError):
                s.get("/x")
            server.join()
        with pytest.raises(CircuitOpenError) as info:
            s.get("/x")
    listener.settimeout(0.2)
    with pytest.raises(TimeoutError):
        listener.accept()  # no SYN ever arrived
    err = info.value
    assert isinstance(err, requests.ConnectionError) and isinstance(err, ApiConnectionError)
    assert err.attempts == 0 and err.history == ()
    assert err.error_type == "observable_session.errors.CircuitOpenError"
    assert err.retry_in == 5.0
    assert "open" in str(err)


def test_breaker_half_open_probe_closes_on_success(upstream: Upstream) -> None:
    """After break_duration one probe goes out; its success closes the circuit."""
    clock = Clock()
    cb = CircuitBreaker(minimum_throughput=4, break_duration=5.0, clock=clock)
    upstream.script("/x", Reply(503), Reply(503), Reply(503), Reply(503), Reply(200))
    with make(upstream.url, retry_budget=None, retries_total=0, circuit_breaker=cb) as s:
        open_breaker(s, "/x")
        with pytest.raises(CircuitOpenError):
            s.get("/x")
        clock.now += 5.0
        assert s.get("/x").status_code == 200
        assert [s.get("/x").status_code for _ in range(5)] == [200] * 5
    assert upstream.hits("/x") == 4 + 1 + 5


def test_breaker_probe_failure_opens_again(upstream: Upstream) -> None:
    """A failed probe opens the circuit for another break."""
    clock = Clock()
    cb = CircuitBreaker(minimum_throughput=4, clock=clock)
    upstream.script("/x", Reply(503))
    with make(upstream.url, retry_budget=None, retries_total=0, circuit_breaker=cb) as s:
        open_breaker(s, "/x")
        clock.now += 5.0
        with pytest.raises(ApiHTTPError):
            s.get("/x")  # the probe
        with pytest.raises(CircuitOpenError):
            s.get("/x")
    assert upstream.hits("/x") == 5


def test_4xx_never_opens_the_breaker(upstream: Upstream) -> None:
    """A hundred 404s and 400s are answers from a healthy server."""
    upstream.script("/missing", Reply(404))
    upstream.script("/bad", Reply(400))
    cb = CircuitBreaker(minimum_throughput=4, failure_ratio=0.1)
    with make(upstream.url, circuit_breaker=cb) as s:
        failing_calls(s, "/missing", 50)
        failing_calls(s, "/bad", 50)
    assert upstream.hits() == 100


def test_read_errors_count_as_failures(upstream: Upstream) -> None:
    """Connection resets open the breaker (the retry classification)."""
    upstream.script("/reset", Reset())
    cb = CircuitBreaker(minimum_throughput=4)
    with make(upstream.url, retry_budget=None, retries_total=0, circuit_breaker=cb) as s:
        failing_calls(s, "/reset", 4)
        with pytest.raises(CircuitOpenError):
            s.get("/reset")


def test_refused_connections_open_the_breaker(refused_url: str) -> None:
    """Refused connections are failures too."""
    cb = CircuitBreaker(minimum_throughput=3)
    with make(refused_url, retry_budget=None, circuit_breaker=cb) as s:
        errors = failing_calls(s, "/x", 2)
        assert [e.attempts for e in errors] == [2, 1]  # the breaker cut the second's retry
        assert errors[-1].retry_denied == "circuit_open"
        with pytest.raises(CircuitOpenError):
            s.get("/x")


def test_breaker_opening_mid_call_denies_the_retry(upstream: Upstream) -> None:
    """A retry the open breaker refuses ends the call with its own 503, saying circuit_open."""
    upstream.script("/x", Reply(503))
    cb = CircuitBreaker(minimum_throughput=2)
    with make(upstream.url, retry_budget=None, circuit_breaker=cb) as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/x")
    assert info.value.attempts == 2
    assert info.value.retry_denied == "circuit_open"


def test_breaker_per_origin(upstream: Upstream, other_upstream: Upstream) -> None:
    """An open circuit for one origin does not touch another."""
    upstream.script("/down", Reply(503))
    cb = CircuitBreaker(minimum_throughput=4)
    with make(upstream.url, retry_budget=None, retries_total=0, circuit_breaker=cb) as s:
        open_breaker(s, "/down")
        with pytest.raises(CircuitOpenError):
            s.get("/down")
        assert s.get(other_upstream.url + "/ok").status_code == 200


def test_breaker_per_call(upstream: Upstream) -> None:
    """circuit_breaker= on one call uses that breaker; None on a call bypasses the session's."""
    upstream.script("/down", Reply(503))
    cb = CircuitBreaker(minimum_throughput=4)
    with make(upstream.url, retry_budget=None, retries_total=0) as s:
        for _ in range(4):
            with pytest.raises(ApiHTTPError):
                s.get("/down", circuit_breaker=cb)
        with pytest.raises(CircuitOpenError):
            s.get("/down", circuit_breaker=cb)
        with pytest.raises(ApiHTTPError):
            s.get("/down")  # the session has no breaker


def test_breaker_telemetry(upstream: Upstream, otel: Otel) -> None:
    """State gauge 2 for the server, a closed->open transition, a rejection counted."""
    upstream.script("/down", Reply(503))
    cb = CircuitBreaker(minimum_throughput=4)
    options: dict[str, Any] = {"retry_budget": None, "retries_total": 0, "circuit_breaker": cb}
    with make(upstream.url, **options, **otel.providers()) as s:
        open_breaker(s, "/down")
        with pytest.raises(CircuitOpenError):
            s.get("/down", url_template="/down")
        data = {
            name: otel.points(name)
            for name in (
                sc.METRIC_BREAKER_STATE,
                sc.METRIC_BREAKER_TRANSITIONS,
                sc.METRIC_BREAKER_REJECTED,
                sc.METRIC_REQUEST_DURATION,
            )
        }
    (state,) = data[sc.METRIC_BREAKER_STATE]
    assert state.value == 2
    assert dict(state.attributes) == {sc.SERVER_ADDRESS: "127.0.0.1", sc.SERVER_PORT: upstream.port}
    (transition,) = data[sc.METRIC_BREAKER_TRANSITIONS]
    assert transition.value == 1
    assert transition.attributes[sc.BREAKER_FROM_STATE] == "closed"
    assert transition.attributes[sc.BREAKER_TO_STATE] == "open"
    (rejected,) = data[sc.METRIC_BREAKER_REJECTED]
    assert rejected.value == 1 and rejected.attributes[sc.URL_TEMPLATE] == "/down"
    error_types = {p.attributes.get(sc.ERROR_TYPE) for p in data[sc.METRIC_REQUEST_DURATION]}
    assert "observable_session.errors.CircuitOpenError" in error_types
    last = otel.spans("INTERNAL")[-1]
    assert [e.name for e in last.events] == [sc.BREAKER_REJECTED_EVENT]
    assert last.attributes[sc.ERROR_TYPE] == "observable_session.errors.CircuitOpenError"
    assert not [
        s for s in otel.spans("CLIENT") if s.parent and s.parent.span_id == last.context.span_id
    ]


def test_state_gauge_returns_to_closed(upstream: Upstream, otel: Otel) -> None:
    """After a successful probe the gauge reads 0 for the server."""
    clock = Clock()
    cb = CircuitBreaker(minimum_throughput=4, clock=clock)
    upstream.script("/x", Reply(503), Reply(503), Reply(503), Reply(503), Reply(200))
    with make(
        upstream.url, retry_budget=None, retries_total=0, circuit_breaker=cb, **otel.providers()
    ) as s:
        open_breaker(s, "/x")
        clock.now += 5
        s.get("/x")
    (state,) = otel.points(sc.METRIC_BREAKER_STATE)
    assert state.value == 0
    moves = {
        (p.attributes[sc.BREAKER_FROM_STATE], p.attributes[sc.BREAKER_TO_STATE]): p.value
        for p in otel.points(sc.METRIC_BREAKER_TRANSITIONS)
    }
    assert moves == {("closed", "open"): 1, ("open", "half_open"): 1, ("half_open", "closed"): 1}


# -- idempotency keys -------------------------------------------------------------------------


def keys(upstream: Upstream, header: str = "Idempotency-Key") -> list[str | None]:
    """The key header of every request the upstream saw, in order."""
    return [
        next((v for k, v in seen.headers.items() if k.lower() == header.lower()), None)
        for seen in upstream.seen
    ]


def test_post_gets_one_uuid4_key_for_all_its_attempts(upstream: Upstream) -> None:
    """Three attempts of one POST carry the same UUID4; the next POST a new one."""
    upstream.script("/jobs", Reply(503), Reply(503), Reply(201), Reply(201))
    with make(upstream.url, idempotency_key=True) as s:
        s.post("/jobs", json={"a": 1})
        s.post("/jobs", json={"a": 2})
    first, second, third, fourth = keys(upstream)
    assert first == second == third and first is not None
    assert uuid.UUID(first).version == 4
    assert fourth is not None and fourth != first


def test_patch_gets_a_key_get_and_put_do_not(upstream: Upstream) -> None:
    """Only the non-idempotent methods POST and PATCH get a key."""
    with make(upstream.url, idempotency_key=True) as s:
        s.patch("/a", json={})
        s.get("/b")
        s.put("/c", json={})
        s.delete("/d")
    assert [k is not None for k in keys(upstream)] == [True, False, False, False]


def test_key_off_by_default(upstream: Upstream) -> None:
    """No header unless asked for."""
    with make(upstream.url) as s:
        s.post("/jobs", json={})
    assert keys(upstream) == [None]


def test_custom_header_name(upstream: Upstream) -> None:
    """idempotency_key="X-Request-Id" puts the key in that header."""
    with make(upstream.url, idempotency_key="X-Request-Id") as s:
        s.post("/jobs", json={})
    assert keys(upstream, "X-Request-Id")[0] is not None
    assert keys(upstream) == [None]


def test_callers_own_key_is_kept(upstream: Upstream) -> None:
    """A key the caller set is sent as is, on every attempt."""
    upstream.script("/jobs", Reply(503), Reply(201))
    with make(upstream.url, idempotency_key=True) as s:
        s.post("/jobs", json={}, headers={"idempotency-key": "job-42"})
    assert keys(upstream) == ["job-42", "job-42"]


def test_key_is_the_same_on_redirect_hops(upstream: Upstream) -> None:
    """A 307 re-sends the POST with the same key."""
    upstream.script("/jobs", Reply(307, headers={"Location": "/v2/jobs"}))
    upstream.script("/v2/jobs", Reply(503), Reply(201))
    with make(upstream.url, idempotency_key=True) as s:
        assert s.post("/jobs", json={"a": 1}).status_code == 201
    found = keys(upstream)
    assert len(found) == 3 and len(set(found)) == 1 and found[0] is not None


def test_key_per_call(upstream: Upstream) -> None:
    """idempotency_key= on one call turns it on (or off) for that call only."""
    with make(upstream.url) as s:
        s.post("/a", json={}, idempotency_key=True)
        s.post("/b", json={})
    with make(upstream.url, idempotency_key=True) as s:
        s.post("/c", json={}, idempotency_key=False)
    assert [k is not None for k in keys(upstream)] == [True, False, False]


def test_with_a_key_a_post_read_failure_is_retried(upstream: Upstream) -> None:
    """A reset after the POST was read is retried when the server can deduplicate."""
    upstream.script("/jobs", Reset(), Reply(201))
    with make(upstream.url, idempotency_key=True) as s:
        assert s.post("/jobs", json={}).status_code == 201
    assert upstream.hits("/jobs") == 2
    assert len(set(keys(upstream))) == 1


def test_without_a_key_a_post_read_failure_is_final(upstream: Upstream) -> None:
    """Without a key a POST is never re-sent after a read failure (it may have run)."""
    upstream.script("/jobs", Reset(), Reply(201))
    with make(upstream.url) as s, pytest.raises(ApiConnectionError):
        s.post("/jobs", json={})
    assert upstream.hits("/jobs") == 1


def test_prepared_request_is_not_mutated(upstream: Upstream) -> None:
    """send() twice with one PreparedRequest: two logical requests, two keys."""
    with make(upstream.url, idempotency_key=True) as s:
        prepared = s.prepare_request(requests.Request("POST", upstream.url + "/jobs", json={}))
        s.send(prepared)
        s.send(prepared)
        assert "Idempotency-Key" not in prepared.headers
    first, second = keys(upstream)
    assert first and second and first != second


def test_key_is_a_span_attribute_never_a_metric_attribute(upstream: Upstream, otel: Otel) -> None:
    """The logical span carries the key; no metric point does."""
    upstream.script("/jobs", Reply(503), Reply(201))
    with make(upstream.url, idempotency_key=True, **otel.providers()) as s:
        s.post("/jobs", json={})
    (key,) = set(keys(upstream))
    (logical,) = otel.spans("INTERNAL")
    assert logical.attributes[sc.IDEMPOTENCY_KEY] == key
    data = otel.reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    assert key not in {str(v) for v in point.attributes.values()}
                    assert sc.IDEMPOTENCY_KEY not in point.attributes


@pytest.mark.parametrize("bad", ["", "Bad Header", "x\r\ny", 5, b"Key", ["Key"]])
def test_invalid_header_names_are_refused(upstream: Upstream, bad: object) -> None:
    """Not a bool nor a header token: InvalidConfigError, at construction and per call."""
    with pytest.raises(InvalidConfigError, match="idempotency_key"):
        make(upstream.url, idempotency_key=bad)
    with make(upstream.url) as s, pytest.raises(InvalidConfigError, match="idempotency_key"):
        s.post("/jobs", json={}, idempotency_key=bad)
    assert upstream.hits() == 0


# -- retry_after_exceeded ---------------------------------------------------------------------


def test_cap_is_the_default(upstream: Upstream) -> None:
    """A Retry-After of 600 s waits retry_after_max (120 s), as before."""
    sleeps: list[float] = []
    upstream.script("/x", Reply(503, headers={"Retry-After": "600"}), Reply(200))
    with make(upstream.url, sleeps) as s:
        assert s.get("/x").status_code == 200
    assert sleeps == [120.0]


def test_raise_ends_the_call_at_once_with_retry_after(upstream: Upstream) -> None:
    """retry_after_exceeded="raise": no sleep, one attempt, ApiHTTPError carrying 600 s."""
    sleeps: list[float] = []
    upstream.script("/x", Reply(503, headers={"Retry-After": "600"}), Reply(200))
    with make(upstream.url, sleeps, retry_after_exceeded="raise") as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/x")
    assert sleeps == [] and upstream.hits("/x") == 1
    err = info.value
    assert err.retry_after == 600.0 and err.retry_denied == "retry_after"
    assert err.status_code == 503 and err.attempts == 1


def test_raise_even_without_raise_for_status(upstream: Upstream) -> None:
    """The call ends with the error even when 4xx/5xx would be returned."""
    upstream.script("/x", Reply(429, headers={"Retry-After": "3600"}))
    with make(upstream.url, retry_after_exceeded="raise", raise_for_status=False) as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/x")
    assert info.value.retry_after == 3600.0 and info.value.status_code == 429


def test_raise_with_an_http_date(upstream: Upstream) -> None:
    """A Retry-After date an hour away is more than the cap."""
    import time as _time
    from email.utils import formatdate

    when = formatdate(_time.time() + 3600, usegmt=True)
    upstream.script("/x", Reply(503, headers={"Retry-After": when}))
    with make(upstream.url, retry_after_exceeded="raise") as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/x")
    assert info.value.retry_after is not None and 3500 < info.value.retry_after <= 3600


def test_raise_leaves_short_waits_alone(upstream: Upstream) -> None:
    """A Retry-After within retry_after_max is waited and retried."""
    sleeps: list[float] = []
    upstream.script("/x", Reply(503, headers={"Retry-After": "120"}), Reply(200))
    with make(upstream.url, sleeps, retry_after_exceeded="raise") as s:
        assert s.get("/x").status_code == 200
    assert sleeps == [120.0]


def test_raise_per_call(upstream: Upstream) -> None:
    """retry_after_exceeded= per call."""
    upstream.script("/x", Reply(503, headers={"Retry-After": "600"}))
    with make(upstream.url) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/x", retry_after_exceeded="raise")
    assert info.value.retry_after == 600.0


@pytest.mark.parametrize("bad", ["wait", "", None, True, 1])
def test_invalid_retry_after_exceeded(upstream: Upstream, bad: object) -> None:
    """Only "cap" and "raise"."""
    with pytest.raises(InvalidConfigError, match="retry_after_exceeded"):
        make(upstream.url, retry_after_exceeded=bad)


# -- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("retry_budget", 10),
        ("retry_budget", "budget"),
        ("retry_budget", CircuitBreaker()),
        ("circuit_breaker", True),
        ("circuit_breaker", RetryBudget()),
    ],
)
def test_wrong_policy_types_are_refused(upstream: Upstream, name: str, bad: object) -> None:
    """A policy argument of the wrong type fails at construction and per call, naming it."""
    with pytest.raises(InvalidConfigError, match=name):
        make(upstream.url, **{name: bad})
    with make(upstream.url) as s, pytest.raises(InvalidConfigError, match=name):
        s.get("/x", **{name: bad})
    assert upstream.hits() == 0


def test_pickled_session_keeps_its_policies(upstream: Upstream) -> None:
    """A session pickles with its budget and breaker settings."""
    import pickle

    s = make(
        upstream.url, circuit_breaker=CircuitBreaker(minimum_throughput=7), idempotency_key=True
    )
    copy = pickle.loads(pickle.dumps(s))
    assert copy.circuit_breaker is not None and copy.circuit_breaker.minimum_throughput == 7
    assert copy.retry_budget is not None
    copy.post(upstream.url + "/jobs", json={})
    assert keys(upstream)[0] is not None


def test_broken_meter_never_breaks_a_request(upstream: Upstream) -> None:
    """A meter that cannot create the overload instruments: requests still work."""
    from opentelemetry.sdk.metrics import MeterProvider

    class BrokenMeterProvider(MeterProvider):
        def get_meter(self, *args: Any, **kwargs: Any) -> Any:
            meter = super().get_meter(*args, **kwargs)

            def broken(*a: Any, **k: Any) -> Any:
                raise RuntimeError("no gauges here")

            meter.create_observable_gauge = broken  # type: ignore[method-assign]
            return meter

    provider = BrokenMeterProvider()
    upstream.script("/down", Reply(503))
    cb = CircuitBreaker(minimum_throughput=2)
    with make(upstream.url, meter_provider=provider, circuit_breaker=cb, retries_total=0) as s:
        failing_calls(s, "/down", 2)
        with pytest.raises(CircuitOpenError):
            s.get("/down")
        assert s.get("/ok", circuit_breaker=None).status_code == 200
    provider.shutdown()


def test_tls_errors_neither_open_nor_close_the_breaker(upstream: Upstream) -> None:
    """https:// to a plain-HTTP port fails the TLS handshake (final): not counted."""
    cb = CircuitBreaker(minimum_throughput=2)
    tls_url = upstream.url.replace("http://", "https://")
    with make(tls_url, retry_budget=None, circuit_breaker=cb) as s:
        for _ in range(5):
            with pytest.raises(requests.exceptions.SSLError):
                s.get("/x")
    assert cb.states() == [] or all(state.level == 0 for _, state in cb.states())


def test_429_is_not_a_breaker_failure(upstream: Upstream) -> None:
    """Throttling (429) is a healthy server saying "slow down": the circuit stays closed."""
    upstream.script("/busy", Reply(429))
    cb = CircuitBreaker(minimum_throughput=4)
    with make(upstream.url, retry_budget=None, circuit_breaker=cb) as s:
        failing_calls(s, "/busy", 10)
    assert upstream.hits("/busy") == 10


def test_denials_by_breaker_and_retry_after_are_counted(upstream: Upstream, otel: Otel) -> None:
    """circuit_open and retry_after denials: counter by reason, span event on the logical span."""
    upstream.script("/x", Reply(503))
    upstream.script("/later", Reply(503, headers={"Retry-After": "600"}))
    cb = CircuitBreaker(minimum_throughput=2)
    options: dict[str, Any] = {"retry_budget": None, "circuit_breaker": cb}
    with make(upstream.url, **options, **otel.providers()) as s:
        with pytest.raises(ApiHTTPError):
            s.get("/x")  # two attempts open the circuit, the third is denied
        with pytest.raises(ApiHTTPError):
            s.get("/later", retry_after_exceeded="raise", circuit_breaker=None)
    counts = {
        p.attributes[sc.RETRY_DENIED_BY]: p.value for p in otel.points(sc.METRIC_RETRIES_DENIED)
    }
    assert counts == {"circuit_open": 1, "retry_after": 1}
    events = [
        dict(e.attributes)
        for span in otel.spans("INTERNAL")
        for e in span.events
        if e.name == sc.RETRY_DENIED_EVENT
    ]
    assert [e[sc.RETRY_DENIED_BY] for e in events] == ["circuit_open", "retry_after"]
    assert events[0][sc.HTTP_REQUEST_RESEND_COUNT] == 2


def test_one_budget_holds_under_racing_threads(upstream: Upstream) -> None:
    """Eight threads sharing a session in an outage: retries stop after a handful in all."""
    import threading

    upstream.script("/down", Reply(503))
    barrier = threading.Barrier(8)
    with make(upstream.url) as s:

        def work() -> None:
            barrier.wait()
            for _ in range(25):
                with pytest.raises(ApiHTTPError):
                    s.get("/down")

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        budget = s.retry_budget
        assert budget is not None
        assert budget.tokens(("http", "127.0.0.1", upstream.port)) == 0.0
    retries = upstream.hits("/down") - 200
    # A retry is checked after its own failure is charged, so only the first four failures
    # (tokens 9, 8, 7, 6) can ever see more than half: four retries at most, however racing.
    assert 0 < retries <= 4
