"""Our spelled-out telemetry names equal opentelemetry-semantic-conventions' constants."""

from __future__ import annotations

import pytest
from opentelemetry.semconv._incubating.attributes import url_attributes as incubating_url
from opentelemetry.semconv._incubating.metrics import http_metrics as incubating_http_metrics
from opentelemetry.semconv.attributes import (
    error_attributes,
    http_attributes,
    network_attributes,
    server_attributes,
    url_attributes,
)
from opentelemetry.semconv.metrics import http_metrics

import observable_session
from observable_session.telemetry import _semconv as sc

PAIRS = [
    (sc.HTTP_REQUEST_METHOD, http_attributes.HTTP_REQUEST_METHOD),
    (sc.HTTP_REQUEST_METHOD_ORIGINAL, http_attributes.HTTP_REQUEST_METHOD_ORIGINAL),
    (sc.HTTP_REQUEST_RESEND_COUNT, http_attributes.HTTP_REQUEST_RESEND_COUNT),
    (sc.HTTP_RESPONSE_STATUS_CODE, http_attributes.HTTP_RESPONSE_STATUS_CODE),
    (sc.SERVER_ADDRESS, server_attributes.SERVER_ADDRESS),
    (sc.SERVER_PORT, server_attributes.SERVER_PORT),
    (sc.URL_FULL, url_attributes.URL_FULL),
    (sc.URL_SCHEME, url_attributes.URL_SCHEME),
    (sc.URL_TEMPLATE, incubating_url.URL_TEMPLATE),
    (sc.NETWORK_PROTOCOL_VERSION, network_attributes.NETWORK_PROTOCOL_VERSION),
    (sc.ERROR_TYPE, error_attributes.ERROR_TYPE),
    (sc.METRIC_CLIENT_REQUEST_DURATION, http_metrics.HTTP_CLIENT_REQUEST_DURATION),
    (sc.METRIC_CLIENT_ACTIVE_REQUESTS, incubating_http_metrics.HTTP_CLIENT_ACTIVE_REQUESTS),
]


@pytest.mark.parametrize(("ours", "theirs"), PAIRS)
def test_name_matches_semantic_conventions(ours: str, theirs: str) -> None:
    """Each convention name we emit is the package's constant."""
    assert ours == theirs


def test_own_names_are_namespaced() -> None:
    """Names the conventions do not define live under observable_session."""
    own = [
        sc.ATTEMPTS,
        sc.RETRY_EVENT,
        sc.RETRY_REASON,
        sc.RETRY_BACKOFF,
        sc.RETRY_AFTER,
        sc.RETRIES_EXHAUSTED,
        sc.METRIC_REQUEST_DURATION,
        sc.METRIC_RETRIES,
        sc.METRIC_RETRY_BACKOFF,
        sc.RETRY_DENIED_EVENT,
        sc.RETRY_DENIED_BY,
        sc.BREAKER_REJECTED_EVENT,
        sc.BREAKER_FROM_STATE,
        sc.BREAKER_TO_STATE,
        sc.IDEMPOTENCY_KEY,
        sc.METRIC_RETRIES_DENIED,
        sc.METRIC_BREAKER_STATE,
        sc.METRIC_BREAKER_TRANSITIONS,
        sc.METRIC_BREAKER_REJECTED,
    ]
    assert all(name.startswith("observable_session.") for name in own)


def test_advised_buckets() -> None:
    """Duration buckets are the conventions' advice, 5 ms to 10 s."""
    assert sc.DURATION_BUCKETS[0] == 0.005 and sc.DURATION_BUCKETS[-1] == 10.0
    assert list(sc.DURATION_BUCKETS) == sorted(sc.DURATION_BUCKETS)


def test_public_api_is_sorted_and_resolves() -> None:
    """__all__ is sorted and every name in it exists."""
    names = observable_session.__all__

    def isort_style(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert names == sorted(names, key=isort_style)
    assert all(hasattr(observable_session, n) for n in names)
