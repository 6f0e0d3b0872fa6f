"""Session.wait's span, span events, metric points and log events, with a real SDK."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
import structlog
import structlog.testing
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from structlog.testing import capture_logs

from observable_session import Session, WaitFailed, WaitTimeout
from observable_session.telemetry import _semconv as sc

from .conftest import Otel, Reply, Upstream

SECRET = "wait-telemetry-secret-51c2"


def _done(response: requests.Response) -> bool:
    return bool(response.json()["state"] == "DONE")


def _failed(response: requests.Response) -> bool:
    return bool(response.json()["state"] == "FAILED")


def _session(upstream: Upstream, otel: Otel, **kwargs: Any) -> Session:
    return Session(
        base_url=upstream.url,
        auth_headers={"X-API-Key": SECRET},
        sleep=lambda s: None,
        backoff_factor=0,
        **otel.providers(),
        **kwargs,
    )


def _script_job(upstream: Upstream) -> None:
    upstream.script(
        "/jobs/1",
        Reply(202, {"state": "QUEUED"}, {"Retry-After": "2"}),
        Reply(503, {"message": "busy"}),
        Reply(200, {"state": "RUNNING"}),
        Reply(200, {"state": "DONE"}),
    )


def test_one_wait_span_parents_every_poll(upstream: Upstream, otel: Otel) -> None:
    """One INTERNAL ``WAIT {url.template}`` span; each poll's logical span is its child."""
    _script_job(upstream)
    with _session(upstream, otel) as api:
        api.wait("/jobs/{job_id}", path_params={"job_id": "1"}, until=_done, jitter=0)
    waits = [s for s in otel.spans("INTERNAL") if s.name.startswith("WAIT")]
    assert len(waits) == 1
    wait = waits[0]
    assert wait.name == "WAIT /jobs/{job_id}"
    assert wait.attributes is not None
    assert wait.attributes[sc.WAIT_POLLS] == 3
    assert wait.attributes[sc.WAIT_OUTCOME] == "done"
    assert wait.attributes[sc.URL_TEMPLATE] == "/jobs/{job_id}"
    polls = [s for s in otel.spans("INTERNAL") if s.name == "GET /jobs/{job_id}"]
    assert len(polls) == 3
    assert all(p.parent is not None and p.parent.span_id == wait.context.span_id for p in polls)
    # The attempts (4: the 503 was retried once inside the second poll) are in the same trace.
    attempts = otel.spans("CLIENT")
    assert len(attempts) == 4
    assert {a.context.trace_id for a in attempts} == {wait.context.trace_id}


def test_an_event_per_scheduled_poll(upstream: Upstream, otel: Otel) -> None:
    """Each pause is a span event with its interval and whether Retry-After set it."""
    _script_job(upstream)
    with _session(upstream, otel) as api:
        api.wait("/jobs/1", until=_done, interval=1, multiplier=2, jitter=0)
    (wait,) = [s for s in otel.spans() if s.name == "WAIT"]
    events = [(e.name, dict(e.attributes or {})) for e in wait.events]
    assert [name for name, _ in events] == [sc.WAIT_POLL_EVENT] * 2
    assert [a[sc.WAIT_INTERVAL] for _, a in events] == [2.0, 2.0]
    assert [a[sc.WAIT_RETRY_AFTER] for _, a in events] == [True, False]
    assert [a[sc.WAIT_POLLS] for _, a in events] == [1, 2]


@pytest.mark.parametrize(
    ("replies", "kwargs", "error", "outcome"),
    [
        ([Reply(200, {"state": "FAILED"})], {"fail_when": _failed}, WaitFailed, "failed"),
        (
            [Reply(200, {"state": "RUNNING"})],
            {"deadline": 1, "interval": 5},
            WaitTimeout,
            "timeout",
        ),
        ([Reply(404, {"message": "gone"})], {}, requests.HTTPError, "error"),
    ],
)
def test_outcome_of_an_unsuccessful_wait(
    upstream: Upstream,
    otel: Otel,
    replies: list[Reply],
    kwargs: dict[str, Any],
    error: type[BaseException],
    outcome: str,
) -> None:
    """failed, timeout and error are the span's outcome; its status is ERROR."""
    upstream.script("/j", *replies)
    with _session(upstream, otel) as api, pytest.raises(error):
        api.wait("/j", until=_done, **kwargs)
    (wait,) = [s for s in otel.spans() if s.name == "WAIT"]
    assert wait.attributes is not None
    assert wait.attributes[sc.WAIT_OUTCOME] == outcome
    assert wait.attributes[sc.WAIT_POLLS] == 1
    assert sc.ERROR_TYPE in wait.attributes
    assert wait.status.status_code.name == "ERROR"
    (point,) = otel.points(sc.METRIC_WAIT_DURATION)
    assert dict(point.attributes) == {sc.WAIT_OUTCOME: outcome}


def test_metrics_by_template_and_outcome(upstream: Upstream, otel: Otel) -> None:
    """``wait.duration`` (s) and ``wait.polls`` get one point per wait, by route and outcome."""
    _script_job(upstream)
    upstream.script("/jobs/2", Reply(200, {"state": "DONE"}))
    with _session(upstream, otel) as api:
        for job in ("1", "2"):
            api.wait("/jobs/{job_id}", path_params={"job_id": job}, until=_done)
    (duration,) = otel.points(sc.METRIC_WAIT_DURATION)
    assert dict(duration.attributes) == {sc.URL_TEMPLATE: "/jobs/{job_id}", sc.WAIT_OUTCOME: "done"}
    assert duration.count == 2
    (polls,) = otel.points(sc.METRIC_WAIT_POLLS)
    assert polls.count == 2 and polls.sum == 4
    assert list(polls.explicit_bounds) == list(sc.WAIT_POLLS_BUCKETS)
    assert list(duration.explicit_bounds) == list(sc.WAIT_DURATION_BUCKETS)


