"""The retry policy: classification, budgets, backoff and Retry-After."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from observable_session import InvalidConfigError, RetryPolicy
from observable_session._retry import classify_error


def response(status: int, **headers: str) -> requests.Response:
    """A bare response with a status and headers."""
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers)
    return r


def test_seed_defaults() -> None:
    """The defaults are the seed's: 2 retries, 1 connect retry, factor 0.5."""
    policy = RetryPolicy()
    assert (policy.total, policy.connect, policy.backoff_factor) == (2, 1, 0.5)
    assert policy.status_forcelist == {500, 502, 503, 504, 520, 522, 524}


def test_backoff_doubles_from_the_factor() -> None:
    """backoff_factor * 2**(n-1): 0.5, 1, 2, ..."""
    policy = RetryPolicy(backoff_factor=0.5)
    assert [policy.backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_backoff_is_capped() -> None:
    """A computed backoff never exceeds backoff_max."""
    assert RetryPolicy(backoff_factor=10, backoff_max=15).backoff(5) == 15


def test_jitter_adds_at_most_its_bound() -> None:
    """Jitter adds between 0 and backoff_jitter seconds."""
    policy = RetryPolicy(backoff_factor=1, backoff_jitter=0.5)
    values = [policy.backoff(1) for _ in range(50)]
    assert all(1.0 <= v <= 1.5 for v in values)
    assert len(set(values)) > 1


@pytest.mark.parametrize("bad", [None, -1, 1.5, True, "2"])
def test_bad_retries_total_is_refused(bad: object) -> None:
    """retries_total must be an int >= 0; None is refused (the seed recursed forever)."""
    with pytest.raises(InvalidConfigError, match="retries_total"):
        RetryPolicy(total=bad)  # type: ignore[arg-type]


def test_policy_is_immutable() -> None:
    """The policy is a frozen value."""
    with pytest.raises(AttributeError):
        RetryPolicy().total = 5  # type: ignore[misc]


def test_status_in_forcelist_is_retried_with_backoff() -> None:
    """A 503 without Retry-After is retried after the computed backoff."""
    policy = RetryPolicy()
    d = policy.decide(policy.start(), "GET", response=response(503))
    assert d.retry is not None and d.backoff == 0.5 and not d.retry_after


def test_increment_returns_a_new_retry_with_history() -> None:
    """Deciding does not mutate the counters it was given."""
    policy = RetryPolicy()
    start = policy.start()
    d = policy.decide(start, "GET", response=response(500))
    assert d.retry is not start and len(d.retry.history) == 1 and not start.history


def test_retry_after_seconds_are_honoured() -> None:
    """Retry-After: 3 on a 429 sets the backoff to 3 s."""
    policy = RetryPolicy()
    d = policy.decide(policy.start(), "GET", response=response(429, **{"Retry-After": "3"}))
    assert d.retry is not None and d.backoff == 3 and d.retry_after


def test_retry_after_http_date_is_honoured() -> None:
    """Retry-After as an HTTP date gives the seconds until then."""
    policy = RetryPolicy()
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    d = policy.decide(policy.start(), "GET", response=response(503, **{"Retry-After": when}))
    assert d.retry_after and 25 <= d.backoff <= 31


def test_retry_after_is_capped() -> None:
    """A huge Retry-After is capped at retry_after_max."""
    policy = RetryPolicy(retry_after_max=10)
    d = policy.decide(policy.start(), "GET", response=response(503, **{"Retry-After": "9999"}))
    assert d.backoff == 10


def test_invalid_retry_after_falls_back_to_backoff() -> None:
    """Retry-After: abc falls back to the normal backoff instead of failing."""
    policy = RetryPolicy()
    d = policy.decide(policy.start(), "GET", response=response(503, **{"Retry-After": "abc"}))
    assert d.retry is not None and d.backoff == 0.5 and not d.retry_after


def test_429_without_retry_after_is_final() -> None:
    """A 429 is retried only when the server says when."""
    policy = RetryPolicy()
    assert policy.decide(policy.start(), "GET", response=response(429)).retry is None


def test_404_is_final() -> None:
    """A 4xx outside the rules is not retried."""
    policy = RetryPolicy()
    assert policy.decide(policy.start(), "GET", response=response(404)).retry is None


def test_post_on_forcelist_status_is_retried_by_default() -> None:
    """POST is retried on a forcelist status, as the seed does."""
    policy = RetryPolicy()
    assert policy.decide(policy.start(), "POST", response=response(503)).retry is not None


def test_post_status_retry_can_be_turned_off() -> None:
    """retry_post_on_status=False makes a POST's 503 final."""
    policy = RetryPolicy(retry_post_on_status=False)
    assert policy.decide(policy.start(), "POST", response=response(503)).retry is None


def test_budget_is_exhausted_after_total() -> None:
    """After retries_total retries the decision is final and marked exhausted."""
    policy = RetryPolicy(total=1)
    first = policy.decide(policy.start(), "GET", response=response(503))
    assert first.retry is not None
    second = policy.decide(first.retry, "GET", response=response(503))
    assert second.retry is None and second.exhausted


def test_unreplayable_body_is_never_resent() -> None:
    """A retryable outcome with a body that cannot be replayed is final."""
    policy = RetryPolicy()
    d = policy.decide(policy.start(), "PUT", response=response(503), replayable=False)
    assert d.retry is None


def refused() -> requests.ConnectionError:
    """A requests ConnectionError as HTTPAdapter raises it for a refused connection."""
    reason = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, "/", reason))  # type: ignore[arg-type]


def test_connect_failure_is_retried_for_post() -> None:
    """A refused connection is retried even for POST: the server never saw it."""
    policy = RetryPolicy()
    assert classify_error(refused()) == "connect"
    assert policy.decide(policy.start(), "POST", error=refused()).retry is not None


def test_connect_budget_is_separate() -> None:
    """retries_connect=1 allows one connect retry only."""
    policy = RetryPolicy(total=5, connect=1)
    first = policy.decide(policy.start(), "GET", error=refused())
    assert first.retry is not None
    assert policy.decide(first.retry, "GET", error=refused()).retry is None


def test_read_failure_is_retried_for_get_only() -> None:
    """A reset after sending is retried for GET, never for POST."""
    policy = RetryPolicy()
    reset = requests.ConnectionError(ConnectionResetError("reset"))
    assert classify_error(reset) == "read"
    assert policy.decide(policy.start(), "GET", error=reset).retry is not None
    assert policy.decide(policy.start(), "POST", error=reset).retry is None


def test_read_timeout_is_a_read_failure() -> None:
    """A read timeout may have reached the server."""
    assert classify_error(requests.ReadTimeout()) == "read"


def test_ssl_error_is_final() -> None:
    """TLS failures are not retried."""
    assert classify_error(requests.exceptions.SSLError()) == "final"
