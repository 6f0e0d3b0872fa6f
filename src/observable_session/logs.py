"""Opt-in logging for production: one structlog chain for every logger, redacted.

Importing this module configures nothing. :func:`configure_logging` sets up, on request:

- structlog: context variables, a level filter, logger name and level, redaction,
  ISO timestamps (UTC), ``trace_id``/``span_id`` from the current OpenTelemetry span;
- a stdlib handler whose :class:`structlog.stdlib.ProcessorFormatter` sends records from
  foreign loggers (urllib3, requests, the application's own ``logging`` calls) through the
  same redaction, so both kinds of line come out alike;
- exceptions rendered without local variables (a frame's locals are where credentials sit:
  structlog's rich and dict tracebacks show them by default), and redacted once more right
  before the JSON or console renderer.

For handlers outside structlog, attach a :class:`RedactingFilter`; to export logs as
OpenTelemetry LogRecords pass ``logger_provider=`` (or see :mod:`observable_session.otel_logs`).

Out of reach: ``http.client.HTTPConnection.debuglevel > 0`` makes ``http.client`` ``print()``
every request line and header (``Authorization`` included) straight to stdout, bypassing
``logging`` altogether; no filter or processor can see it. Leave it at 0 wherever real
credentials are used.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any, Final

import structlog
from opentelemetry import trace

from .redaction import DEFAULT_REDACTOR, REDACTED, Redactor, redact_event

__all__ = ["RedactingFilter", "add_trace_context", "configure_logging"]

# Marks the handler configure_logging installed, so a second call replaces it.
_HANDLER_MARK: Final = "_observable_session_handler"
_STANDARD_RECORD_ATTRS: Final = frozenset(
    {*vars(logging.makeLogRecord({})), "message", "asctime", "taskName"}
)


def add_trace_context(logger: object, method_name: str, event_dict: Any) -> Any:
    """A structlog processor adding ``trace_id`` and ``span_id`` of the current span (hex).

    Nothing is added outside a recording span; values already in the event are kept.
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def configure_logging(
    level: int | str = "INFO",
    *,
    json: bool | None = None,
    stream: IO[str] | None = None,
    logger_provider: Any = None,
) -> logging.Handler:
    """Route structlog and stdlib logging through one redacted chain to ``stream``.

    Args:
        level: the root logger's level (``"DEBUG"`` also shows urllib3's request lines,
            masked).
        json: JSON lines if true, a console renderer if false; by default JSON unless
            ``stream`` is a terminal.
        stream: where lines go; ``sys.stderr`` by default.
        logger_provider: an OpenTelemetry SDK ``LoggerProvider``: every line (structlog
            events and foreign records alike) is also exported as a LogRecord, masked, by
            :func:`observable_session.otel_logs.redacting_log_handler` on the root logger.

    Returns:
        The handler installed on the root logger (a second call replaces it).
    """
    stream = sys.stderr if stream is None else stream
    as_json = not _isatty(stream) if json is None else json
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            redact_event,  # records handed to stdlib handlers already carry masked data
            timestamper,
            add_trace_context,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later reconfiguration (tests, an application) must reach every logger.
        cache_logger_on_first_use=False,
    )
    renderer: Any
    if as_json:
        renderer = structlog.processors.JSONRenderer()
        render_exception: list[Any] = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=_isatty(stream), exception_formatter=structlog.dev.plain_traceback
        )
        render_exception = []
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.ExtraAdder(),
            redact_event,
            timestamper,
            add_trace_context,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *render_exception,
            redact_event,  # the last word before any renderer, whatever came earlier
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    if logger_provider is not None:
        from .otel_logs import redacting_log_handler

        otel = redacting_log_handler(logger_provider)
        setattr(otel, _HANDLER_MARK, True)
        root.addHandler(otel)
    root.setLevel(level)
    return handler


class RedactingFilter(logging.Filter):
    """A ``logging.Filter`` that masks a record in place for handlers outside structlog.

    The message (formatted with its args), the exception (replaced by a masked copy of it
    and its chain), any pre-rendered ``exc_text``/``stack_info`` and every ``extra=``
    attribute (by name and by value) are masked. Attach it to the handler:
    ``handler.addFilter(RedactingFilter())``. It never drops a record.
    """

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self._redactor = DEFAULT_REDACTOR if redactor is None else redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask ``record``; always returns ``True``."""
        redactor = self._redactor
        if isinstance(record.msg, dict):  # a structlog event handed over by wrap_for_formatter
            record.msg = redactor.scrub_mapping(record.msg)
        else:
            try:
                message = record.getMessage()
            except Exception:  # a broken format string: keep what can be shown
                message = f"{record.msg!s} {record.args!r}"
            record.msg = redactor.mask(message)
            record.args = ()
        if record.exc_info and record.exc_info[1] is not None:
            copy = redactor.sanitize_exception(record.exc_info[1])
            record.exc_info = (type(copy), copy, copy.__traceback__)
        if record.exc_text:
            record.exc_text = redactor.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.mask(record.stack_info)
        for key, value in list(vars(record).items()):
            if key in _STANDARD_RECORD_ATTRS or key.startswith("_"):
                continue
            masked = REDACTED if redactor.is_sensitive_name(key) else redactor.scrub(value)
            setattr(record, key, masked)
        return True
