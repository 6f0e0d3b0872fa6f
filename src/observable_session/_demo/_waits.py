"""What the demo learns about its waits: counts per outcome, and one wait laid out to scale.

A ``Session.wait`` is a ``WAIT`` span whose children are the polls' logical spans, each with
its attempts under it. The :class:`~._collect.SpanRecorder` hands finished polls here by their
parent's span id; when the ``WAIT`` span itself finishes, :class:`WaitCollector` folds it into
:class:`WaitStats` and keeps the most instructive one as a :class:`WaitView`.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from ..telemetry import _semconv as sc

__all__ = ["PollView", "WaitCollector", "WaitStats", "WaitView", "is_wait_span"]

#: Polls kept per unfinished wait, and unfinished waits remembered (bounded memory).
_MAX_PENDING = 4096
_DURATION_WINDOW = 10_000


def is_wait_span(span: ReadableSpan) -> bool:
    """Whether ``span`` is a ``Session.wait`` span (not a logical request)."""
    return sc.WAIT_OUTCOME in (span.attributes or {}) or span.name.split(" ", 1)[0] == "WAIT"


@dataclass
class WaitStats:
    """All waits together, from their spans."""

    waits: int = 0
    polls: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=_DURATION_WINDOW))


@dataclass(frozen=True)
class PollView:
    """One poll of the wait: a logical request, its attempts, and the pause after it.

    Offsets are seconds from the start of the wait.
    """

    start_s: float
    end_s: float
    status_code: int | None
    error_type: str | None
    attempts: tuple[tuple[float, float, int | None, str | None, bool], ...]
    pause_s: float | None
    pause_from_retry_after: bool


@dataclass(frozen=True)
class WaitView:
    """One wait laid out on one time axis."""

    name: str
    trace_id: str
    duration_s: float
    outcome: str
    polls: tuple[PollView, ...]
    first_pause: tuple[float, bool] | None = None


def _offset(t: int | None, origin: int) -> float:
    return ((t or origin) - origin) / 1e9


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _view(wait: ReadableSpan, polls: list[tuple[ReadableSpan, list[ReadableSpan]]]) -> WaitView:
    origin = wait.start_time or 0
    pauses = [
        (_float((e.attributes or {}).get(sc.WAIT_INTERVAL)), e)
        for e in wait.events
        if e.name == sc.WAIT_POLL_EVENT
    ]
    by_poll = {_int((e.attributes or {}).get(sc.WAIT_POLLS)): (s, e) for s, e in pauses}
    rows = []
    ordered = sorted(polls, key=lambda p: p[0].start_time or 0)
    for number, (logical, attempts) in enumerate(ordered, start=1):
        attrs = logical.attributes or {}
        pause = by_poll.get(number)
        rows.append(
            PollView(
                start_s=_offset(logical.start_time, origin),
                end_s=_offset(logical.end_time, origin),
                status_code=_int(attrs.get(sc.HTTP_RESPONSE_STATUS_CODE)),
                error_type=str(attrs[sc.ERROR_TYPE]) if sc.ERROR_TYPE in attrs else None,
                attempts=tuple(
                    (
                        _offset(a.start_time, origin),
                        _offset(a.end_time, origin),
                        _int((a.attributes or {}).get(sc.HTTP_RESPONSE_STATUS_CODE)),
                        str((a.attributes or {}).get(sc.ERROR_TYPE) or "") or None,
                        a.status.status_code is StatusCode.ERROR,
                    )
                    for a in sorted(attempts, key=lambda s: s.start_time or 0)
                ),
                pause_s=pause[0] if pause else None,
                pause_from_retry_after=bool(
                    pause and (pause[1].attributes or {}).get(sc.WAIT_RETRY_AFTER)
                ),
            )
        )
    return WaitView(
        name=wait.name,
        trace_id=f"{wait.context.trace_id:032x}" if wait.context else "",
        duration_s=_offset(wait.end_time, origin),
        outcome=str((wait.attributes or {}).get(sc.WAIT_OUTCOME, "?")),
        polls=tuple(rows),
        first_pause=(first[0], bool((first[1].attributes or {}).get(sc.WAIT_RETRY_AFTER)))
        if (first := by_poll.get(0))
        else None,
    )


class WaitCollector:
    """Folds finished polls and waits into :class:`WaitStats` and one :class:`WaitView`.

    Not locked: the span recorder calls it under its own lock.
    """

    def __init__(self) -> None:
        self._pending: OrderedDict[int, list[tuple[ReadableSpan, list[ReadableSpan]]]] = (
            OrderedDict()
        )
        self.stats = WaitStats()
        self._best: tuple[tuple[int, int, int], WaitView] | None = None

    def add_poll(self, logical: ReadableSpan, attempts: list[ReadableSpan]) -> None:
        """A finished logical request that has a parent span: maybe a poll of a wait."""
        parent = logical.parent
        if parent is None:
            return
        polls = self._pending.setdefault(parent.span_id, [])
        if len(polls) < _MAX_PENDING:
            polls.append((logical, attempts))
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)

    def add_wait(self, wait: ReadableSpan) -> None:
        """A finished ``WAIT`` span: count it, and keep it if it is the best one to draw."""
        polls = self._pending.pop(wait.context.span_id, []) if wait.context else []
        attrs = wait.attributes or {}
        outcome = str(attrs.get(sc.WAIT_OUTCOME, "?"))
        stats = self.stats
        stats.waits += 1
        stats.polls += _int(attrs.get(sc.WAIT_POLLS)) or len(polls)
        stats.outcomes[outcome] += 1
        if wait.start_time is not None and wait.end_time is not None:
            stats.durations.append((wait.end_time - wait.start_time) / 1e9)
        retried = sum(1 for _, attempts in polls if len(attempts) > 1)
        # The most instructive wait: one whose polls were retried, then the most polls, then
        # one that ended well.
        score = (min(retried, 1), len(polls), int(outcome == "done"))
        if polls and (self._best is None or score > self._best[0]):
            self._best = (score, _view(wait, polls))

    def view(self) -> WaitView | None:
        """The wait to draw, if any wait finished."""
        return self._best[1] if self._best else None

    def snapshot(self) -> WaitStats:
        """A copy of the counts."""
        s = self.stats
        return WaitStats(s.waits, s.polls, Counter(s.outcomes), deque(s.durations))
