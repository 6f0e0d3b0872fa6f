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
    ApiHTTPError,
    ApiReadTimeout,
    ApiTimeout,
    AttemptRecord,
    DeadlineExceeded,
    InvalidConfigError,
    InvalidURLError,
    RequestsApiError,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiConnectTimeout",
    "ApiConnectionError",
    "ApiHTTPError",
    "ApiReadTimeout",
    "ApiTimeout",
    "AttemptRecord",
    "DeadlineExceeded",
    "InvalidConfigError",
    "InvalidURLError",
    "RequestsApiError",
    "RetryPolicy",
    "Session",
    "__version__",
]
