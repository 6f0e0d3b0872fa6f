"""What the demo learns from its own telemetry: per-route counts and one waterfall.

``SpanRecorder`` is an in-memory span exporter that, instead of keeping every span, folds each
finished logical request (its ``INTERNAL`` span and the ``CLIENT`` attempt spans under it) into
per-route statistics and keeps the most instructive retried request for the waterfall; memory
stays bounded however long the demo runs. It also scans every span for the demo secret.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from ..telemetry import _semconv as sc
from ._waits import WaitCollector, WaitStats, WaitView, is_wait_span

__all__ = [
    "AttemptView",
    "MetricTotals",
    "RouteStats",
    "SpanRecorder",
    "WaterfallView",
    "metric_totals",
    "percentile",
]

#: Logical-request durations kept per route for p50/p95 (the most recent ones).
DURATION_WINDOW = 10_000


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (``None`` when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def short_reason(reason: str) -> str:
    """``requests.exceptions.ReadTimeout`` -> ``ReadTimeout``; status codes unchanged."""
    return reason.rsplit(".", 1)[-1]


@dataclass
class RouteStats:
    """Counts for one route (one logical span name), all taken from the spans."""

    route: str
    requests: int = 0
    attempts: int = 0
    redirects: int = 0
    retries_by_reason: Counter[str] = field(default_factory=Counter)
    errors_by_type: Counter[str] = field(default_factory=Counter)
    attempts_attribute: int = 0
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=DURATION_WINDOW))

    @property
    def retries(self) -> int:
        """Scheduled retries (one ``observable_session.retry`` event each)."""
        return sum(self.retries_by_reason.values())

    @property
    def errors(self) -> int:
        """Logical requests that failed after any retries."""
        return sum(self.errors_by_type.values())

    @property
    def adds_up(self) -> bool:
        """Every attempt is the first one, a retry or a redirect hop."""
        return self.attempts == self.requests + self.retries + self.redirects


@dataclass(frozen=True)
class AttemptView:
    """One row of the waterfall, offsets in seconds from the logical span's start."""

    label: str
    start_s: float
    end_s: float
    status_code: int | None
    error_type: str | None
    resend_count: int | None
    server: str
    is_error: bool

    @property
    def duration_s(self) -> float:
        """How long the attempt took."""
        return self.end_s - self.start_s


@dataclass(frozen=True)
class RetryView:
    """A scheduled retry (from the logical span's event), offset from the logical start."""

    at_s: float
    reason: str
    backoff_s: float
    retry_after: bool
    resend_count: int


@dataclass(frozen=True)
class WaterfallView:
    """A retried request laid out on one time axis."""

    name: str
    trace_id: str
    duration_s: float
    status_code: int | None
    error_type: str | None
    attempts: tuple[AttemptView, ...]
    retries: tuple[RetryView, ...]


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _waterfall(logical: ReadableSpan, children: list[ReadableSpan]) -> WaterfallView:
    origin = logical.start_time or 0
    attrs = logical.attributes or {}
    rows = []
    for index, span in enumerate(sorted(children, key=lambda s: s.start_time or 0), start=1):
        a = span.attributes or {}
        rows.append(
            AttemptView(
                label=f"attempt {index}",
                start_s=((span.start_time or origin) - origin) / 1e9,
                end_s=((span.end_time or origin) - origin) / 1e9,
                status_code=_int_or_none(a.get(sc.HTTP_RESPONSE_STATUS_CODE)),
                error_type=_str_or_none(a.get(sc.ERROR_TYPE)),
                resend_count=_int_or_none(a.get(sc.HTTP_REQUEST_RESEND_COUNT)),
                server=f"{a.get(sc.SERVER_ADDRESS, '?')}:{a.get(sc.SERVER_PORT, '?')}",
                is_error=span.status.status_code is StatusCode.ERROR,
            )
        )
    retries = []
    for event in logical.events:
        if event.name != sc.RETRY_EVENT:
            continue
        ea = event.attributes or {}
        backoff = ea.get(sc.RETRY_BACKOFF, 0.0)
        retries.append(
            RetryView(
                at_s=(event.timestamp - origin) / 1e9,
                reason=str(ea.get(sc.RETRY_REASON, "?")),
                backoff_s=float(backoff) if isinstance(backoff, (int, float)) else 0.0,
                retry_after=bool(ea.get(sc.RETRY_AFTER, False)),
                resend_count=_int_or_none(ea.get(sc.HTTP_REQUEST_RESEND_COUNT)) or 0,
            )
        )
    return WaterfallView(
        name=logical.name,
        trace_id=f"{logical.context.trace_id:032x}" if logical.context else "",
        duration_s=((logical.end_time or origin) - origin) / 1e9,
        status_code=_int_or_none(attrs.get(sc.HTTP_RESPONSE_STATUS_CODE)),
        error_type=_str_or_none(attrs.get(sc.ERROR_TYPE)),
        attempts=tuple(rows),
        retries=tuple(retries),
    )


def _span_texts(span: ReadableSpan) -> Iterable[str]:
    """Every string a span carries: name, attribute values, events, status description."""
    yield span.name
    if span.status.description:
        yield span.status.description
    for attributes in [span.attributes, *(e.attributes for e in span.events)]:
        for key, value in (attributes or {}).items():
            yield key
            if isinstance(value, str):
                yield value
            elif isinstance(value, (tuple, list)):
                yield from (v for v in value if isinstance(v, str))
    yield from (e.name for e in span.events)


