"""Spans and metric points per attempt and per logical request, with a real SDK."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from observable_session import (
    ApiConnectionError,
    ApiHTTPError,
    ApiReadTimeout,
    DeadlineExceeded,
    Session,
)
from observable_session.telemetry import _semconv as sc
from tests.conftest import Otel, Reply, Reset, Upstream

KEY = "tel-secret-0123456789"


def make(upstream: Upstream, otel: Otel, **kwargs: Any) -> Session:
    """A session on the upstream with the in-memory SDK and no real sleeps."""
    kwargs.setdefault("auth_headers", {"X-API-Key": KEY})
    kwargs.setdefault("sleep", lambda s: None)
    return Session(base_url=upstream.url, **kwargs, **otel.providers())


def attempts_of(otel: Otel) -> list[ReadableSpan]:
    """CLIENT spans in start order."""
    return sorted(otel.spans("CLIENT"), key=lambda s: s.start_time or 0)


def total_count(otel: Otel, name: str) -> int:
    """Sum of histogram counts (or counter values) of metric ``name``."""
    return sum(getattr(p, "count", None) or getattr(p, "value", 0) for p in otel.points(name))


@pytest.fixture
def flaky(upstream: Upstream, otel: Otel) -> Upstream:
    """GET /jobs/{id}: 503, 503, 200, through a session with telemetry."""
    upstream.script("/jobs/42", Reply(503), Reply(503), Reply(200))
    with make(upstream, otel) as s:
        s.get("/jobs/{job_id}", path_params={"job_id": 42})
    return upstream


def test_one_logical_span(flaky: Upstream, otel: Otel) -> None:
    """503, 503, 200 gives exactly one INTERNAL span."""
    logical = otel.spans("INTERNAL")
    assert len(logical) == 1
    span = logical[0]
    assert span.name == "GET /jobs/{job_id}"
    assert span.attributes[sc.ATTEMPTS] == 3
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    assert span.attributes[sc.URL_TEMPLATE] == "/jobs/{job_id}"


def test_three_attempt_spans_with_resend_count(flaky: Upstream, otel: Otel) -> None:
    """Three CLIENT spans, resend_count absent, 1, 2, children of the logical span."""
    logical = otel.spans("INTERNAL")[0]
    spans = attempts_of(otel)
    assert [s.attributes.get(sc.HTTP_REQUEST_RESEND_COUNT) for s in spans] == [None, 1, 2]
    assert [s.attributes[sc.HTTP_RESPONSE_STATUS_CODE] for s in spans] == [503, 503, 200]
    assert all(s.parent and s.parent.span_id == logical.context.span_id for s in spans)
    assert all(s.kind is SpanKind.CLIENT for s in spans)


def test_failed_attempts_have_error_status(flaky: Upstream, otel: Otel) -> None:
    """5xx attempts are ERROR with error.type '503'; the successful one is not."""
    spans = attempts_of(otel)
    assert [s.status.status_code for s in spans] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert spans[0].attributes[sc.ERROR_TYPE] == "503"


def test_attempt_span_conventions(flaky: Upstream, otel: Otel) -> None:
    """Attempt spans carry the HTTP client conventions' attributes."""
    attrs = attempts_of(otel)[0].attributes
    assert attrs[sc.HTTP_REQUEST_METHOD] == "GET"
    assert attrs[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[sc.SERVER_PORT] == flaky.port
    assert attrs[sc.URL_SCHEME] == "http"
    assert attrs[sc.NETWORK_PROTOCOL_VERSION] == "1.1"
    assert attrs[sc.URL_FULL] == f"{flaky.url}/jobs/42"


def test_two_retry_events(flaky: Upstream, otel: Otel) -> None:
    """Two retry events on the logical span, with resend count, reason and backoff."""
    events = [e for e in otel.spans("INTERNAL")[0].events if e.name == sc.RETRY_EVENT]
    assert [e.attributes[sc.HTTP_REQUEST_RESEND_COUNT] for e in events] == [1, 2]
    assert [e.attributes[sc.RETRY_REASON] for e in events] == ["503", "503"]
    assert [e.attributes[sc.RETRY_BACKOFF] for e in events] == [0.5, 1.0]
    assert [e.attributes[sc.RETRY_AFTER] for e in events] == [False, False]


def test_three_duration_points_two_retries(flaky: Upstream, otel: Otel) -> None:
    """Three attempt duration points, one logical point, two retry counts."""
    assert total_count(otel, sc.METRIC_CLIENT_REQUEST_DURATION) == 3
    assert total_count(otel, sc.METRIC_REQUEST_DURATION) == 1
    assert total_count(otel, sc.METRIC_RETRIES) == 2
    assert total_count(otel, sc.METRIC_RETRY_BACKOFF) == 2


def test_duration_histogram_uses_second_buckets(flaky: Upstream, otel: Otel) -> None:
    """The advised 0.005 ... 10 s buckets are used, not the SDK's millisecond defaults."""
    point = otel.points(sc.METRIC_CLIENT_REQUEST_DURATION)[0]
    assert tuple(point.explicit_bounds) == sc.DURATION_BUCKETS


def test_metric_attributes_are_low_cardinality(flaky: Upstream, otel: Otel) -> None:
    """Metric attributes carry the template, never the raw path or URL."""
    for name in (sc.METRIC_CLIENT_REQUEST_DURATION, sc.METRIC_REQUEST_DURATION):
        for point in otel.points(name):
            assert point.attributes[sc.URL_TEMPLATE] == "/jobs/{job_id}"
            assert sc.URL_FULL not in point.attributes
            assert all("/jobs/42" not in str(v) for v in point.attributes.values())


def test_active_requests_return_to_zero(flaky: Upstream, otel: Otel) -> None:
    """http.client.active_requests goes up and down per attempt."""
    values = [p.value for p in otel.points(sc.METRIC_CLIENT_ACTIVE_REQUESTS)]
    assert values and all(v == 0 for v in values)


def test_trace_context_injected_per_attempt(flaky: Upstream, otel: Otel) -> None:
    """Each attempt carries a traceparent naming its own attempt span."""
    sent = [s.headers["traceparent"].split("-")[2] for s in flaky.seen]
    expected = [format(s.context.span_id, "016x") for s in attempts_of(otel)]
    assert sent == expected


def test_scope_name_and_version(flaky: Upstream, otel: Otel) -> None:
    """Spans come from the observable_session scope."""
    scope = otel.spans()[0].instrumentation_scope
    assert scope is not None and scope.name == "observable_session" and scope.version


def test_refused_connection(refused_url: str, otel: Otel) -> None:
    """A refused connection: two attempt spans with error.type and an exception event."""
    with Session(base_url=refused_url, sleep=lambda s: None, **otel.providers()) as s:
        with pytest.raises(ApiConnectionError):
            s.get("/x")
    spans = attempts_of(otel)
    assert len(spans) == 2
    assert spans[0].attributes[sc.ERROR_TYPE] == "requests.exceptions.ConnectionError"
    assert any(e.name == "exception" for e in spans[0].events)
    logical = otel.spans("INTERNAL")[0]
    assert logical.attributes[sc.ERROR_TYPE] == "requests.exceptions.ConnectionError"
    assert logical.status.status_code is StatusCode.ERROR


def test_reset_retry_reason_is_error_type(upstream: Upstream, otel: Otel) -> None:
    """A reset that is retried gives the error type as the retry reason."""
    upstream.script("/r", Reset(), Reply(200))
    with make(upstream, otel) as s:
        s.get("/r")
    events = [e for e in otel.spans("INTERNAL")[0].events if e.name == sc.RETRY_EVENT]
    assert events[0].attributes[sc.RETRY_REASON] == "requests.exceptions.ConnectionError"


def test_read_timeout_attempts(upstream: Upstream, otel: Otel) -> None:
    """Read timeouts: three attempts typed ReadTimeout."""
    upstream.script("/slow", Reply(200, delay=0.4))
    with make(upstream, otel) as s, pytest.raises(ApiReadTimeout):
        s.get("/slow", timeout=0.1)
    types = [s.attributes[sc.ERROR_TYPE] for s in attempts_of(otel)]
    assert types == ["requests.exceptions.ReadTimeout"] * 3


def test_retry_after_flag_on_event(upstream: Upstream, otel: Otel) -> None:
    """A retry set by Retry-After says so on its event."""
    upstream.script("/ra", Reply(429, headers={"Retry-After": "1"}), Reply(200))
    with make(upstream, otel) as s:
        s.get("/ra")
    event = next(e for e in otel.spans("INTERNAL")[0].events if e.name == sc.RETRY_EVENT)
    assert event.attributes[sc.RETRY_AFTER] is True and event.attributes[sc.RETRY_BACKOFF] == 1


def test_redirect_hops_are_resends(upstream: Upstream, otel: Otel) -> None:
    """A redirect hop is an attempt span with resend_count, under the same logical span."""
    upstream.script("/r", Reply(302, headers={"Location": "/final"}))
    with make(upstream, otel) as s:
        s.get("/r")
    spans = attempts_of(otel)
    assert len(otel.spans("INTERNAL")) == 1
    assert [s.attributes.get(sc.HTTP_REQUEST_RESEND_COUNT) for s in spans] == [None, 1]
    assert spans[1].attributes[sc.URL_FULL].endswith("/final")


def test_deadline_expiry_is_recorded(upstream: Upstream, otel: Otel) -> None:
    """A deadline that runs out marks the logical span with DeadlineExceeded."""
    upstream.script("/f", Reply(503))
    with make(upstream, otel, backoff_factor=10) as s, pytest.raises(DeadlineExceeded):
        s.get("/f", deadline=1)
    logical = otel.spans("INTERNAL")[0]
    assert logical.attributes[sc.ERROR_TYPE] == "observable_session.errors.DeadlineExceeded"
    assert logical.attributes[sc.RETRIES_EXHAUSTED] is True


def test_4xx_is_one_attempt(upstream: Upstream, otel: Otel) -> None:
    """A 404 is one attempt, no retry event, error.type '404' on both spans."""
    upstream.script("/nf", Reply(404))
    with make(upstream, otel) as s, pytest.raises(ApiHTTPError):
        s.get("/nf")
    assert len(attempts_of(otel)) == 1
    logical = otel.spans("INTERNAL")[0]
    assert logical.attributes[sc.ERROR_TYPE] == "404" and not logical.events


def test_exhausted_is_marked_on_logical_metric(upstream: Upstream, otel: Otel) -> None:
    """Failing after exhausting retries is visible on the logical duration metric."""
    upstream.script("/f", Reply(503))
    with make(upstream, otel) as s, pytest.raises(ApiHTTPError):
        s.get("/f")
    point = otel.points(sc.METRIC_REQUEST_DURATION)[0]
    assert point.attributes[sc.RETRIES_EXHAUSTED] is True
    assert point.attributes[sc.ERROR_TYPE] == "503"


def test_non_standard_method(upstream: Upstream, otel: Otel) -> None:
    """A method outside the conventions is _OTHER, with the original kept."""
    with make(upstream, otel) as s:
        s.request("PURGE", "/cache")
    attrs = attempts_of(otel)[0].attributes
    assert attrs[sc.HTTP_REQUEST_METHOD] == "_OTHER"
    assert attrs[sc.HTTP_REQUEST_METHOD_ORIGINAL] == "PURGE"
    assert attempts_of(otel)[0].name == "HTTP"


def test_span_names_never_hold_raw_paths(upstream: Upstream, otel: Otel) -> None:
    """Without a template the span name is the method alone."""
    with make(upstream, otel) as s:
        s.get("/jobs/123")
    assert {s.name for s in otel.spans()} == {"GET"}


def test_concurrent_counts_add_up(upstream: Upstream, otel: Otel) -> None:
    """Eight threads, 503 then 200 each: spans, points and retries all add up."""
    lock = threading.Lock()
    counter = iter(range(1000))

    # Every other attempt fails: the default retry budget would (rightly) deny retries.
    with make(upstream, otel, retry_budget=None) as s:

        def work() -> None:
            for _ in range(5):
                with lock:
                    n = next(counter)
                upstream.script(f"/c/{n}", Reply(503), Reply(200))
                s.get("/c/{n}", path_params={"n": n})

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(otel.spans("INTERNAL")) == 40
    assert len(otel.spans("CLIENT")) == 80 == upstream.hits()
    assert total_count(otel, sc.METRIC_CLIENT_REQUEST_DURATION) == 80
    assert total_count(otel, sc.METRIC_RETRIES) == 40
    parents = {s.context.span_id for s in otel.spans("INTERNAL")}
    assert all(s.parent and s.parent.span_id in parents for s in otel.spans("CLIENT"))


def test_no_sdk_nothing_breaks(flaky: Upstream) -> None:
    """With no SDK configured the session works and emits through no-op providers."""
    upstream = flaky
    upstream.script("/x", Reply(503), Reply(200))
    with Session(base_url=upstream.url, sleep=lambda s: None) as s:
        assert s.get("/x").status_code == 200
    assert "traceparent" not in upstream.seen[-1].headers


def test_suppression_is_honoured(upstream: Upstream, otel: Otel) -> None:
    """With instrumentation suppressed by the caller, nothing is emitted."""
    from opentelemetry.instrumentation.utils import suppress_http_instrumentation

    with make(upstream, otel) as s, suppress_http_instrumentation():
        s.get("/x")
    assert otel.spans() == [] and otel.points(sc.METRIC_CLIENT_REQUEST_DURATION) == []


def test_no_double_spans_with_requests_instrumentation(upstream: Upstream, otel: Otel) -> None:
    """With requests and urllib3 instrumentation on, each attempt is still one span."""
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    RequestsInstrumentor().instrument(tracer_provider=otel.tracer_provider)
    URLLib3Instrumentor().instrument(tracer_provider=otel.tracer_provider)
    try:
        upstream.script("/f", Reply(503), Reply(200))
        with make(upstream, otel) as s:
            s.get("/f")
    finally:
        RequestsInstrumentor().uninstrument()
        URLLib3Instrumentor().uninstrument()
    assert len(otel.spans("CLIENT")) == 2 and len(otel.spans()) == 3


def test_logical_span_is_child_of_callers_span(upstream: Upstream, otel: Otel) -> None:
    """The logical span joins the caller's trace."""
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("job") as parent, make(upstream, otel) as s:
        s.get("/x")
    logical = [s for s in otel.spans("INTERNAL") if s.name == "GET"]
    assert len(logical) == 1 and logical[0].parent is not None
    assert logical[0].parent.span_id == parent.get_span_context().span_id


def test_context_is_restored_after_call(upstream: Upstream, otel: Otel) -> None:
    """No span of ours stays current after the call returns."""
    before = otel_context.get_current()
    with make(upstream, otel) as s:
        s.get("/x")
    assert otel_context.get_current() == before
    assert not trace.get_current_span().get_span_context().is_valid


def test_secret_query_is_redacted_in_url_full(upstream: Upstream, otel: Otel) -> None:
    """url.full has sensitive query values and userinfo replaced by REDACTED."""
    url = upstream.url.replace("http://", "http://user:pw-secret@") + "/x?sig=abcdef&page=2"
    with make(upstream, otel) as s:
        s.get(url)
    full = attempts_of(otel)[0].attributes[sc.URL_FULL]
    assert "abcdef" not in full and "pw-secret" not in full and "page=2" in full


def test_late_sleep_past_deadline_counts_no_retry(upstream: Upstream, otel: Otel) -> None:
    """A backoff that wakes after the deadline: no retry counted, no retry event, one attempt."""

    upstream.script("/f", Reply(504))
    with make(upstream, otel, backoff_factor=0.29, sleep=lambda s: time.sleep(s + 0.05)) as s:
        with pytest.raises(DeadlineExceeded) as info:
            s.get("/f", deadline=0.3)
    assert info.value.attempts == 1 and info.value.status_code == 504
    assert total_count(otel, sc.METRIC_RETRIES) == 0
    assert total_count(otel, sc.METRIC_CLIENT_REQUEST_DURATION) == 1
    assert not [e for e in otel.spans("INTERNAL")[0].events if e.name == sc.RETRY_EVENT]


def test_active_requests_count_an_attempt_in_flight(upstream: Upstream, otel: Otel) -> None:
    """While an attempt waits on a slow server, http.client.active_requests reads 1."""
    upstream.script("/slow", Reply(200, delay=0.5))
    with make(upstream, otel) as s:
        worker = threading.Thread(target=s.get, args=("/slow",))
        worker.start()
        deadline = time.monotonic() + 2
        seen = 0
        while seen == 0 and time.monotonic() < deadline:
            seen = sum(p.value for p in otel.points(sc.METRIC_CLIENT_ACTIVE_REQUESTS))
        worker.join()
    assert seen == 1
    assert sum(p.value for p in otel.points(sc.METRIC_CLIENT_ACTIVE_REQUESTS)) == 0


def test_two_sessions_share_one_active_requests_series(upstream: Upstream, otel: Otel) -> None:
    """Sessions on the same meter provider report into one in-flight table."""
    with make(upstream, otel) as a, make(upstream, otel) as b:
        a.get("/x")
        b.get("/x")
    points = otel.points(sc.METRIC_CLIENT_ACTIVE_REQUESTS)
    assert len(points) == 1 and points[0].value == 0


def test_request_from_a_hook_during_redirects_is_its_own_call(
    upstream: Upstream, otel: Otel
) -> None:
    """A response hook that makes a request mid-chain does not split the outer call."""
    upstream.script("/a", Reply(302, headers={"Location": "/b"}))
    upstream.script("/b", Reply(302, headers={"Location": "/c"}))
    with make(upstream, otel) as s:

        def side(response: Any, **kwargs: Any) -> None:
            if response.url.endswith("/b"):
                s.get("/side", url_template="/side")

        s.hooks["response"].append(side)
        assert s.get("/a", url_template="/a").status_code == 200
    logical = {span.name: span.attributes[sc.ATTEMPTS] for span in otel.spans("INTERNAL")}
    assert logical == {"GET /a": 3, "GET /side": 1}


def test_logical_point_keeps_the_called_origin(
    upstream: Upstream, other_upstream: Upstream, otel: Otel
) -> None:
    """After a cross-origin redirect, the logical span and point agree on the server called."""
    upstream.script("/r", Reply(302, headers={"Location": other_upstream.url + "/x"}))
    with make(upstream, otel) as s:
        s.get("/r")
    point = otel.points(sc.METRIC_REQUEST_DURATION)[0]
    logical = otel.spans("INTERNAL")[0]
    assert point.attributes[sc.SERVER_PORT] == logical.attributes[sc.SERVER_PORT] == upstream.port
    assert point.attributes[sc.NETWORK_PROTOCOL_VERSION] == "1.1"
