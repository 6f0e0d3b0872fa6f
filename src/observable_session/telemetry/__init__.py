"""The telemetry contract: every span, attribute, metric and log event name this library emits.

The names are constants in :mod:`observable_session.telemetry._semconv`, re-exported here so
that applications, dashboards and tests refer to them instead of spelling them again.
"""

from __future__ import annotations

from ._semconv import (
    ATTEMPTS,
    DURATION_BUCKETS,
    EVENT_ATTEMPT_FAILED,
    EVENT_REQUEST_COMPLETED,
    EVENT_RETRIES_EXHAUSTED,
    EVENT_RETRY_SCHEDULED,
    LOGGER_NAME,
    METRIC_CLIENT_ACTIVE_REQUESTS,
    METRIC_CLIENT_REQUEST_DURATION,
    METRIC_REQUEST_DURATION,
    METRIC_RETRIES,
    METRIC_RETRY_BACKOFF,
    RETRIES_EXHAUSTED,
    RETRY_AFTER,
    RETRY_BACKOFF,
    RETRY_EVENT,
    RETRY_REASON,
    SCOPE_NAME,
)

__all__ = [
    "ATTEMPTS",
    "DURATION_BUCKETS",
    "EVENT_ATTEMPT_FAILED",
    "EVENT_REQUEST_COMPLETED",
    "EVENT_RETRIES_EXHAUSTED",
    "EVENT_RETRY_SCHEDULED",
    "LOGGER_NAME",
    "METRIC_CLIENT_ACTIVE_REQUESTS",
    "METRIC_CLIENT_REQUEST_DURATION",
    "METRIC_REQUEST_DURATION",
    "METRIC_RETRIES",
    "METRIC_RETRY_BACKOFF",
    "RETRIES_EXHAUSTED",
    "RETRY_AFTER",
    "RETRY_BACKOFF",
    "RETRY_EVENT",
    "RETRY_REASON",
    "SCOPE_NAME",
]
