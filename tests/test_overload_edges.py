"""The overload policies where an attacker would push them: edge cases found in review.

``retry_after_exceeded="raise"`` when no retry is left or the deadline is shorter than the
wait, the new error attributes surviving a pickle round trip, and idempotency keys through a
307 to another origin and a retry there.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from observable_session import (
    ApiHTTPError,
    CircuitBreaker,
    CircuitOpenError,
    InvalidConfigError,
    RetryBudget,
    Session,
)
from observable_session.telemetry import _semconv as sc
from tests.conftest import Otel, Reply, Reset, Upstream

LONG = {"Retry-After": "600"}


def make(url: str, sleeps: list[float] | None = None, **kwargs: Any) -> Session:
    """A session that records its sleeps instead of sleeping."""
    record = sleeps if sleeps is not None else []
    return Session(base_url=url, sleep=record.append, **kwargs)


# -- retry_after_exceeded="raise" -------------------------------------------------------------


def test_raise_with_retries_disabled(upstream: Upstream) -> None:
    """retries_total=0: the long Retry-After still ends the call with retry_after."""
    upstream.script("/x", Reply(503, headers=LONG))
    with make(upstream.url, retry_after_exceeded="raise", retries_total=0) as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/x")
    assert info.value.retry_after == 600.0 and info.value.retry_denied == "retry_after"


def test_raise_with_retries_disabled_and_no_raise_for_status(upstream: Upstream) -> None:
    """With "raise" the 429 is raised even when it would be returned and no retry is left."""
    upstream.script("/x", Reply(429, headers={"Retry-After": "3600"}))
    with make(upstream.url, retry_after_exceeded="raise", retries_total=0) as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/x", raise_for_status=False)
    assert info.value.retry_after == 3600.0 and info.value.status_code == 429


def test_raise_on_the_last_attempt(upstream: Upstream) -> None:
    """A long Retry-After on the attempt that used up the retries is reported too."""
    sleeps: list[float] = []
    upstream.script("/x", Reply(503, headers={"Retry-After": "1"}), Reply(503, headers=LONG))
    with make(upstream.url, sleeps, retry_after_exceeded="raise", retries_total=1) as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/x")
    assert sleeps == [1.0] and upstream.hits("/x") == 2
    assert info.value.retry_after == 600.0 and info.value.attempts == 2


def test_raise_beats_a_deadline_shorter_than_the_wait(upstream: Upstream) -> None:
    """A 30 s deadline and Retry-After: 600: the HTTP error with retry_after, not a deadline."""
    upstream.script("/x", Reply(503, headers=LONG))
    with make(upstream.url, retry_after_exceeded="raise", deadline=30) as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/x")
    assert type(info.value) is ApiHTTPError
    assert info.value.retry_after == 600.0 and upstream.hits("/x") == 1


def test_raise_reads_at_most_error_body_limit_bytes(upstream: Upstream) -> None:
    """The Retry-After error's message reads no more of the body than any other HTTP error."""
    body = "word " * 40 + "MARKER-BEYOND-THE-LIMIT " + "word " * 10
    upstream.script("/x", Reply(503, body, LONG))
    with make(upstream.url, retry_after_exceeded="raise", error_body_limit=100) as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/x", stream=True)
    assert info.value.retry_after == 600.0
    assert "MARKER" not in str(info.value) and "word word" in str(info.value)


def test_cap_mode_unchanged_when_no_retry_is_left(upstream: Upstream) -> None:
    """With "cap" (the default) the 503 is returned as before, no retry_after."""
    upstream.script("/x", Reply(503, headers=LONG))
    with make(upstream.url, retries_total=0, raise_for_status=False) as s:
        response = s.get("/x")
    assert response.status_code == 503


def test_no_denial_is_counted_when_no_retry_was_wanted(upstream: Upstream, otel: Otel) -> None:
    """retries_total=0: the call ends with retry_after, but no retry was denied."""
    upstream.script("/x", Reply(503, headers=LONG))
    with make(upstream.url, retry_after_exceeded="raise", retries_total=0, **otel.providers()) as s:
        with pytest.raises(ApiHTTPError):
            s.get("/x")
    assert otel.points(sc.METRIC_RETRIES_DENIED) == []
    (logical,) = otel.spans("INTERNAL")
    assert [e.name for e in logical.events] == []


