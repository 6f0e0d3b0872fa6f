"""CircuitBreaker: closed, open and half-open per origin, on its own, with a fake clock."""

from __future__ import annotations

import math
import pickle
import threading

import pytest

from observable_session import BreakerState, CircuitBreaker, InvalidConfigError

A = ("http", "a.example", 80)
B = ("http", "b.example", 80)
OPENED = (BreakerState.CLOSED, BreakerState.OPEN)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **kwargs: object) -> CircuitBreaker:
    """A breaker on the fake clock (small throughput, unless given)."""
    kwargs.setdefault("minimum_throughput", 4)
    return CircuitBreaker(clock=clock, **kwargs)  # type: ignore[arg-type]


def test_defaults() -> None:
    """The issue's defaults: 0.5 over 30 s with at least 20 calls, 5 s break."""
    cb = CircuitBreaker()
    assert (cb.failure_ratio, cb.minimum_throughput, cb.window, cb.break_duration) == (
        0.5,
        20,
        30.0,
        5.0,
    )


def test_stays_closed_below_minimum_throughput() -> None:
    """Three failures out of three is not enough evidence with minimum_throughput=4."""
    cb = breaker(Clock())
    assert [cb.record(A, True) for _ in range(3)] == [None, None, None]
    assert cb.state(A) is BreakerState.CLOSED and cb.allow(A) == (True, None)


def test_opens_when_ratio_reached_with_enough_calls() -> None:
    """Two failures in four attempts is the 0.5 ratio: the circuit opens."""
    cb = breaker(Clock())
    cb.record(A, False)
    cb.record(A, True)
    cb.record(A, False)
    assert cb.record(A, True) == OPENED
    assert cb.state(A) is BreakerState.OPEN
    assert cb.allow(A) == (False, None)


def test_stays_closed_below_ratio() -> None:
    """One failure in four is below 0.5."""
    cb = breaker(Clock())
    for failed in (True, False, False, False, False, False):
        assert cb.record(A, failed) is None
    assert cb.state(A) is BreakerState.CLOSED


def test_old_outcomes_leave_the_window() -> None:
    """Failures older than the window no longer count."""
    clock = Clock()
    cb = breaker(clock, window=10.0)
    for _ in range(3):
        cb.record(A, True)
    clock.now += 11
    assert cb.record(A, True) is None  # only 1 attempt in the window now
    assert cb.state(A) is BreakerState.CLOSED


def test_half_open_after_break_lets_one_probe() -> None:
    """After break_duration one probe goes through; others wait for its outcome."""
    clock = Clock()
    cb = breaker(clock, break_duration=5.0)
    for _ in range(4):
        cb.record(A, True)
    clock.now += 4.9
    assert cb.allow(A) == (False, None)
    assert cb.retry_in(A) == pytest.approx(0.1)
    clock.now += 0.1
    assert cb.state(A) is BreakerState.HALF_OPEN
    assert cb.allow(A) == (True, (BreakerState.OPEN, BreakerState.HALF_OPEN))
    assert cb.allow(A) == (False, None)


def test_probe_success_closes_with_a_fresh_window() -> None:
    """A successful probe closes the circuit and forgets the failures before it."""
    clock = Clock()
    cb = breaker(clock)
    for _ in range(4):
        cb.record(A, True)
    clock.now += 5
    cb.allow(A)
    assert cb.record(A, False) == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
    assert cb.state(A) is BreakerState.CLOSED
    assert [cb.record(A, True) for _ in range(3)] == [None, None, None]


def test_probe_failure_opens_again_for_a_full_break() -> None:
    """A failed probe reopens the circuit, and the break starts again."""
    clock = Clock()
    cb = breaker(clock)
    for _ in range(4):
        cb.record(A, True)
    clock.now += 5
    cb.allow(A)
    assert cb.record(A, True) == (BreakerState.HALF_OPEN, BreakerState.OPEN)
    clock.now += 4
    assert cb.allow(A) == (False, None)
    clock.now += 1
    assert cb.allow(A)[0]


def test_a_probe_that_never_reports_does_not_wedge_the_circuit() -> None:
    """If the probe's outcome never arrives, another probe is allowed a break later."""
    clock = Clock()
    cb = breaker(clock)
    for _ in range(4):
        cb.record(A, True)
    clock.now += 5
    assert cb.allow(A)[0]
    clock.now += 4
    assert not cb.allow(A)[0]
    clock.now += 1
    assert cb.allow(A) == (True, None)


def test_origins_are_apart() -> None:
    """An open circuit for one origin lets another origin through."""
    cb = breaker(Clock())
    for _ in range(4):
        cb.record(A, True)
    assert cb.allow(A)[0] is False
    assert cb.allow(B) == (True, None)
    assert dict(cb.states()) == {A: BreakerState.OPEN}


def test_state_levels_for_the_gauge() -> None:
    """The gauge values: 0 closed, 1 half-open, 2 open."""
    assert [s.level for s in BreakerState] == [0, 1, 2]
    assert [s.value for s in BreakerState] == ["closed", "half_open", "open"]


def test_only_one_of_racing_threads_gets_the_probe() -> None:
    """Sixteen threads asking at once when the break is over: exactly one probe."""
    clock = Clock()
    cb = breaker(clock)
    for _ in range(4):
        cb.record(A, True)
    clock.now += 5
    barrier = threading.Barrier(16)
    results: list[bool] = []
    lock = threading.Lock()

    def ask() -> None:
        barrier.wait()
        allowed, _ = cb.allow(A)
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 15 + [True]


def test_racing_failures_open_exactly_once() -> None:
    """Eight threads recording failures: one closed -> open transition, never two."""
    cb = breaker(Clock(), minimum_throughput=20)
    transitions: list[object] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def fail() -> None:
        barrier.wait()
        for _ in range(50):
            t = cb.record(A, True)
            if t is not None:
                with lock:
                    transitions.append(t)

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert transitions == [OPENED]


BAD_NUMBERS = [math.nan, math.inf, -1, 0, "1", None, True]


@pytest.mark.parametrize("bad", BAD_NUMBERS)
@pytest.mark.parametrize("name", ["failure_ratio", "window", "break_duration"])
def test_invalid_numbers_are_refused(name: str, bad: object) -> None:
    """NaN, infinities, zero, negatives and wrong types: InvalidConfigError naming the argument."""
    with pytest.raises(InvalidConfigError, match=name):
        CircuitBreaker(**{name: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [1.5, 2])
def test_failure_ratio_above_one_is_refused(bad: float) -> None:
    """A ratio is at most 1."""
    with pytest.raises(InvalidConfigError, match="failure_ratio"):
        CircuitBreaker(failure_ratio=bad)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "20", True, None, math.nan])
def test_invalid_minimum_throughput_is_refused(bad: object) -> None:
    """minimum_throughput is an int >= 1."""
    with pytest.raises(InvalidConfigError, match="minimum_throughput"):
        CircuitBreaker(minimum_throughput=bad)  # type: ignore[arg-type]


def test_clock_must_be_callable() -> None:
    """A clock that is not callable is refused at construction."""
    with pytest.raises(InvalidConfigError, match="clock"):
        CircuitBreaker(clock=5.0)  # type: ignore[arg-type]


def test_pickles_as_settings_and_starts_closed() -> None:
    """A pickled breaker keeps its settings; the copy starts closed."""
    cb = CircuitBreaker(minimum_throughput=1)
    cb.record(A, True)
    assert cb.state(A) is BreakerState.OPEN
    copy = pickle.loads(pickle.dumps(cb))
    assert copy.minimum_throughput == 1 and copy.state(A) is BreakerState.CLOSED
