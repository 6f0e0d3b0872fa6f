"""RetryBudget: the gRFC A6 token bucket per origin, on its own."""

from __future__ import annotations

import math
import pickle
import threading

import pytest

from observable_session import InvalidConfigError, RetryBudget

A = ("http", "a.example", 80)
B = ("https", "b.example", 443)


def test_defaults_are_grpc_a6_example() -> None:
    """max_tokens=10, token_ratio=0.1, as the issue and gRFC A6's example."""
    budget = RetryBudget()
    assert (budget.max_tokens, budget.token_ratio) == (10.0, 0.1)


def test_starts_full_and_allows_retries() -> None:
    """A bucket never touched is full, and a retry is allowed."""
    budget = RetryBudget()
    assert budget.tokens(A) == 10.0
    assert budget.allows_retry(A)


def test_retries_allowed_only_while_above_half() -> None:
    """Four failures leave 6 tokens (allowed); the fifth leaves 5, which is not > 5."""
    budget = RetryBudget()
    for _ in range(4):
        budget.record_failure(A)
    assert budget.tokens(A) == 6.0 and budget.allows_retry(A)
    budget.record_failure(A)
    assert budget.tokens(A) == 5.0 and not budget.allows_retry(A)


def test_tokens_never_below_zero() -> None:
    """A long outage floors the bucket at zero."""
    budget = RetryBudget()
    for _ in range(100):
        budget.record_failure(A)
    assert budget.tokens(A) == 0.0


def test_success_refills_by_ratio_capped_at_max() -> None:
    """Each success adds token_ratio, never above max_tokens."""
    budget = RetryBudget(max_tokens=4, token_ratio=0.5)
    budget.record_failure(A)
    budget.record_success(A)
    assert budget.tokens(A) == 3.5
    for _ in range(10):
        budget.record_success(A)
    assert budget.tokens(A) == 4.0


def test_recovery_after_an_outage_needs_successes_not_time() -> None:
    """From empty, retries come back after (max/2)/ratio + 1 successes, not after a delay."""
    budget = RetryBudget(max_tokens=10, token_ratio=0.5)
    for _ in range(10):
        budget.record_failure(A)
    for _ in range(10):
        budget.record_success(A)
    assert not budget.allows_retry(A)  # exactly 5.0
    budget.record_success(A)
    assert budget.allows_retry(A)


def test_one_failure_in_twenty_keeps_the_bucket_full() -> None:
    """A poller failing 1 call in 20 (its retry succeeding) earns back more than it spends."""
    budget = RetryBudget()
    for _ in range(50):
        budget.record_failure(A)
        assert budget.allows_retry(A)
        for _ in range(20):  # the retry's success and 19 good calls
            budget.record_success(A)
    assert budget.tokens(A) == 10.0


def test_origins_are_counted_apart() -> None:
    """Draining one origin leaves another's bucket full."""
    budget = RetryBudget()
    for _ in range(10):
        budget.record_failure(A)
    assert not budget.allows_retry(A)
    assert budget.allows_retry(B) and budget.tokens(B) == 10.0


def test_thread_safe_under_racing_threads() -> None:
    """Eight threads racing 1000 failures, then 1000 successes each: no update is lost."""
    budget = RetryBudget(max_tokens=10000, token_ratio=0.5)
    barrier = threading.Barrier(8)

    def work(action: str) -> None:
        barrier.wait()
        for _ in range(1000):
            getattr(budget, action)(A)

    for action in ("record_failure", "record_success"):
        threads = [threading.Thread(target=work, args=(action,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expected = 2000.0 if action == "record_failure" else 6000.0
        assert budget.tokens(A) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1, 0, "10", None, True, [10], 10j])
@pytest.mark.parametrize("name", ["max_tokens", "token_ratio"])
def test_invalid_arguments_are_refused(name: str, bad: object) -> None:
    """NaN, infinities, zero, negatives and wrong types: InvalidConfigError naming the argument."""
    with pytest.raises(InvalidConfigError) as info:
        RetryBudget(**{name: bad})  # type: ignore[arg-type]
    assert str(info.value) == f"{name} must be a finite number > 0"  # the rule, not the value


def test_ratio_above_max_is_refused() -> None:
    """A single success may not refill more than the whole bucket."""
    with pytest.raises(InvalidConfigError, match="token_ratio"):
        RetryBudget(max_tokens=1, token_ratio=2)


def test_pickles_as_settings_and_starts_full() -> None:
    """A pickled budget keeps its settings; the copy's buckets start full (locks do not travel)."""
    budget = RetryBudget(max_tokens=6, token_ratio=0.25)
    for _ in range(6):
        budget.record_failure(A)
    copy = pickle.loads(pickle.dumps(budget))
    assert (copy.max_tokens, copy.token_ratio) == (6.0, 0.25)
    assert copy.tokens(A) == 6.0
    assert repr(copy) == "RetryBudget(max_tokens=6, token_ratio=0.25)"