def test_raise_reports_a_day_long_retry_after_uncapped(upstream: Upstream) -> None:
    """urllib3 >= 2.6 caps Retry-After at 6 h: retry_after is still the server's day."""
    upstream.script("/x", Reply(503, headers={"Retry-After": "86400"}))
    with make(upstream.url, retry_after_exceeded="raise") as s, pytest.raises(ApiHTTPError) as info:
        s.get("/x")
    assert info.value.retry_after == 86400.0


def test_raise_reads_a_date_two_days_away_uncapped(upstream: Upstream) -> None:
    """An HTTP date 48 h away: retry_after is about 172800 s, not 21600."""
    import time
    from email.utils import formatdate

    upstream.script("/x", Reply(429, headers={"Retry-After": formatdate(time.time() + 172800)}))
    with make(upstream.url, retry_after_exceeded="raise") as s, pytest.raises(ApiHTTPError) as info:
        s.get("/x")
    assert info.value.retry_after is not None and 172700 < info.value.retry_after <= 172800


@pytest.mark.parametrize(
    ("header", "raises"),
    [("9" * 400, True), ("-5", False), ("soon", False), ("nan", False), ("1e9", False)],
)
def test_raise_with_hostile_retry_after_values(
    upstream: Upstream, header: str, raises: bool
) -> None:
    """400 digits read as very long (raise); negative, words, nan, floats: ignored (retried)."""
    sleeps: list[float] = []
    upstream.script("/x", Reply(503, headers={"Retry-After": header}), Reply(200))
    with make(upstream.url, sleeps, retry_after_exceeded="raise") as s:
        if raises:
            with pytest.raises(ApiHTTPError) as info:
                s.get("/x")
            assert info.value.retry_after == float("inf")
        else:
            assert s.get("/x").status_code == 200
    assert upstream.hits("/x") == (1 if raises else 2)


# -- pickling of the errors' new attributes ---------------------------------------------------


def test_budget_denial_survives_pickling(upstream: Upstream) -> None:
    """retry_denied="budget" (and the status) come back from a pickle round trip."""
    upstream.script("/x", Reply(503))
    with make(upstream.url, retry_budget=RetryBudget(max_tokens=2, token_ratio=0.1)) as s:
        errors = []
        for _ in range(3):
            with pytest.raises(ApiHTTPError) as info:
                s.get("/x")
            errors.append(info.value)
    assert errors[-1].retry_denied == "budget"
    copy = pickle.loads(pickle.dumps(errors[-1]))
    assert (copy.retry_denied, copy.status_code, copy.attempts) == ("budget", 503, 1)


def test_retry_after_survives_pickling(upstream: Upstream) -> None:
    """retry_after and retry_denied="retry_after" come back from a pickle round trip."""
    upstream.script("/x", Reply(503, headers=LONG))
    with make(upstream.url, retry_after_exceeded="raise") as s, pytest.raises(ApiHTTPError) as info:
        s.get("/x")
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.retry_after, copy.retry_denied) == (600.0, "retry_after")
    assert str(copy) == str(info.value)


def test_circuit_open_error_survives_pickling(upstream: Upstream) -> None:
    """A CircuitOpenError keeps retry_in (and stays a requests.ConnectionError)."""
    import requests

    upstream.script("/x", Reply(503))
    breaker = CircuitBreaker(minimum_throughput=1, break_duration=5.0)
    with make(upstream.url, circuit_breaker=breaker, retries_total=0) as s:
        with pytest.raises(ApiHTTPError):
            s.get("/x")
        with pytest.raises(CircuitOpenError) as info:
            s.get("/x")
    copy = pickle.loads(pickle.dumps(info.value))
    assert isinstance(copy, CircuitOpenError) and isinstance(copy, requests.ConnectionError)
    assert 4.0 < copy.retry_in <= 5.0 and copy.retry_in == info.value.retry_in
    assert copy.attempts == 0


def test_raise_on_the_last_attempt_still_says_retries_exhausted(
    upstream: Upstream, otel: Otel
) -> None:
    """The call that used up its retries is marked exhausted, whatever ended it."""
    upstream.script("/x", Reply(503, headers={"Retry-After": "1"}), Reply(503, headers=LONG))
    with make(upstream.url, retry_after_exceeded="raise", retries_total=1, **otel.providers()) as s:
        with pytest.raises(ApiHTTPError):
            s.get("/x")
    (logical,) = otel.spans("INTERNAL")
    assert logical.attributes is not None
    assert logical.attributes.get(sc.RETRIES_EXHAUSTED) is True


