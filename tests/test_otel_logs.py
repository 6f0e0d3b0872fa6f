"""OpenTelemetry logs: no secret reaches an exported LogRecord, and trace ids stay intact.

A real SDK ``LoggerProvider`` with an in-memory exporter; a session whose key an upstream
echoes into its 401 body; urllib3 and requests at DEBUG; the application logging the key
itself (message, arguments, ``extra=``, an exception carrying it). Every exported record's
body, attributes and exception fields are searched for the key.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs import export as log_export
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

from observable_session import ApiHTTPError, Session
from observable_session.logs import configure_logging
from observable_session.otel_logs import RedactingStructlogProcessor, redacting_log_handler
from observable_session.telemetry import _semconv as sc
from tests.conftest import Echo, Otel, Reply, Upstream

KEY = "otel-logs-Secret_7Qz9x"
_InMemory: Any = (
    getattr(log_export, "InMemoryLogRecordExporter", None) or log_export.InMemoryLogExporter
)


class Logs:
    """A LoggerProvider whose records land in memory."""

    def __init__(self) -> None:
        self.exporter = _InMemory()
        self.provider = LoggerProvider()
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))

    def records(self) -> list[Any]:
        return [data.log_record for data in self.exporter.get_finished_logs()]


@pytest.fixture
def logs() -> Iterator[Logs]:
    """An in-memory LoggerProvider; structlog and the root logger restored afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield Logs()
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def _text(record: Any) -> str:
    """Everything an exporter would send of ``record``: body and every attribute."""
    return repr(record.body) + repr(dict(record.attributes or {}))


def _exercise(upstream: Upstream, otel: Otel) -> None:
    """Retries, an echoed key in a 401, and the application logging the key four ways."""
    upstream.script("/f", Reply(503), Reply(200))
    upstream.script("/me", Echo(401))
    with Session(
        base_url=upstream.url,
        auth_headers={"X-API-Key": KEY},
        sleep=lambda seconds: None,
        **otel.providers(),
    ) as s:
        s.get("/f", url_template="/f")
        try:
            s.get("/me")
        except ApiHTTPError as exc:
            logging.getLogger("app").error(
                "call failed with %s", KEY, extra={"api_key": KEY, "note": f"k={KEY}"}, exc_info=exc
            )
        try:
            raise RuntimeError(f"rejected X-API-Key={KEY}")
        except RuntimeError:
            structlog.get_logger("app").exception("boom", header=f"Bearer {KEY}", key=KEY)


def _assert_clean_and_correlated(logs: Logs, otel: Otel) -> list[Any]:
    records = logs.records()
    assert records
    for record in records:
        assert KEY not in _text(record), _text(record)
    ours = [r for r in records if r.body == sc.EVENT_ATTEMPT_FAILED]
    assert ours, [r.body for r in records]
    trace_ids = {s.context.trace_id for s in otel.spans()}
    assert all(r.trace_id in trace_ids and r.span_id for r in ours)
    return records


def test_stdlib_path_through_configure_logging(upstream: Upstream, otel: Otel, logs: Logs) -> None:
    """configure_logging(logger_provider=): structlog and foreign records export masked."""
    configure_logging("DEBUG", json=True, stream=io.StringIO(), logger_provider=logs.provider)
    _exercise(upstream, otel)
    records = _assert_clean_and_correlated(logs, otel)
    app = [r for r in records if str(r.body).startswith("call failed")]
    assert len(app) == 1
    attributes = dict(app[0].attributes)
    assert attributes["exception.type"] and "exception.stacktrace" in attributes
    assert attributes["api_key"] == "REDACTED"
    boom = [r for r in records if r.body == "boom"]
    assert len(boom) == 1 and "exception.stacktrace" in dict(boom[0].attributes)
    assert any("urllib3" in str(r.body) or "127.0.0.1" in str(r.body) for r in records)


def test_stdlib_path_unconfigured_structlog(upstream: Upstream, otel: Otel, logs: Logs) -> None:
    """With structlog unconfigured the library's events still reach the handler, masked."""
    structlog.reset_defaults()
    root = logging.getLogger()
    root.addHandler(redacting_log_handler(logs.provider))
    root.setLevel(logging.DEBUG)
    upstream.script("/f", Reply(503), Reply(200))
    with Session(
        base_url=upstream.url,
        auth_headers={"X-API-Key": KEY},
        sleep=lambda seconds: None,
        **otel.providers(),
    ) as s:
        s.get("/f", url_template="/f")
        logging.getLogger("app").warning("key %s", KEY, extra={"token": KEY})
    records = logs.records()
    events = [str(r.body).split()[0] for r in records if str(r.body).startswith("observable")]
    assert events == [sc.EVENT_ATTEMPT_FAILED, sc.EVENT_RETRY_SCHEDULED, sc.EVENT_REQUEST_COMPLETED]
    assert all(KEY not in _text(r) for r in records)
    failed = next(r for r in records if str(r.body).startswith(sc.EVENT_ATTEMPT_FAILED))
    assert dict(failed.attributes)["status_code"] == 503
    assert failed.trace_id in {s.context.trace_id for s in otel.spans()}


def test_structlog_path(upstream: Upstream, otel: Otel, logs: Logs) -> None:
    """RedactingStructlogProcessor in the application's own chain exports masked events."""
    pytest.importorskip(
        "opentelemetry.instrumentation.structlog",
        reason="opentelemetry-instrumentation-structlog (0.65b0+) is not installed",
    )
    lines = io.StringIO()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            RedactingStructlogProcessor(logs.provider),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(lines),
        cache_logger_on_first_use=False,
    )
    _exercise(upstream, otel)
    records = _assert_clean_and_correlated(logs, otel)
    boom = [r for r in records if r.body == "boom"]
    assert len(boom) == 1
    attributes = dict(boom[0].attributes)
    assert attributes["exception.type"] and "exception.stacktrace" in attributes
    assert attributes["key"] == "REDACTED"
    # The processor masks a copy: the rest of the chain still gets the original event.
    assert KEY in lines.getvalue()


def test_bare_instrumentation_processor_would_leak(logs: Logs) -> None:
    """Control: the instrumentation's processor alone exports the key (why the order matters)."""
    instrumentation = pytest.importorskip(
        "opentelemetry.instrumentation.structlog",
        reason="opentelemetry-instrumentation-structlog (0.65b0+) is not installed",
    )
    processor = instrumentation.StructlogProcessor(logger_provider=logs.provider)
    processor(None, "info", {"event": "call", "key": KEY, "level": "info"})
    assert any(KEY in _text(r) for r in logs.records())
