"""The session's own structlog events: names, fields, trace ids, and nothing configured."""

from __future__ import annotations

import subprocess
import sys

import pytest
import structlog
from structlog.testing import capture_logs

from observable_session import ApiHTTPError, Session
from observable_session.telemetry import _semconv as sc
from tests.conftest import Otel, Reply, Upstream

KEY = "log-secret-0123456789"


def run(upstream: Upstream, otel: Otel | None = None) -> list[dict[str, object]]:
    """GET /f (503, 503, 200) and return the captured log events."""
    upstream.script("/f", Reply(503), Reply(503), Reply(200))
    providers = otel.providers() if otel else {}
    with capture_logs() as logs:
        with Session(
            base_url=upstream.url,
            auth_headers={"X-API-Key": KEY},
            sleep=lambda s: None,
            **providers,
        ) as s:
            s.get("/f", url_template="/f")
    return logs


def test_retry_scheduled_events(upstream: Upstream, otel: Otel) -> None:
    """Each scheduled retry logs reason, backoff and the next attempt number."""
    events = [e for e in run(upstream, otel) if e["event"] == sc.EVENT_RETRY_SCHEDULED]
    assert [(e["reason"], e["backoff_s"], e["attempt"]) for e in events] == [
        ("503", 0.5, 2),
        ("503", 1.0, 3),
    ]
    assert all(e["log_level"] == "info" for e in events)


def test_attempt_failed_events(upstream: Upstream, otel: Otel) -> None:
    """Each failed attempt logs its status at warning."""
    events = [e for e in run(upstream, otel) if e["event"] == sc.EVENT_ATTEMPT_FAILED]
    assert [e["status_code"] for e in events] == [503, 503]
    assert all(e["log_level"] == "warning" for e in events)


def test_completed_event_at_debug(upstream: Upstream, otel: Otel) -> None:
    """A completed request logs at debug with its attempts."""
    events = [e for e in run(upstream, otel) if e["event"] == sc.EVENT_REQUEST_COMPLETED]
    assert len(events) == 1 and events[0]["attempts"] == 3 and events[0]["log_level"] == "debug"


def test_events_carry_trace_ids(upstream: Upstream, otel: Otel) -> None:
    """Every event carries the trace_id and span_id of a span of this request."""
    logs = run(upstream, otel)
    trace_ids = {format(s.context.trace_id, "032x") for s in otel.spans()}
    span_ids = {format(s.context.span_id, "016x") for s in otel.spans()}
    assert logs and all(e["trace_id"] in trace_ids for e in logs)
    assert all(e["span_id"] in span_ids for e in logs)


def test_exhausted_event(upstream: Upstream) -> None:
    """Failing after the budget logs retries exhausted."""
    upstream.script("/x", Reply(503))
    with capture_logs() as logs:
        with Session(base_url=upstream.url, sleep=lambda s: None) as s:
            with pytest.raises(ApiHTTPError):
                s.get("/x")
    exhausted = [e for e in logs if e["event"] == sc.EVENT_RETRIES_EXHAUSTED]
    assert len(exhausted) == 1 and exhausted[0]["attempts"] == 3


def test_no_event_holds_the_secret(upstream: Upstream, otel: Otel) -> None:
    """No log event field holds the auth value."""
    assert KEY not in repr(run(upstream, otel))


def test_import_configures_nothing() -> None:
    """Importing the package sets no structlog config, no handlers, no providers."""
    code = (
        "import logging, structlog\n"
        "from opentelemetry import trace, metrics\n"
        "import observable_session\n"
        "assert not structlog.is_configured()\n"
        "assert logging.getLogger().handlers == []\n"
        "assert type(trace.get_tracer_provider()).__name__ == 'ProxyTracerProvider'\n"
        "assert type(metrics.get_meter_provider()).__name__ == '_ProxyMeterProvider'\n"
        "print('clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "clean"


def test_no_sdk_records_nothing_and_works(upstream: Upstream) -> None:
    """In a process with no SDK, a retried request works and gets no traceparent."""
    upstream.script("/f", Reply(503), Reply(200))
    code = (
        "import structlog, logging\n"
        "structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))\n"
        "from observable_session import Session\n"
        "from observable_session.telemetry._instruments import Telemetry\n"
        "assert Telemetry().instruments() is None\n"
        f"s = Session(base_url={upstream.url!r}, sleep=lambda s: None)\n"
        "print(s.get('/f').status_code)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "200"
    assert upstream.hits("/f") == 2
    assert all("traceparent" not in s.headers for s in upstream.seen)


def test_structlog_logger_name() -> None:
    """The session logs through the observable_session logger."""
    assert sc.LOGGER_NAME == "observable_session"
    assert structlog.get_logger(sc.LOGGER_NAME) is not None


def test_completed_event_for_a_failed_request(upstream: Upstream) -> None:
    """A 404 returned with raise_for_status=False still logs its completion, with error.type."""
    upstream.script("/nf", Reply(404))
    with capture_logs() as logs:
        with Session(base_url=upstream.url) as s:
            s.get("/nf", raise_for_status=False)
    done = [e for e in logs if e["event"] == sc.EVENT_REQUEST_COMPLETED]
    assert len(done) == 1 and done[0]["status_code"] == 404 and done[0]["error_type"] == "404"
