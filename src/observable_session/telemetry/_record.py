"""Recording one logical request: its span, its attempts' spans, metric points and log events.

The session's loop calls a :class:`CallRecorder` at each step (attempt started, attempt
ended, retry scheduled, backoff slept, call ended). Every step is guarded: an error inside
telemetry is logged once and swallowed, so it never changes what the request returns or
raises. Attribute dictionaries are built once per call and copied per point, and a URL's
split and redacted forms are cached per session, so the per-attempt cost stays small.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .._forksafe import renew_after_fork
from ..redaction import DEFAULT_REDACTOR
from . import _semconv as sc
from ._events import emit, enabled, warn
from ._instruments import Instruments, method_attributes, span_name, suppress_http


class _Guard:
    """A context manager that logs (once per step and error type) and swallows errors."""

    __slots__ = ("what",)
    _warned: set[str] = set()
    _lock = threading.Lock()

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc_type is None or not issubclass(exc_type, Exception):
            return False
        key = f"{self.what}:{exc_type.__name__}"
        with self._lock:
            first = key not in self._warned
            self._warned.add(key)
        if first:
            warn(
                sc.EVENT_TELEMETRY_FAILED,
                step=self.what,
                error_type=exc_type.__name__,
                cause=DEFAULT_REDACTOR.mask(f"{exc_type.__name__}: {exc}"),
            )
        return True


_G_LOGICAL_START = _Guard("logical span start")
_G_LOGICAL_END = _Guard("logical span end")
_G_ATTEMPT_START = _Guard("attempt span start")
_G_ATTEMPT_END = _Guard("attempt span end")
_G_RETRY = _Guard("retry telemetry")


renew_after_fork(_Guard, "_lock")


class Target(NamedTuple):
    """Where a URL points, and its redacted form for ``url.full``."""

    scheme: str
    host: str
    port: int
    url_full: str


class TargetCache:
    """A small per-session cache of :class:`Target` by URL, invalidated when secrets change."""

    __slots__ = ("_entries",)
    MAX = 512

    def __init__(self) -> None:
        self._entries: dict[str, tuple[object, Target]] = {}

    def get(self, url: str) -> Target:
        """The target of ``url``, from the cache while the redactor's secrets are unchanged."""
        generation = DEFAULT_REDACTOR._matchers  # rebuilt whenever secrets change
        entry = self._entries.get(url)
        if entry is not None and entry[0] is generation:
            return entry[1]
        target = _target(url)
        if len(self._entries) >= self.MAX:
            self._entries = {}
        self._entries[url] = (generation, target)
        return target


_TEMPLATES: dict[str, tuple[object, str]] = {}
_TEMPLATES_MAX = 512


def masked_template(template: str | None) -> str | None:
    """``template`` masked, for span names, ``url.template`` and metric points.

    A route is built from the base path, where some APIs put the credential itself
    (``/bot<token>/``, a webhook's path): metric points pass no redactor on their way out.
    Cached per template while the redactor's secrets are unchanged.
    """
    if not template:
        return template
    generation = DEFAULT_REDACTOR._matchers
    entry = _TEMPLATES.get(template)
    if entry is not None and entry[0] is generation:
        return entry[1]
    masked = DEFAULT_REDACTOR.mask_url(template)
    if len(_TEMPLATES) >= _TEMPLATES_MAX:
        _TEMPLATES.clear()
    _TEMPLATES[template] = (generation, masked)
    return masked


def _target(url: str) -> Target:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port
        host = parts.hostname or ""
    except ValueError:
        scheme, host, port = "", "", None
    default = 443 if scheme == "https" else 80
    return Target(scheme, host, port or default, DEFAULT_REDACTOR.mask_url(url))


def _ids(span: Span | None) -> dict[str, str | None]:
    """``trace_id``/``span_id`` of ``span`` (or the current span) in hex, for log events."""
    ctx = (span or trace.get_current_span()).get_span_context()
    if not ctx.is_valid:
        return {"trace_id": None, "span_id": None}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


def _protocol_version(response: Any) -> str | None:
    version = getattr(getattr(response, "raw", None), "version", None)
    return {10: "1.0", 11: "1.1", 20: "2"}.get(version) if isinstance(version, int) else None


class Attempt:
    """The telemetry of one attempt in flight."""

    __slots__ = ("active_attrs", "span", "token")

    def __init__(self) -> None:
        self.span: Span | None = None
        self.token: object = None
        self.active_attrs: dict[str, Any] | None = None


