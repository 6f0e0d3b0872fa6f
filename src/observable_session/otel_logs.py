"""Shipping logs as OpenTelemetry LogRecords, redacted before they leave the process.

Two supported paths, both of which put redaction *before* the OpenTelemetry step:

- stdlib ``logging`` (``opentelemetry-instrumentation-logging``'s ``LoggingHandler``, or the
  SDK's on older releases): :func:`redacting_log_handler` wraps it so that each record is
  copied, masked (message, arguments, ``extra=`` attributes, exception) and only then
  translated. With :func:`~observable_session.logs.configure_logging` pass
  ``logger_provider=`` instead: structlog events and foreign records (urllib3, requests, the
  application's ``logging`` calls) all reach the root logger, so one handler exports both.
- structlog's own chain (``opentelemetry-instrumentation-structlog``, 0.65b0+):
  :class:`RedactingStructlogProcessor` redacts a copy of the event and hands it to the
  instrumentation's ``StructlogProcessor``, wherever it sits in the chain.

The order is easy to get wrong with the instrumentors alone: ``StructlogInstrumentor``
inserts its processor before the *last* one, which is after ``redact_event`` only if that
runs earlier in the chain, and ``LoggingInstrumentor`` adds an unfiltered handler to the root
logger unless told not to (``enable_log_auto_instrumentation=False``). The helpers here do
not depend on position. Nothing is imported from the SDK or the instrumentations until a
helper is called.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any, Final

from .logs import RedactingFilter
from .redaction import DEFAULT_REDACTOR, EventRedactor, Redactor

__all__ = ["RedactingStructlogProcessor", "redacting_log_handler"]

# Keys of a structlog event that are not attributes of the LogRecord it becomes.
_EVENT_META: Final = frozenset(
    {"event", "level", "log_level", "timestamp", "exc_info", "_record", "_from_structlog"}
    | {"_logger", "_name"}
)
_RECORD_ATTRS: Final = frozenset({*vars(logging.makeLogRecord({})), "message", "asctime"})
_PRIMITIVES: Final = (str, bool, int, float)


def _otel_logging_handler(logger_provider: Any, level: int) -> logging.Handler:
    """The supported OpenTelemetry ``LoggingHandler`` of the installed packages."""
    # opentelemetry-instrumentation-logging's handler first (its current home; the SDK's is
    # deprecated there), the SDK's on releases that have only that one.
    for module in ("opentelemetry.instrumentation.logging.handler", "opentelemetry.sdk._logs"):
        try:
            handler_class = importlib.import_module(module).LoggingHandler
            break
        except (ImportError, AttributeError):
            continue
    else:
        raise ImportError(
            "redacting_log_handler needs opentelemetry-sdk (and preferably "
            "opentelemetry-instrumentation-logging): pip install 'observable-session[sdk]'"
        )
    handler: logging.Handler = handler_class(level=level, logger_provider=logger_provider)
    return handler


class _RedactingHandler(logging.Handler):
    """Masks a copy of each record, then hands it to the OpenTelemetry handler it wraps.

    The copy keeps other handlers' records untouched (a JSON formatter still gets its
    structlog event dict). A structlog event (``configure_logging``'s bridge puts the
    event dict in ``record.msg``) becomes body ``event`` and one attribute per field.
    """

    def __init__(self, inner: logging.Handler, redactor: Redactor, level: int) -> None:
        super().__init__(level)
        self.inner = inner
        self._filter = RedactingFilter(redactor)

    def emit(self, record: logging.LogRecord) -> None:
        """Copy, translate a structlog event, mask, export."""
        if record.name.startswith("opentelemetry"):
            return  # the SDK's and exporters' own records: exporting them would feed back
        try:
            copy = logging.makeLogRecord(vars(record))
            if isinstance(copy.msg, dict):
                _from_structlog(copy, copy.msg)
            self._filter.filter(copy)
            self.inner.handle(copy)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Flush the wrapped handler (and so its logger provider)."""
        self.inner.flush()

    def close(self) -> None:
        """Close the wrapped handler too."""
        self.inner.close()
        super().close()


def _from_structlog(record: logging.LogRecord, event: dict[str, Any]) -> None:
    """Turn a record carrying a structlog event dict into message + attributes."""
    record.msg = str(event.get("event", ""))
    record.args = ()
    exc_info = event.get("exc_info")
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[0] is not None:
            record.exc_info = exc_info
    for key, value in event.items():
        if key in _EVENT_META or key in _RECORD_ATTRS or not isinstance(key, str):
            continue
        if value is None:
            continue
        setattr(record, key, value if isinstance(value, _PRIMITIVES) else str(value))


def redacting_log_handler(
    logger_provider: Any = None, *, level: int = logging.NOTSET, redactor: Redactor | None = None
) -> logging.Handler:
    """An OpenTelemetry logging handler that only ever exports masked records.

    Args:
        logger_provider: an SDK ``LoggerProvider``; the global one by default.
        level: the handler's level.
        redactor: the redactor to mask with; :data:`~observable_session.redaction.DEFAULT_REDACTOR`
            (every live session's auth values) by default.

    Add it to the root logger (``logging.getLogger().addHandler(...)``), or let
    ``configure_logging(logger_provider=...)`` do so. Trace correlation comes from the
    context current when the record is logged, as with the wrapped handler.
    """
    inner = _otel_logging_handler(logger_provider, logging.NOTSET)
    return _RedactingHandler(inner, DEFAULT_REDACTOR if redactor is None else redactor, level)


class RedactingStructlogProcessor:
    """A structlog processor exporting each event as an OpenTelemetry LogRecord, masked.

    It masks a *copy* of the event (by key, by value, ``exc_info`` included, as
    ``redact_event`` does) and hands that to
    ``opentelemetry.instrumentation.structlog.StructlogProcessor``; the event dict itself
    goes on unchanged to the next processor. Put it anywhere before the renderer, in place
    of ``StructlogInstrumentor().instrument()``.
    """

    __slots__ = ("_inner", "_redact")

    def __init__(self, logger_provider: Any = None, redactor: Redactor | None = None) -> None:
        try:
            from opentelemetry.instrumentation.structlog import StructlogProcessor
        except ImportError:
            raise ImportError(
                "RedactingStructlogProcessor needs opentelemetry-instrumentation-structlog "
                "(0.65b0 or later): pip install opentelemetry-instrumentation-structlog"
            ) from None
        self._inner = StructlogProcessor(logger_provider=logger_provider)  # type: ignore[no-untyped-call,unused-ignore]
        self._redact = EventRedactor(redactor)

    def __call__(self, logger: object, method_name: str, event_dict: Any) -> Any:
        """Export a masked copy of ``event_dict``; return ``event_dict`` as it was."""
        self._inner(logger, method_name, self._redact(logger, method_name, dict(event_dict)))
        return event_dict
