"""Recording one wait: its INTERNAL span, a span event per scheduled poll, two metric points, a log.

The WAIT span is made current for the whole wait, so every poll's logical span (and through it
every attempt) is its child. Like :mod:`._record`, every step is guarded: a failure inside
telemetry is logged once and swallowed, so it never changes what ``wait`` returns or raises.
The wait instruments are created once per meter and kept here, apart from the per-request
:class:`~._instruments.Instruments`, so that the request path pays nothing for them.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import Histogram, Meter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .._forksafe import renew_after_fork
from .._version import __version__
from . import _events, _record
from . import _semconv as sc
from ._instruments import Instruments, Telemetry

__all__ = ["OUTCOMES", "WaitRecorder"]

#: The values of ``observable_session.wait.outcome``.
OUTCOMES = ("done", "failed", "timeout", "error")

_G_WAIT_START = _record._Guard("wait span start")
_G_WAIT_POLL = _record._Guard("wait poll event")
_G_WAIT_END = _record._Guard("wait span end")


class _WaitInstruments:
    """The two wait histograms of one meter."""

    __slots__ = ("__weakref__", "duration", "polls")
    _by_meter: weakref.WeakKeyDictionary[Meter, _WaitInstruments] = weakref.WeakKeyDictionary()
    _lock = threading.Lock()

    def __init__(self, meter: Meter) -> None:
        self.duration: Histogram = meter.create_histogram(
            sc.METRIC_WAIT_DURATION,
            unit="s",
            description="Duration of Session.wait calls, every poll and pause included.",
            explicit_bucket_boundaries_advisory=list(sc.WAIT_DURATION_BUCKETS),
        )
        self.polls: Histogram = meter.create_histogram(
            sc.METRIC_WAIT_POLLS,
            unit="{poll}",
            description="Polls made by one Session.wait call.",
            explicit_bucket_boundaries_advisory=list(sc.WAIT_POLLS_BUCKETS),
        )

    @classmethod
    def of(cls, telemetry: Telemetry) -> _WaitInstruments:
        """The instruments of the meter ``telemetry`` records with (created once per meter)."""
        provider = telemetry._meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter(sc.SCOPE_NAME, __version__)
        with cls._lock:
            found = cls._by_meter.get(meter)
            if found is None:
                found = cls._by_meter[meter] = cls(meter)
            return found


renew_after_fork(_WaitInstruments, "_lock")


class WaitRecorder:
    """The span, metric points and log event of one ``Session.wait`` call."""

    __slots__ = ("_attrs", "_inst", "_span", "_token", "_waits", "method", "template")

    def __init__(self, telemetry: Telemetry, method: str, template: str | None) -> None:
        self.method = method
        self.template = _record.masked_template(template)
        self._span: Span | None = None
        self._token: object = None
        self._waits: _WaitInstruments | None = None
        self._attrs: dict[str, Any] = {sc.URL_TEMPLATE: self.template} if template else {}
        self._inst: Instruments | None = None
        try:
            self._inst = telemetry.instruments()
            if self._inst is not None:
                self._waits = _WaitInstruments.of(telemetry)
        except Exception:  # a broken provider must not break the wait
            self._inst = None

    def start(self) -> None:
        """Open the INTERNAL span and make it current, so that every poll is its child."""
        if self._inst is None:
            return
        with _G_WAIT_START:
            name = f"{sc.WAIT_SPAN_NAME} {self.template}" if self.template else sc.WAIT_SPAN_NAME
            self._span = self._inst.tracer.start_span(
                name, kind=SpanKind.INTERNAL, attributes=dict(self._attrs)
            )
            self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def poll_scheduled(self, interval: float, retry_after: bool, next_poll: int) -> None:
        """A span event: the next poll comes after ``interval`` seconds."""
        if self._span is None:
            return
        with _G_WAIT_POLL:
            self._span.add_event(
                sc.WAIT_POLL_EVENT,
                {
                    sc.WAIT_INTERVAL: interval,
                    sc.WAIT_RETRY_AFTER: retry_after,
                    sc.WAIT_POLLS: next_poll - 1,
                },
            )

    def end(
        self,
        outcome: str,
        polls: int,
        duration: float,
        status: int | None,
        error_type: str | None,
    ) -> None:
        """Close the span, record duration and polls, log ``completed`` or ``failed``."""
        span = self._span
        if self._inst is not None:
            with _G_WAIT_END:
                if span is not None:
                    final: dict[str, Any] = {sc.WAIT_POLLS: polls, sc.WAIT_OUTCOME: outcome}
                    if status is not None:
                        final[sc.HTTP_RESPONSE_STATUS_CODE] = status
                    if error_type is not None:
                        final[sc.ERROR_TYPE] = error_type
                        span.set_status(Status(StatusCode.ERROR, error_type))
                    span.set_attributes(final)
                    span.end()
                if self._waits is not None:
                    attrs = {**self._attrs, sc.WAIT_OUTCOME: outcome}
                    self._waits.duration.record(duration, attrs)
                    self._waits.polls.record(polls, attrs)
        # Detached only now, so that the points' exemplars link to the wait's trace.
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        fields: dict[str, Any] = {
            "method": self.method,
            "url_template": self.template,
            "outcome": outcome,
            "polls": polls,
            "status_code": status,
            "duration_s": round(duration, 6),
        }
        # A logging chain that raises cannot report its own failure: it is swallowed here,
        # so that it never replaces what the wait returns or raises.
        with contextlib.suppress(Exception):
            ids = _record._ids(span)
            # Through the library's event helper: structlog once configured, else the
            # stdlib logger (quiet below WARNING until the application configures logging).
            if outcome == "done":
                level, event, extra = "info", sc.EVENT_WAIT_COMPLETED, {}
            else:
                level, event, extra = "warning", sc.EVENT_WAIT_FAILED, {"error_type": error_type}
            if _events.enabled(level):
                _events.emit(level, event, {**fields, **extra, **ids})