class CallRecorder:
    """Spans, metric points and log events of one logical request."""

    __slots__ = (
        "_base",
        "_ctx",
        "_inst",
        "_logical",
        "_name",
        "_pending",
        "_span",
        "_span_attrs",
        "_target",
        "_template",
        "_token",
        "_version",
        "exhausted",
        "host",
        "method",
    )

    def __init__(self, instruments: Instruments | None, method: str, template: str | None):
        self._inst = instruments
        self.method = method
        self._template = masked_template(template)
        self._span: Span | None = None
        self._ctx: otel_context.Context | None = None
        self._token: object = None
        self._base: dict[str, Any] = {}
        self._logical: dict[str, Any] = {}
        self._version: str | None = None
        self.host = ""
        self.exhausted = False
        self._pending: tuple[str, float, bool, int, int] | None = None
        # The span name and the span attributes of the logical request's target, which its
        # first attempt (and any attempt to the same target) reuses rather than rebuilds.
        self._name = ""
        self._target: Target | None = None
        self._span_attrs: dict[str, Any] = {}

    # -- the logical request --------------------------------------------------------------

    def start(self, target: Target) -> None:
        """Open the INTERNAL span and make it current for the call."""
        self.host = target.host
        inst = self._inst
        if inst is None:
            return
        with _G_LOGICAL_START:
            attrs = self._base_attrs(target)
            self._logical = dict(self._base)  # the logical point keeps the called origin
            attrs[sc.URL_FULL] = target.url_full
            # Never mutated after this: tracers copy span attributes, and so may share it.
            self._target, self._span_attrs = target, attrs
            self._name = span_name(self.method, self._template)
            self._span = inst.tracer.start_span(
                self._name, kind=SpanKind.INTERNAL, attributes=attrs
            )
            self._ctx = trace.set_span_in_context(self._span)
            self._token = otel_context.attach(self._ctx)

    def end(
        self,
        status: int | None,
        error_type: str | None,
        attempts: int,
        duration: float,
    ) -> None:
        """Close the INTERNAL span, record the logical duration, log completion."""
        inst = self._inst
        if inst is not None:
            with _G_LOGICAL_END:
                span = self._span
                if span is not None:
                    final: dict[str, Any] = {sc.ATTEMPTS: attempts}
                    if status is not None:
                        final[sc.HTTP_RESPONSE_STATUS_CODE] = status
                    if error_type is not None:
                        final[sc.ERROR_TYPE] = error_type
                    if self.exhausted:
                        final[sc.RETRIES_EXHAUSTED] = True
                    span.set_attributes(final)
                    _set_status(span, status, error_type)
                    span.end()
                attrs = dict(self._logical)
                if status is not None:
                    attrs[sc.HTTP_RESPONSE_STATUS_CODE] = status
                if error_type is not None:
                    attrs[sc.ERROR_TYPE] = error_type
                if self._version:
                    attrs[sc.NETWORK_PROTOCOL_VERSION] = self._version
                attrs[sc.RETRIES_EXHAUSTED] = self.exhausted
                inst.request_duration.record(duration, attrs)
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        if enabled("debug"):  # the per-request event: not even its fields when filtered
            self._emit(
                "debug",
                sc.EVENT_REQUEST_COMPLETED,
                self._span,
                status_code=status,
                error_type=error_type,
                attempts=attempts,
                duration_s=round(duration, 6),
            )

    # -- attempts -------------------------------------------------------------------------

    def start_attempt(self, target: Target, resend_count: int, headers: Any) -> Attempt:
        """Open a CLIENT span, make it current, inject its trace context into ``headers``."""
        attempt = Attempt()
        self.host = target.host
        inst = self._inst
        if inst is None:
            return attempt
        with _G_ATTEMPT_START:
            if target is self._target:  # the cache's same object: the same attributes
                attrs = self._span_attrs
                self._base = self._logical  # a redirect hop elsewhere may have moved it
            else:
                attrs = self._base_attrs(target)
                attrs[sc.URL_FULL] = target.url_full
            if resend_count:
                attrs = {**attrs, sc.HTTP_REQUEST_RESEND_COUNT: resend_count}
            span = inst.tracer.start_span(
                self._name or span_name(self.method, self._template),
                context=self._ctx,
                kind=SpanKind.CLIENT,
                attributes=attrs,
            )
            attempt.span = span
            ctx = suppress_http(trace.set_span_in_context(span, self._ctx))
            attempt.token = otel_context.attach(ctx)
            propagate.inject(headers)
            attempt.active_attrs = self._base
            inst.active_requests.add(1, self._base)
        return attempt

    def end_attempt(
        self,
        attempt: Attempt,
        attempt_no: int,
        duration: float,
        response: Any,
        error_type: str | None,
        masked_error: str | None,
    ) -> None:
        """Close the CLIENT span, record the attempt's duration, log a failure."""
        status: int | None = response.status_code if response is not None else None
        inst = self._inst
        span = attempt.span
        if inst is not None:
            with _G_ATTEMPT_END:
                if attempt.active_attrs is not None:
                    inst.active_requests.add(-1, attempt.active_attrs)
                version = _protocol_version(response)
                outcome: dict[str, Any] = {}
                if status is not None:
                    outcome[sc.HTTP_RESPONSE_STATUS_CODE] = status
                if error_type is not None:
                    outcome[sc.ERROR_TYPE] = error_type
                if version:
                    outcome[sc.NETWORK_PROTOCOL_VERSION] = version
                    self._version = version
                attrs = {**self._base, **outcome}
                if span is not None:
                    span.set_attributes(outcome)
                    if masked_error is not None:
                        span.add_event(
                            "exception",
                            {"exception.type": error_type or "", "exception.message": masked_error},
                        )
                    _set_status(span, status, error_type)
                    span.end()
                inst.attempt_duration.record(duration, attrs)
        if attempt.token is not None:
            otel_context.detach(attempt.token)  # type: ignore[arg-type]
        if masked_error is not None or (status is not None and (status >= 500 or status == 429)):
            self._emit(
                "warning",
                sc.EVENT_ATTEMPT_FAILED,
                span or self._span,
                attempt=attempt_no,
                status_code=status,
                error_type=error_type,
                duration_s=round(duration, 6),
            )

    # -- retries --------------------------------------------------------------------------

    def retry_scheduled(
        self, reason: str, backoff: float, retry_after: bool, next_resend_count: int
    ) -> None:
        """Log a scheduled retry; its span event and counts wait for :meth:`retry_proceeds`."""
        self._pending = (reason, backoff, retry_after, next_resend_count, time.time_ns())
        self._emit(
            "info",
            sc.EVENT_RETRY_SCHEDULED,
            self._span,
            reason=reason,
            backoff_s=backoff,
            retry_after=retry_after,
            attempt=next_resend_count + 1,
        )

    def retry_proceeds(self) -> None:
        """The backoff is over and the retry will be made: span event, retry count, sleep."""
        pending, self._pending = self._pending, None
        inst = self._inst
        if inst is None or pending is None:
            return
        reason, backoff, retry_after, next_resend_count, scheduled_at = pending
        with _G_RETRY:
            if self._span is not None:
                self._span.add_event(
                    sc.RETRY_EVENT,
                    {
                        sc.HTTP_REQUEST_RESEND_COUNT: next_resend_count,
                        sc.RETRY_REASON: reason,
                        sc.RETRY_BACKOFF: backoff,
                        sc.RETRY_AFTER: retry_after,
                    },
                    timestamp=scheduled_at,
                )
            attrs = self._retry_attrs()
            inst.retries.add(1, {**attrs, sc.RETRY_REASON: reason})
            if backoff > 0:
                inst.backoff.record(backoff, attrs)

    def retries_exhausted(self, attempts: int, reason: str, deadline_expired: bool) -> None:
        """Log that the retry budget (or the deadline) ended the call."""
        self.exhausted = True
        self._emit(
            "warning",
            sc.EVENT_RETRIES_EXHAUSTED,
            self._span,
            attempts=attempts,
            reason=reason,
            deadline_expired=deadline_expired,
        )

    # -- for the overload policies (telemetry/_overload.py) -------------------------------

    def add_event(self, name: str, attributes: dict[str, Any]) -> None:
        """Add a span event to the logical span (guarded)."""
        span = self._span
        if span is not None:
            with _G_RETRY:
                span.add_event(name, attributes)

    def set_attribute(self, name: str, value: str) -> None:
        """Set an attribute on the logical span (guarded)."""
        span = self._span
        if span is not None:
            with _G_LOGICAL_START:
                span.set_attribute(name, value)

    def call_attributes(self) -> dict[str, Any]:
        """Metric attributes of the call: method, ``server.address``, ``url.template``."""
        return self._retry_attrs()

    def _emit(self, level: str, event: str, span: Span | None, **fields: Any) -> None:
        """A log event with the call's method, route and the ids of ``span`` (or the call's)."""
        if not enabled(level):
            return
        emit(
            level,
            event,
            {
                "method": self.method,
                "url_template": self._template,
                **fields,
                **_ids(span or self._span),
            },
        )

    # -- attributes -----------------------------------------------------------------------

    def _base_attrs(self, target: Target) -> dict[str, Any]:
        """Span attributes shared by the logical span and attempts; sets the metric base."""
        attrs: dict[str, Any] = method_attributes(self.method)
        attrs[sc.SERVER_ADDRESS] = target.host
        attrs[sc.SERVER_PORT] = target.port
        attrs[sc.URL_SCHEME] = target.scheme
        if self._template:
            attrs[sc.URL_TEMPLATE] = self._template
        self._base = dict(attrs)
        return attrs

    def _retry_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = method_attributes(self.method)
        attrs[sc.SERVER_ADDRESS] = self.host
        if self._template:
            attrs[sc.URL_TEMPLATE] = self._template
        return attrs


def _set_status(span: Span, status: int | None, error_type: str | None) -> None:
    """``ERROR`` for 4xx/5xx and exceptions; the description is only the error type."""
    if error_type is None:
        return
    if status is not None:
        span.set_status(Status(StatusCode.ERROR))
    else:
        span.set_status(Status(StatusCode.ERROR, error_type))