def test_a_denied_retry_after_is_not_marked_exhausted(upstream: Upstream, otel: Otel) -> None:
    """A first attempt's long Retry-After ends the call with its retries unspent."""
    upstream.script("/x", Reply(503, headers=LONG))
    with make(upstream.url, retry_after_exceeded="raise", **otel.providers()) as s:
        with pytest.raises(ApiHTTPError):
            s.get("/x")
    (logical,) = otel.spans("INTERNAL")
    assert logical.attributes is not None
    assert sc.RETRIES_EXHAUSTED not in logical.attributes


# -- idempotency keys across origins ----------------------------------------------------------


def _keys(*servers: Upstream) -> list[str | None]:
    return [
        next((v for k, v in seen.headers.items() if k.lower() == "idempotency-key"), None)
        for server in servers
        for seen in server.seen
    ]


def test_key_survives_a_307_to_another_origin_and_its_retries(
    upstream: Upstream, other_upstream: Upstream
) -> None:
    """307 to another origin, reset there, then 201: one key on all three attempts."""

    upstream.script("/jobs", Reply(307, headers={"Location": f"{other_upstream.url}/v2/jobs"}))
    other_upstream.script("/v2/jobs", Reset(), Reply(201))
    with make(upstream.url, idempotency_key=True, backoff_factor=0) as s:
        assert s.post("/jobs", json={"a": 1}).status_code == 201
    found = _keys(upstream, other_upstream)
    assert len(found) == 3 and found[0] is not None and len(set(found)) == 1


def test_callers_key_survives_a_307_to_another_origin(
    upstream: Upstream, other_upstream: Upstream
) -> None:
    """A key the caller set goes unchanged through the redirect and the retry."""

    upstream.script("/jobs", Reply(307, headers={"Location": f"{other_upstream.url}/v2/jobs"}))
    other_upstream.script("/v2/jobs", Reset(), Reply(201))
    with make(upstream.url, idempotency_key=True, backoff_factor=0) as s:
        s.post("/jobs", json={}, headers={"Idempotency-Key": "job-7"})
    assert _keys(upstream, other_upstream) == ["job-7", "job-7", "job-7"]


# -- idempotency keys never carry a credential into a trace -----------------------------------


@pytest.mark.parametrize(
    "name", ["Authorization", "proxy-authorization", "Cookie", "X-API-Key", "X-Auth-Token"]
)
def test_credential_headers_cannot_be_the_idempotency_header(upstream: Upstream, name: str) -> None:
    """Naming a credential header is refused, on the session and per call, before sending."""
    with pytest.raises(InvalidConfigError, match="idempotency_key must not name a credential"):
        make(upstream.url, idempotency_key=name)
    with make(upstream.url) as s, pytest.raises(InvalidConfigError, match="idempotency_key"):
        s.post("/jobs", json={}, idempotency_key=name)
    assert upstream.hits() == 0


def test_an_auth_header_used_as_the_key_is_masked_on_the_span(
    upstream: Upstream, otel: Otel
) -> None:
    """An auth header under an unremarkable name: its value never reaches the span."""
    secret = "jobs-auth-secret-5d1e"
    with make(
        upstream.url,
        auth_headers={"X-Jobs-Auth": secret},
        idempotency_key="X-Jobs-Auth",
        **otel.providers(),
    ) as s:
        s.post("/jobs", json={})
    (logical,) = otel.spans("INTERNAL")
    assert logical.attributes is not None
    recorded = logical.attributes.get(sc.IDEMPOTENCY_KEY)
    assert recorded is not None and secret not in str(recorded)


def test_denials_are_counted_for_the_server_that_denied(
    upstream: Upstream, other_upstream: Upstream, otel: Otel
) -> None:
    """A redirect hop's denied retry counts for the hop's server (regression guard)."""
    other_upstream.script("/down", Reply(503))
    upstream.script("/jobs", Reply(302, headers={"Location": f"{other_upstream.url}/down"}))
    budget = RetryBudget(max_tokens=2, token_ratio=0.1)
    first = f"http://localhost:{upstream.port}"  # another server.address than the hop's
    with make(first, retry_budget=budget, **otel.providers()) as s:
        for _ in range(2):
            with pytest.raises(ApiHTTPError):
                s.get("/jobs")
    (point,) = otel.points(sc.METRIC_RETRIES_DENIED)
    assert dict(point.attributes)[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert budget.tokens(("http", "127.0.0.1", other_upstream.port)) < 1
    assert budget.tokens(("http", "localhost", upstream.port)) == 2
