"""Where the library's own log events go: structlog once configured, stdlib logging before.

A library must be quiet until the application configures logging, as requests and urllib3
are. structlog's *unconfigured* default prints every level to stdout, so while
``structlog.is_configured()`` is false the session's events go to the stdlib logger
``observable_session`` instead: with no handler installed anywhere, Python's last-resort
handler shows only WARNING and above, on stderr, and nothing reaches stdout. Once the
application configures structlog (``configure_logging()`` or its own set-up), events go
through structlog as before.

An event is only built when its level is enabled for that logger: the per-request debug
event costs a level check, not a dictionary, a bound logger and a processor chain.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Final

import structlog

from ..redaction import DEFAULT_REDACTOR
from ._semconv import EVENT_LOGGING_FAILED, LOGGER_NAME

__all__ = ["emit", "enabled", "warn"]

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_stdlib = logging.getLogger(LOGGER_NAME)
_structlog = structlog.get_logger(LOGGER_NAME)

# A filtering bound logger's methods for levels below its own are this one no-op function.
_FILTERED: Final = structlog.make_filtering_bound_logger(logging.CRITICAL).debug


def enabled(level: str) -> bool:
    """Whether an event at ``level`` would reach the logger it is meant for."""
    if not structlog.is_configured():
        return _stdlib.isEnabledFor(_LEVELS[level])
    config = structlog.get_config()
    if getattr(config["wrapper_class"], level, None) is _FILTERED:
        return False
    # structlog's own level filter for stdlib loggers asks the stdlib logger: ask it first.
    if isinstance(config["logger_factory"], structlog.stdlib.LoggerFactory) and (
        structlog.stdlib.filter_by_level in config["processors"]
    ):
        return _stdlib.isEnabledFor(_LEVELS[level])
    return True


def emit(level: str, event: str, fields: dict[str, Any]) -> None:
    """Log ``event`` with ``fields`` at ``level`` (callers check :func:`enabled` first).

    On the stdlib path the message is ``event key=value ...`` and the fields are also the
    record's attributes (``extra=``), so a handler such as OpenTelemetry's
    ``LoggingHandler`` exports them as log attributes.
    """
    try:
        if structlog.is_configured():
            getattr(_structlog, level)(event, **fields)
            return
        rendered = " ".join(f"{key}={value}" for key, value in fields.items())
        _stdlib.log(_LEVELS[level], "%s %s", event, rendered, extra=fields)
    except Exception as exc:  # a raising processor or handler must not break the request
        _logging_failed(exc)


_FAILED_TYPES: set[str] = set()


def _logging_failed(exc: Exception) -> None:
    """Say once per error type, straight to the stdlib logger, that an event was lost."""
    kind = type(exc).__name__
    if kind in _FAILED_TYPES:
        return
    _FAILED_TYPES.add(kind)
    with contextlib.suppress(Exception):
        _stdlib.warning(
            "%s error_type=%s cause=%s",
            EVENT_LOGGING_FAILED,
            kind,
            DEFAULT_REDACTOR.mask(f"{kind}: {exc}"),
        )


def warn(event: str, **fields: Any) -> None:
    """Log a warning about the library's own telemetry; logging errors are swallowed.

    Callers keep it to once per cause: a broken set-up must be said, not repeated per request.
    """
    with contextlib.suppress(Exception):  # a broken logging set-up must not break a request
        emit("warning", event, fields)
