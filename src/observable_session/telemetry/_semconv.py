"""Every telemetry name this library emits, defined once.

The attribute and metric names of the OpenTelemetry HTTP client semantic conventions
(stable since v1.23) are spelled out here rather than imported from
``opentelemetry-semantic-conventions``, so that the runtime dependencies stay at
``opentelemetry-api``; ``tests/test_semconv.py`` checks that each one equals the
package's constant. Names under ``observable_session.`` are this library's own.
"""

from __future__ import annotations

from typing import Final

from ..redaction._names import REDACTED as REDACTED  # redaction stands below telemetry

SCOPE_NAME: Final = "observable_session"

# -- attributes from the HTTP and URL conventions ------------------------------------
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_REQUEST_METHOD_ORIGINAL: Final = "http.request.method_original"
HTTP_REQUEST_RESEND_COUNT: Final = "http.request.resend_count"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
URL_FULL: Final = "url.full"
URL_SCHEME: Final = "url.scheme"
URL_TEMPLATE: Final = "url.template"
NETWORK_PROTOCOL_VERSION: Final = "network.protocol.version"
ERROR_TYPE: Final = "error.type"

# -- this library's own attributes and events ----------------------------------------
ATTEMPTS: Final = "observable_session.attempts"
RETRY_EVENT: Final = "observable_session.retry"
RETRY_REASON: Final = "observable_session.retry.reason"
RETRY_BACKOFF: Final = "observable_session.retry.backoff"
RETRY_AFTER: Final = "observable_session.retry.retry_after"
RETRIES_EXHAUSTED: Final = "observable_session.retries_exhausted"

# -- metrics ---------------------------------------------------------------------------
METRIC_CLIENT_REQUEST_DURATION: Final = "http.client.request.duration"
METRIC_CLIENT_ACTIVE_REQUESTS: Final = "http.client.active_requests"
METRIC_REQUEST_DURATION: Final = "observable_session.request.duration"
METRIC_RETRIES: Final = "observable_session.retries"
METRIC_RETRY_BACKOFF: Final = "observable_session.retry.backoff"

# The conventions' advised buckets for HTTP durations in seconds.
DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

# -- log events ----------------------------------------------------------------------
LOGGER_NAME: Final = "observable_session"
EVENT_ATTEMPT_FAILED: Final = "observable_session.attempt.failed"
EVENT_RETRY_SCHEDULED: Final = "observable_session.retry.scheduled"
EVENT_RETRIES_EXHAUSTED: Final = "observable_session.retries.exhausted"
EVENT_REQUEST_COMPLETED: Final = "observable_session.request.completed"
EVENT_TELEMETRY_FAILED: Final = "observable_session.telemetry.failed"
EVENT_TELEMETRY_DEGRADED: Final = "observable_session.telemetry.degraded"
EVENT_LOGGING_FAILED: Final = "observable_session.logging.failed"

# -- waiting for a job (Session.wait) -----------------------------------------------
WAIT_SPAN_NAME: Final = "WAIT"
WAIT_POLLS: Final = "observable_session.wait.polls"
WAIT_OUTCOME: Final = "observable_session.wait.outcome"
WAIT_POLL_EVENT: Final = "observable_session.wait.poll_scheduled"
WAIT_INTERVAL: Final = "observable_session.wait.interval"
WAIT_RETRY_AFTER: Final = "observable_session.wait.retry_after"
METRIC_WAIT_DURATION: Final = "observable_session.wait.duration"
METRIC_WAIT_POLLS: Final = "observable_session.wait.polls"
EVENT_WAIT_COMPLETED: Final = "observable_session.wait.completed"
EVENT_WAIT_FAILED: Final = "observable_session.wait.failed"
# Waits last seconds to hours: wider buckets than one HTTP request's.
WAIT_DURATION_BUCKETS: Final = (
    0.1,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
WAIT_POLLS_BUCKETS: Final = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)

# -- overload protection (retry budget, circuit breaker, idempotency keys) -------------
RETRY_DENIED_EVENT: Final = "observable_session.retry.denied"
RETRY_DENIED_BY: Final = "observable_session.retry.denied_by"
BREAKER_REJECTED_EVENT: Final = "observable_session.circuit_breaker.rejected"
BREAKER_FROM_STATE: Final = "observable_session.circuit_breaker.from_state"
BREAKER_TO_STATE: Final = "observable_session.circuit_breaker.to_state"
IDEMPOTENCY_KEY: Final = "observable_session.idempotency_key"
METRIC_RETRIES_DENIED: Final = "observable_session.retry.denied"
METRIC_BREAKER_STATE: Final = "observable_session.circuit_breaker.state"
METRIC_BREAKER_TRANSITIONS: Final = "observable_session.circuit_breaker.transitions"
METRIC_BREAKER_REJECTED: Final = "observable_session.circuit_breaker.rejected"
