"""observable-session: a ``requests.Session`` whose every attempt is traced, measured and masked.

Importing the package configures nothing: no logging, no OpenTelemetry providers.
"""

from __future__ import annotations

from ._retry import RetryPolicy
from ._session import DEFAULT_TIMEOUT, Session
from ._version import __version__
from .errors import (
    ApiChunkedEncodingError,
    ApiConnectionError,
    ApiConnectTimeout,
    ApiContentDecodingError,
    ApiHTTPError,
    ApiInvalidHeader,
    ApiInvalidJSONError,
    ApiInvalidProxyURL,
    ApiInvalidSchema,
    ApiJSONDecodeError,
    ApiMissingSchema,
    ApiProxyError,
    ApiReadTimeout,
    ApiRetryError,
    ApiSSLError,
    ApiStreamConsumedError,
    ApiTimeout,
    ApiTooManyRedirects,
    ApiUnrewindableBodyError,
    ApiURLRequired,
    AttemptRecord,
    CircuitOpenError,
    DeadlineExceeded,
    InvalidConfigError,
    InvalidHeaderError,
    InvalidURLError,
    RequestsApiError,
    WaitFailed,
    WaitTimeout,
    counterpart,
)
from .logs import RedactingFilter, add_trace_context, configure_logging
from .policies import BreakerState, CircuitBreaker, RetryBudget
from .redaction import RedactingSpanExporter, Redactor, redact_event

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiChunkedEncodingError",
    "ApiConnectTimeout",
    "ApiConnectionError",
    "ApiContentDecodingError",
    "ApiHTTPError",
    "ApiInvalidHeader",
    "ApiInvalidJSONError",
    "ApiInvalidProxyURL",
    "ApiInvalidSchema",
    "ApiJSONDecodeError",
    "ApiMissingSchema",
    "ApiProxyError",
    "ApiReadTimeout",
    "ApiRetryError",
    "ApiSSLError",
    "ApiStreamConsumedError",
    "ApiTimeout",
    "ApiTooManyRedirects",
    "ApiURLRequired",
    "ApiUnrewindableBodyError",
    "AttemptRecord",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "DeadlineExceeded",
    "InvalidConfigError",
    "InvalidHeaderError",
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
    "counterpart",
    "redact_event",
]
