"""configure_logging, the stdlib bridge, the trace-context processor and RedactingFilter."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import structlog
from opentelemetry.sdk.trace import TracerProvider

from observable_session.logs import RedactingFilter, add_trace_context, configure_logging
from observable_session.redaction import DEFAULT_REDACTOR, REDACTED, MaskedException

TOKEN = "L0gs-Secret_Vq7"


class Owner:
    """Owns the test secret in DEFAULT_REDACTOR."""


@pytest.fixture(autouse=True)
def secret() -> Iterator[None]:
    """``Bearer TOKEN`` is registered for the duration of each test."""
    owner = Owner()
    DEFAULT_REDACTOR.set_secrets(owner, [f"Bearer {TOKEN}"])
    yield
    DEFAULT_REDACTOR.forget(owner)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and structlog back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    saved = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**saved)


@pytest.fixture
def json_lines(restore_logging: None) -> Iterator[io.StringIO]:
    """configure_logging(DEBUG, JSON) writing into a buffer."""
    buffer = io.StringIO()
    configure_logging("DEBUG", json=True, stream=buffer)
    yield buffer


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


class _OkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """A loopback server answering 200 to every GET."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _OkHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_structlog_event_is_rendered_masked(json_lines: io.StringIO) -> None:
    """A structlog event's sensitive keys and secret values come out REDACTED in JSON."""
    structlog.get_logger("app").info(f"using {TOKEN}", headers={"Authorization": "x"})
    line = _lines(json_lines)[0]
    assert (line["event"], line["headers"]) == (f"using {REDACTED}", {"Authorization": REDACTED})


def test_lines_carry_level_logger_and_iso_timestamp(json_lines: io.StringIO) -> None:
    """Each line has level, logger name and an ISO-8601 UTC timestamp."""
    structlog.get_logger("app").warning("x")
    line = _lines(json_lines)[0]
    assert (line["level"], line["logger"]) == ("warning", "app")
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]


def test_foreign_stdlib_record_goes_through_redaction(json_lines: io.StringIO) -> None:
    """A plain ``logging`` record, its args and extras included, is masked."""
    logging.getLogger("legacy").warning("token %s", TOKEN, extra={"api_key": "k", "n": TOKEN})
    line = _lines(json_lines)[0]
    assert (line["event"], line["api_key"], line["n"]) == (f"token {REDACTED}", REDACTED, REDACTED)


def test_urllib3_debug_lines_are_masked(json_lines: io.StringIO, server: str) -> None:
    """urllib3's DEBUG request line, URL query included, is masked."""
    requests.get(f"{server}/jobs?q={TOKEN}&access_token=abc", timeout=5)
    text = json_lines.getvalue()
    assert "urllib3.connectionpool" in text and TOKEN not in text and "abc" not in text


def test_exceptions_are_rendered_without_locals(json_lines: io.StringIO) -> None:
    """A traceback shows frames but no local variables, and no secret in the chain."""

    def fail() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        raise RuntimeError(f"rejected {headers}")

    try:
        fail()
    except RuntimeError:
        structlog.get_logger("app").exception("failed")
    text = json_lines.getvalue()
    assert "fail" in text and TOKEN not in text and '"locals": {' not in text


def test_stdlib_exception_chain_is_masked(json_lines: io.StringIO) -> None:
    """A foreign record's exc_info, cause included, is rendered masked."""
    try:
        try:
            raise KeyError(TOKEN)
        except KeyError as exc:
            raise ValueError(f"Bearer {TOKEN}") from exc
    except ValueError:
        logging.getLogger("legacy").exception("boom")
    assert TOKEN not in json_lines.getvalue()


def test_trace_and_span_ids_come_from_the_current_span(json_lines: io.StringIO) -> None:
    """Inside a span, lines carry its trace_id and span_id as hex."""
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("op") as span:
        structlog.get_logger("app").info("inside")
    context = span.get_span_context()
    line = _lines(json_lines)[0]
    assert (line["trace_id"], line["span_id"]) == (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
    )


def test_add_trace_context_adds_nothing_outside_a_span() -> None:
    """Without a current span, the event is unchanged."""
    assert add_trace_context(None, "info", {"event": "x"}) == {"event": "x"}


def test_level_filters_structlog_and_stdlib(restore_logging: None) -> None:
    """Below the configured level nothing is written."""
    buffer = io.StringIO()
    configure_logging("WARNING", json=True, stream=buffer)
    structlog.get_logger("app").info("quiet")
    logging.getLogger("legacy").info("quiet")
    assert buffer.getvalue() == ""


def test_console_renderer_is_masked(restore_logging: None) -> None:
    """With json=False, the console line is masked too."""
    buffer = io.StringIO()
    configure_logging("INFO", json=False, stream=buffer)
    structlog.get_logger("app").info("hello", value=TOKEN)
    assert "hello" in buffer.getvalue() and TOKEN not in buffer.getvalue()


def test_a_second_call_replaces_the_handler(restore_logging: None) -> None:
    """Calling configure_logging twice leaves one handler of ours on the root logger."""
    first = configure_logging("INFO", json=True, stream=io.StringIO())
    second = configure_logging("INFO", json=True, stream=io.StringIO())
    handlers = logging.getLogger().handlers
    assert second in handlers and first not in handlers


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_filter_masks_the_formatted_message() -> None:
    """The message is formatted with its args, then masked."""
    record = _record("auth %s", f"Bearer {TOKEN}")
    RedactingFilter().filter(record)
    assert (record.getMessage(), record.args) == (f"auth {REDACTED}", ())


def test_filter_masks_extras_by_name_and_value() -> None:
    """``extra=`` attributes are redacted by name and masked by value."""
    record = _record("x", password="p", note=TOKEN)
    RedactingFilter().filter(record)
    assert (record.password, record.note) == (REDACTED, REDACTED)  # type: ignore[attr-defined]


def test_filter_replaces_exc_info_with_a_masked_copy() -> None:
    """exc_info becomes a masked copy; the original exception is untouched."""
    exc = ValueError(TOKEN)
    record = _record("x")
    record.exc_info = (ValueError, exc, None)
    RedactingFilter().filter(record)
    assert record.exc_info is not None and isinstance(record.exc_info[1], MaskedException)
    assert str(record.exc_info[1]) == f"ValueError: {REDACTED}" and str(exc) == TOKEN


def test_filter_never_drops_a_record() -> None:
    """The filter always lets the record through."""
    assert RedactingFilter().filter(_record("plain"))


def test_filter_protects_a_plain_handler() -> None:
    """A plain logging.Handler with the filter writes masked text."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("filtered")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError(TOKEN)
        except RuntimeError:
            logger.error("failed with %s", TOKEN, exc_info=True)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert "failed with" in buffer.getvalue() and TOKEN not in buffer.getvalue()
