"""Spans and metric points for logical requests and their attempts.

A :class:`Telemetry` belongs to one session. Per logical request it hands out an
:class:`Instruments` (or ``None`` when nothing would be recorded: no SDK configured, or the
caller suppressed HTTP instrumentation), and the session calls the small functions below at
each step of its loop. Every name comes from :mod:`._semconv`.

Recording itself is in :mod:`._record`.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.trace import Tracer, TracerProvider

from .._forksafe import renew_after_fork
from .._version import __version__
from ..redaction import DEFAULT_REDACTOR
from . import _semconv as sc
from ._events import warn

KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY"}
)

_SUPPRESS_HTTP_KEY: str | None
try:  # the key opentelemetry-instrumentation-{requests,urllib3} honour, if installed
    from opentelemetry.instrumentation.utils import (  # type: ignore[attr-defined]
        _SUPPRESS_HTTP_INSTRUMENTATION_KEY as _SUPPRESS_HTTP_KEY,
    )
except ImportError:  # pragma: no cover - instrumentation packages are optional
    _SUPPRESS_HTTP_KEY = None
_SUPPRESS_ALL_KEY = otel_context._SUPPRESS_INSTRUMENTATION_KEY


def is_suppressed() -> bool:
    """Whether the caller suppressed (HTTP) instrumentation in the current context."""
    if otel_context.get_value(_SUPPRESS_ALL_KEY):
        return True
    return _SUPPRESS_HTTP_KEY is not None and bool(otel_context.get_value(_SUPPRESS_HTTP_KEY))


def suppress_http(ctx: otel_context.Context) -> otel_context.Context:
    """``ctx`` with HTTP instrumentation below us (requests, urllib3) switched off."""
    if _SUPPRESS_HTTP_KEY is None:
        return ctx
    return otel_context.set_value(_SUPPRESS_HTTP_KEY, True, ctx)


def method_attributes(method: str) -> dict[str, str]:
    """``http.request.method`` (and ``_original`` for a method the conventions do not know)."""
    if method in KNOWN_METHODS:
        return {sc.HTTP_REQUEST_METHOD: method}
    return {sc.HTTP_REQUEST_METHOD: "_OTHER", sc.HTTP_REQUEST_METHOD_ORIGINAL: method}


def span_name(method: str, url_template: str | None) -> str:
    """``{METHOD}`` or ``{METHOD} {url.template}``; ``HTTP`` for an unknown method."""
    name = method if method in KNOWN_METHODS else "HTTP"
    return f"{name} {url_template}" if url_template else name


class InFlight:
    """Attempts in flight per attribute set, exported as ``http.client.active_requests``.

    A synchronous up-down counter costs a full SDK measurement on each of the two changes
    an attempt makes; this table costs a dictionary update under a lock, and an
    asynchronous up-down counter (the same non-monotonic sum on export) reads it when the
    SDK collects. There is one table per meter, because the SDK keeps only the first
    instrument registered under a name.
    """

    __slots__ = ("__weakref__", "_attributes", "_counts", "_lock")
    _tables: weakref.WeakKeyDictionary[Meter, InFlight] = weakref.WeakKeyDictionary()
    _tables_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[tuple[str, Any], ...], int] = {}
        self._attributes: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}

    @classmethod
    def of(cls, meter: Meter) -> InFlight:
        """The table of ``meter``, registering its asynchronous counter the first time."""
        with cls._tables_lock:
            table = cls._tables.get(meter)
            if table is None:
                table = cls._tables[meter] = cls()
                meter.create_observable_up_down_counter(
                    sc.METRIC_CLIENT_ACTIVE_REQUESTS,
                    callbacks=[table.observe],
                    unit="{request}",
                    description="Number of attempts in flight.",
                )
        return table

    def add(self, delta: int, attributes: dict[str, Any]) -> None:
        """Count ``delta`` attempts in (or out of) flight for ``attributes``."""
        key = tuple(attributes.items())
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + delta
            if key not in self._attributes:
                self._attributes[key] = dict(attributes)

    def observe(self, options: CallbackOptions) -> list[Observation]:
        """The current counts, zeros included, so a series returns to 0 rather than vanish."""
        with self._lock:
            return [Observation(n, self._attributes[k]) for k, n in self._counts.items()]


renew_after_fork(InFlight, "_tables_lock")


class Instruments:
    """The tracer and the metric instruments of one pair of providers."""

    __slots__ = (
        "active_requests",
        "attempt_duration",
        "backoff",
        "meter",
        "request_duration",
        "retries",
        "tracer",
    )

    def __init__(self, tracer: Tracer, meter: Meter) -> None:
        self.tracer = tracer
        self.meter = meter  # for the instruments of other policies (telemetry/_overload.py)
        self.attempt_duration = _histogram(
            meter,
            sc.METRIC_CLIENT_REQUEST_DURATION,
            "Duration of HTTP client requests: one point per attempt.",
        )
        self.active_requests = InFlight.of(meter)
        self.request_duration = _histogram(
            meter,
            sc.METRIC_REQUEST_DURATION,
            "Duration of logical requests, all attempts and backoff included.",
        )
        self.retries = meter.create_counter(
            sc.METRIC_RETRIES,
            unit="{retry}",
            description="Retries scheduled, by reason.",
        )
        self.backoff = _histogram(
            meter, sc.METRIC_RETRY_BACKOFF, "Backoff sleeps taken between attempts."
        )


_ADVISORY_REFUSED: set[str] = set()


def _histogram(meter: Meter, name: str, description: str) -> Histogram:
    """A seconds histogram with the library's buckets, or the SDK's where it refuses them.

    ``explicit_bucket_boundaries_advisory`` is honoured from opentelemetry 1.30 on; an older
    SDK (or a third-party meter) raises ``TypeError`` for it. Recording with the default
    buckets beats recording nothing, and one warning says so.
    """
    try:
        return meter.create_histogram(
            name,
            unit="s",
            description=description,
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
    except TypeError as exc:
        histogram = meter.create_histogram(name, unit="s", description=description)
        kind = type(meter).__module__ + "." + type(meter).__qualname__
        if kind not in _ADVISORY_REFUSED:
            _ADVISORY_REFUSED.add(kind)
            warn(
                sc.EVENT_TELEMETRY_DEGRADED,
                step="create histogram",
                error_type=type(exc).__name__,
                cause=(
                    f"{kind}.create_histogram() refuses explicit_bucket_boundaries_advisory "
                    "(opentelemetry-sdk < 1.30?): histograms use the SDK's default buckets"
                ),
            )
        return histogram


class Telemetry:
    """Where a session's spans and metric points go.

    With explicit providers it always records; with the global ones it records only once
    the application has installed an SDK provider for traces or metrics, so a library user
    with no SDK pays one ``isinstance`` check per logical request.
    """

    __slots__ = ("_cache", "_lock", "_meter_provider", "_tracer_provider", "_warned")

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._cache: tuple[object, object, Instruments] | None = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def instruments(self) -> Instruments | None:
        """The instruments to record a logical request with, or ``None`` to record nothing."""
        tp = self._tracer_provider or trace.get_tracer_provider()
        mp = self._meter_provider or metrics.get_meter_provider()
        cache = self._cache
        if cache is not None and cache[0] is tp and cache[1] is mp:
            return cache[2] if not is_suppressed() else None
        if _is_default(tp) and _is_default(mp):
            return None
        if is_suppressed():
            return None
        with self._lock:
            try:
                tracer = tp.get_tracer(sc.SCOPE_NAME, __version__)
                meter = mp.get_meter(sc.SCOPE_NAME, __version__)
                instruments = Instruments(tracer, meter)
            except Exception as exc:  # a broken provider must not break the request
                self._warn_broken(exc)
                return None
            self._cache = (tp, mp, instruments)
        return instruments

    def _warn_broken(self, exc: Exception) -> None:
        """Say once per session and error type that nothing will be recorded, and why."""
        kind = type(exc).__name__
        if kind in self._warned:
            return
        self._warned.add(kind)
        warn(
            sc.EVENT_TELEMETRY_FAILED,
            step="instruments set-up",
            error_type=kind,
            cause=DEFAULT_REDACTOR.mask(f"{kind}: {exc}"),
        )


def _is_default(provider: object) -> bool:
    """A provider that records nothing: the API's proxy before an SDK is set, or a no-op."""
    return isinstance(provider, _DEFAULT_PROVIDERS)


_DEFAULT_PROVIDERS = (
    trace.ProxyTracerProvider,
    trace.NoOpTracerProvider,
    _ProxyMeterProvider,
    metrics.NoOpMeterProvider,
)


__all__ = [
    "KNOWN_METHODS",
    "InFlight",
    "Instruments",
    "Telemetry",
    "is_suppressed",
    "method_attributes",
    "span_name",
    "suppress_http",
]