def test_log_events_completed_and_failed(upstream: Upstream, otel: Otel) -> None:
    """``wait.completed`` at info, ``wait.failed`` at warning, with the wait span's ids."""
    upstream.script("/ok", Reply(200, {"state": "DONE"}))
    upstream.script("/bad", Reply(200, {"state": "FAILED"}))
    with _session(upstream, otel) as api, capture_logs() as logs:
        api.wait(f"/ok?token={SECRET}", until=_done)
        with pytest.raises(WaitFailed):
            api.wait("/bad", until=_done, fail_when=_failed)
    completed = [e for e in logs if e["event"] == sc.EVENT_WAIT_COMPLETED]
    failed = [e for e in logs if e["event"] == sc.EVENT_WAIT_FAILED]
    assert len(completed) == 1 and completed[0]["log_level"] == "info"
    assert completed[0]["polls"] == 1 and completed[0]["outcome"] == "done"
    assert len(failed) == 1 and failed[0]["log_level"] == "warning"
    assert failed[0]["outcome"] == "failed"
    assert failed[0]["error_type"] == "observable_session.errors.WaitFailed"
    waits = {s.context.span_id for s in otel.spans() if s.name == "WAIT"}
    assert {int(e["span_id"], 16) for e in completed + failed} == waits
    assert SECRET not in repr(logs)


def test_no_sdk_records_nothing_and_still_waits(upstream: Upstream) -> None:
    """Without an SDK the wait works the same and logs still flow."""
    upstream.script("/j", Reply(200, {"state": "DONE"}))
    with Session(base_url=upstream.url) as api, capture_logs() as logs:
        assert _done(api.wait("/j", until=_done))
    assert [e["event"] for e in logs if "wait" in e["event"]] == [sc.EVENT_WAIT_COMPLETED]


class _BrokenTracerProvider(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("broken tracer provider")


def test_broken_telemetry_does_not_change_the_result(upstream: Upstream, otel: Otel) -> None:
    """A provider that raises neither breaks the wait nor changes what it returns."""
    upstream.script("/j", Reply(200, {"state": "RUNNING"}), Reply(200, {"state": "DONE"}))
    with Session(
        base_url=upstream.url,
        sleep=lambda s: None,
        tracer_provider=_BrokenTracerProvider(),
        meter_provider=otel.meter_provider,
    ) as api:
        assert _done(api.wait("/j", until=_done))
    assert upstream.hits("/j") == 2


def test_a_failing_log_chain_does_not_change_the_result(upstream: Upstream, otel: Otel) -> None:
    """A structlog processor that raises on wait events neither breaks nor changes the wait."""

    def explode(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if str(event.get("event", "")).startswith("observable_session.wait."):
            raise RuntimeError("broken log chain")
        return event

    upstream.script("/ok", Reply(200, {"state": "DONE"}))
    upstream.script("/bad", Reply(200, {"state": "FAILED"}))
    structlog.configure(processors=[explode, structlog.testing.LogCapture()])
    try:
        with _session(upstream, otel) as api:
            assert _done(api.wait("/ok", until=_done))
            with pytest.raises(WaitFailed):
                api.wait("/bad", until=_done, fail_when=_failed)
    finally:
        structlog.reset_defaults()


def test_suppressed_instrumentation_records_no_wait_span(upstream: Upstream, otel: Otel) -> None:
    """When the caller suppressed instrumentation there is no WAIT span and no wait point."""
    upstream.script("/j", Reply(200, {"state": "DONE"}))
    token = otel_context.attach(
        otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
    )
    try:
        with _session(upstream, otel) as api:
            assert _done(api.wait("/j", until=_done))
    finally:
        otel_context.detach(token)
    assert otel.spans() == []
    assert otel.points(sc.METRIC_WAIT_DURATION) == []


def test_concurrent_waits_keep_their_own_polls(upstream: Upstream, otel: Otel) -> None:
    """Threads waiting at once on one session: each WAIT span parents exactly its own polls."""
    count = 16
    for n in range(count):
        upstream.script(
            f"/jobs/{n}", Reply(200, {"state": "RUNNING"}), Reply(200, {"state": "DONE"})
        )
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []
    with _session(upstream, otel) as api:

        def work(n: int) -> None:
            barrier.wait(timeout=10)
            try:
                api.wait("/jobs/{job_id}", path_params={"job_id": str(n)}, until=_done)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    waits = {s.context.span_id: s for s in otel.spans() if s.name.startswith("WAIT")}
    polls = [s for s in otel.spans("INTERNAL") if s.name == "GET /jobs/{job_id}"]
    assert len(waits) == count and len(polls) == 2 * count
    children: dict[int, int] = {}
    for poll in polls:
        assert poll.parent is not None and poll.parent.span_id in waits
        assert poll.context.trace_id == waits[poll.parent.span_id].context.trace_id
        children[poll.parent.span_id] = children.get(poll.parent.span_id, 0) + 1
    assert set(children.values()) == {2}
    (point,) = otel.points(sc.METRIC_WAIT_POLLS)
    assert point.count == count and point.sum == 2 * count
