"""The circuit breaker: stop calling an origin that keeps failing, probe it, come back.

Per origin, as in Polly's advanced circuit breaker:

- **closed**: attempts flow; their outcomes are counted over a sliding ``window`` (in ten
  buckets). When at least ``minimum_throughput`` attempts were counted and the share that
  failed reaches ``failure_ratio``, the circuit opens.
- **open**: every call fails at once with :class:`~observable_session.CircuitOpenError`,
  before a socket is opened, for ``break_duration`` seconds.
- **half-open**: one probe attempt is let through (another one only if its outcome is not
  known after a further ``break_duration``); success closes the circuit with a fresh window,
  failure opens it again.

A failure is what the retry policy would classify as one: a connection error, a read error,
or a status of the forcelist. A 4xx is an answer from a healthy server, never a failure.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any

from ..errors import InvalidConfigError
from ._checks import positive_int, positive_number, ratio

Origin = tuple[str, str, int]

_BUCKETS = 10
#: Origins remembered per breaker; beyond this a closed one is forgotten first.
MAX_ORIGINS = 4096


class BreakerState(str, Enum):
    """The state of one origin's circuit; ``value`` is the metric label, ``level`` the gauge."""

    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def level(self) -> int:
        """0 closed, 1 half-open, 2 open (``observable_session.circuit_breaker.state``)."""
        return _LEVELS[self]


_LEVELS = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}

Transition = tuple[BreakerState, BreakerState]


class _Circuit:
    """One origin's state; only touched under the breaker's lock."""

    __slots__ = ("buckets", "opened_at", "probe_at", "state")

    def __init__(self) -> None:
        self.state = BreakerState.CLOSED
        self.buckets: deque[list[float]] = deque()  # [bucket start, attempts, failures]
        self.opened_at = 0.0
        self.probe_at: float | None = None


