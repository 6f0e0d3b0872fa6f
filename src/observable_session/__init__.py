"""observable-session: a ``requests.Session`` whose every attempt is traced, measured and masked.

Importing the package configures nothing: no logging, no OpenTelemetry providers.
"""

from __future__ import annotations

from ._retry import RetryPolicy
from ._session import DEFAULT_TIMEOUT, Session
from ._version import __version__
from .errors import (
    ApiConnectionError,
    ApiConnectTimeout,
    ApiContentDecodingError,
    ApiHTTPError,
    ApiProxyError,
    ApiReadTimeout,
    ApiSSLError,
    ApiTimeout,
    ApiTooManyRedirects,
    AttemptRecord,
    CircuitOpenError,
    DeadlineExceeded,
    InvalidConfigError,
    InvalidURLError,
    RequestsApiError,
    WaitFailed,
    WaitTimeout,
)
from .logs import RedactingFilter, add_trace_context, configure_logging
from .policies import BreakerState, CircuitBreaker, RetryBudget
from .redaction import RedactingSpanExporter, Redactor, redact_event

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiConnectTimeout",
    "ApiConnectionError",
    "ApiContentDecodingError",
    "ApiHTTPError",
    "ApiProxyError",
    "ApiReadTimeout",
    "ApiSSLError",
    "ApiTimeout",
    "ApiTooManyRedirects",
    "AttemptRecord",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "DeadlineExceeded",
    "InvalidConfigError",
    "InvalidURLError",
    "RedactingFilter",
    "RedactingSpanExporter",
    "Redactor",
    "RequestsApiError",
    "RetryBudget",
    "RetryPolicy",
    "Session",
    "WaitFailed",
    "WaitTimeout",
    "__version__",
    "add_trace_context",
    "configure_logging",
    "redact_event",
]