class SpanRecorder(SpanExporter):
    """An in-memory exporter that aggregates finished requests instead of storing spans."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, list[ReadableSpan]] = {}
        self._routes: dict[str, RouteStats] = {}
        self._best: tuple[tuple[int, int, int], WaterfallView] | None = None
        self._secrets = tuple(s for s in secrets if s)
        self.spans_seen = 0
        self.secret_hits = 0
        self.logical_without_attempts = 0
        self._waits = WaitCollector()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Fold finished spans into the statistics."""
        with self._lock:
            for span in spans:
                self._add(span)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered."""
        return True

    def _add(self, span: ReadableSpan) -> None:
        self.spans_seen += 1
        if self._secrets:
            self.secret_hits += sum(
                text.count(secret) for text in _span_texts(span) for secret in self._secrets
            )
        scope = span.instrumentation_scope
        if scope is None or scope.name != sc.SCOPE_NAME:
            return
        if span.kind is SpanKind.CLIENT and span.parent is not None:
            self._pending.setdefault(span.parent.span_id, []).append(span)
        elif span.kind is SpanKind.INTERNAL and span.context is not None:
            if is_wait_span(span):  # a Session.wait, not a logical request
                self._waits.add_wait(span)
                return
            children = self._pending.pop(span.context.span_id, [])
            self._add_logical(span, children)
            self._waits.add_poll(span, children)

    def _add_logical(self, logical: ReadableSpan, children: list[ReadableSpan]) -> None:
        attrs = logical.attributes or {}
        children.sort(key=lambda s: s.start_time or 0)
        stats = self._routes.setdefault(logical.name, RouteStats(logical.name))
        stats.requests += 1
        stats.attempts += len(children)
        if not children:
            self.logical_without_attempts += 1
        attempts_attr = _int_or_none(attrs.get(sc.ATTEMPTS))
        stats.attempts_attribute += attempts_attr or 0
        for child in children:
            status = _int_or_none((child.attributes or {}).get(sc.HTTP_RESPONSE_STATUS_CODE))
            if status is not None and 300 <= status < 400 and child is not children[-1]:
                stats.redirects += 1
        reasons = [
            short_reason(str((e.attributes or {}).get(sc.RETRY_REASON, "?")))
            for e in logical.events
            if e.name == sc.RETRY_EVENT
        ]
        stats.retries_by_reason.update(reasons)
        error_type = _str_or_none(attrs.get(sc.ERROR_TYPE))
        if error_type is not None:
            stats.errors_by_type[short_reason(error_type)] += 1
        if logical.start_time is not None and logical.end_time is not None:
            stats.durations.append((logical.end_time - logical.start_time) / 1e9)
        if reasons:
            # The most instructive request: most retries, then one that ended well, then the
            # most different reasons.
            score = (len(reasons), int(error_type is None), len(set(reasons)))
            if self._best is None or score > self._best[0]:
                self._best = (score, _waterfall(logical, children))

    def routes(self) -> list[RouteStats]:
        """A snapshot of the per-route statistics, sorted by route name."""
        with self._lock:
            return [self._copy(s) for _, s in sorted(self._routes.items())]

    def waterfall(self) -> WaterfallView | None:
        """The retried request with the most retries seen so far, if any."""
        with self._lock:
            return self._best[1] if self._best else None

    def waits(self) -> WaitStats:
        """Counts of the waits seen so far."""
        with self._lock:
            return self._waits.snapshot()

    def wait_view(self) -> WaitView | None:
        """The wait to draw, if any."""
        with self._lock:
            return self._waits.view()

    def totals(self) -> tuple[int, int]:
        """(logical requests, attempts) recorded so far, cheap enough for a progress bar."""
        with self._lock:
            return (
                sum(s.requests for s in self._routes.values()),
                sum(s.attempts for s in self._routes.values()),
            )

    @staticmethod
    def _copy(stats: RouteStats) -> RouteStats:
        return RouteStats(
            route=stats.route,
            requests=stats.requests,
            attempts=stats.attempts,
            redirects=stats.redirects,
            retries_by_reason=Counter(stats.retries_by_reason),
            errors_by_type=Counter(stats.errors_by_type),
            attempts_attribute=stats.attempts_attribute,
            durations=deque(stats.durations, maxlen=DURATION_WINDOW),
        )


@dataclass(frozen=True)
class MetricTotals:
    """Totals read back from the in-memory metric reader (cumulative since start)."""

    attempt_points: int
    request_points: int
    retries: int
    backoff_points: int
    active_requests: int
    secret_hits: int


def metric_totals(reader: InMemoryMetricReader, secrets: Sequence[str] = ()) -> MetricTotals:
    """Sum the library's metrics: histogram counts, the retry counter, in-flight attempts."""
    sums: Counter[str] = Counter()
    hits = 0
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            if scope_metrics.scope.name != sc.SCOPE_NAME:
                continue
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "count", None)
                    if value is None:
                        value = getattr(point, "value", 0)
                    sums[metric.name] += int(value or 0)
                    for attr_value in (point.attributes or {}).values():
                        text = str(attr_value)
                        hits += sum(text.count(secret) for secret in secrets if secret)
    return MetricTotals(
        attempt_points=sums[sc.METRIC_CLIENT_REQUEST_DURATION],
        request_points=sums[sc.METRIC_REQUEST_DURATION],
        retries=sums[sc.METRIC_RETRIES],
        backoff_points=sums[sc.METRIC_RETRY_BACKOFF],
        active_requests=sums[sc.METRIC_CLIENT_ACTIVE_REQUESTS],
        secret_hits=hits,
    )