class CircuitBreaker:
    """A per-origin circuit breaker (closed -> open -> half-open -> closed), thread safe.

    Args:
        failure_ratio: Share of failed attempts, in (0, 1], that opens the circuit.
        minimum_throughput: Attempts in the window before the ratio is trusted, >= 1.
        window: Seconds of the sliding window the ratio is computed over, > 0.
        break_duration: Seconds the circuit stays open before a probe, > 0.
        clock: Monotonic seconds (tests pass a fake clock).
    """

    __slots__ = (
        "__weakref__",
        "_circuits",
        "_clock",
        "_lock",
        "break_duration",
        "failure_ratio",
        "minimum_throughput",
        "window",
    )

    def __init__(
        self,
        failure_ratio: float = 0.5,
        minimum_throughput: int = 20,
        window: float = 30.0,
        break_duration: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_ratio = ratio("failure_ratio", failure_ratio)
        self.minimum_throughput = positive_int("minimum_throughput", minimum_throughput)
        self.window = positive_number("window", window)
        self.break_duration = positive_number("break_duration", break_duration)
        if not callable(clock):
            raise InvalidConfigError("clock must be a callable returning seconds")
        self._clock = clock
        self._lock = threading.Lock()
        self._circuits: dict[Origin, _Circuit] = {}

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(failure_ratio={self.failure_ratio:g}, "
            f"minimum_throughput={self.minimum_throughput}, window={self.window:g}, "
            f"break_duration={self.break_duration:g})"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {
            "failure_ratio": self.failure_ratio,
            "minimum_throughput": self.minimum_throughput,
            "window": self.window,
            "break_duration": self.break_duration,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Settings travel, live state does not: an unpickled breaker starts closed.
        self.__init__(**state)  # type: ignore[misc]

    # -- asking ---------------------------------------------------------------------------

    def state(self, origin: Origin) -> BreakerState:
        """The state of ``origin``'s circuit now (an open one past its break reads half-open)."""
        with self._lock:
            circuit = self._circuits.get(origin)
            if circuit is None:
                return BreakerState.CLOSED
            if circuit.state is BreakerState.OPEN and self._break_over(circuit):
                return BreakerState.HALF_OPEN
            return circuit.state

    def states(self) -> list[tuple[Origin, BreakerState]]:
        """Every origin this breaker has seen, with its state (for the state gauge)."""
        with self._lock:
            origins = list(self._circuits)
        return [(origin, self.state(origin)) for origin in origins]

    def retry_in(self, origin: Origin) -> float:
        """Seconds until an open circuit lets a probe through (0.0 when it would now)."""
        with self._lock:
            circuit = self._circuits.get(origin)
            if circuit is None or circuit.state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, circuit.opened_at + self.break_duration - self._clock())

    def allow(self, origin: Origin) -> tuple[bool, Transition | None]:
        """May an attempt go to ``origin`` now? Also the transition this caused, if any."""
        with self._lock:
            circuit = self._circuits.get(origin)
            if circuit is None or circuit.state is BreakerState.CLOSED:
                return True, None
            now = self._clock()
            if circuit.state is BreakerState.OPEN:
                if not self._break_over(circuit):
                    return False, None
                circuit.state = BreakerState.HALF_OPEN
                circuit.probe_at = now
                return True, (BreakerState.OPEN, BreakerState.HALF_OPEN)
            # Half-open: one probe at a time, a new one if the last never reported back.
            if circuit.probe_at is not None and now - circuit.probe_at < self.break_duration:
                return False, None
            circuit.probe_at = now
            return True, None

    # -- telling --------------------------------------------------------------------------

    def record(self, origin: Origin, failed: bool) -> Transition | None:
        """The outcome of an attempt to ``origin``; returns the transition it caused, if any."""
        with self._lock:
            circuit = self._circuits.get(origin) or self._add(origin)
            now = self._clock()
            if circuit.state is BreakerState.HALF_OPEN:
                return self._settle_probe(circuit, failed, now)
            if circuit.state is BreakerState.OPEN:
                return None  # an attempt let through before the circuit opened
            self._count(circuit, failed, now)
            attempts, failures = self._totals(circuit, now)
            if attempts >= self.minimum_throughput and failures >= self.failure_ratio * attempts:
                circuit.state = BreakerState.OPEN
                circuit.opened_at = now
                circuit.buckets.clear()
                return (BreakerState.CLOSED, BreakerState.OPEN)
            return None

    # -- internals ------------------------------------------------------------------------

    def _break_over(self, circuit: _Circuit) -> bool:
        return self._clock() - circuit.opened_at >= self.break_duration

    def _settle_probe(self, circuit: _Circuit, failed: bool, now: float) -> Transition:
        circuit.probe_at = None
        if failed:
            circuit.state = BreakerState.OPEN
            circuit.opened_at = now
            return (BreakerState.HALF_OPEN, BreakerState.OPEN)
        circuit.state = BreakerState.CLOSED
        circuit.buckets.clear()
        return (BreakerState.HALF_OPEN, BreakerState.CLOSED)

    def _count(self, circuit: _Circuit, failed: bool, now: float) -> None:
        width = self.window / _BUCKETS
        buckets = circuit.buckets
        if not buckets or now - buckets[-1][0] >= width:
            buckets.append([now, 0.0, 0.0])
        bucket = buckets[-1]
        bucket[1] += 1
        if failed:
            bucket[2] += 1

    def _totals(self, circuit: _Circuit, now: float) -> tuple[float, float]:
        buckets = circuit.buckets
        while buckets and now - buckets[0][0] >= self.window:
            buckets.popleft()
        return sum(b[1] for b in buckets), sum(b[2] for b in buckets)

    def _add(self, origin: Origin) -> _Circuit:
        if len(self._circuits) >= MAX_ORIGINS:
            closed = [o for o, c in self._circuits.items() if c.state is BreakerState.CLOSED]
            for victim in closed[: max(1, len(closed) // 2)] or [next(iter(self._circuits))]:
                del self._circuits[victim]
        circuit = self._circuits[origin] = _Circuit()
        return circuit
