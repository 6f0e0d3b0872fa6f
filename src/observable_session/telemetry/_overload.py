"""Telemetry of the overload policies: denied retries, breaker states, transitions, rejections.

Instruments are made once per meter (the SDK keeps the first instrument registered under a
name) and the breaker-state gauge reads every breaker a session of that meter has used. Every
recording is guarded: a telemetry failure is logged once and never changes the request.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .._forksafe import renew_after_fork
from . import _semconv as sc
from ._record import _Guard

if TYPE_CHECKING:
    from ..policies._breaker import CircuitBreaker, Transition
    from ._instruments import Instruments
    from ._record import CallRecorder

Origin = tuple[str, str, int]

_G_OVERLOAD = _Guard("overload telemetry")


class _MeterInstruments:
    """The overload instruments of one meter, and the breakers its gauge observes."""

    __slots__ = ("__weakref__", "_breakers", "_lock", "denied", "rejected", "transitions")
    _by_meter: weakref.WeakKeyDictionary[Meter, _MeterInstruments] = weakref.WeakKeyDictionary()
    _by_meter_lock = threading.Lock()

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()
        self.denied = meter.create_counter(
            sc.METRIC_RETRIES_DENIED,
            unit="{retry}",
            description="Retries the policy wanted but an overload policy denied, by reason.",
        )
        self.rejected = meter.create_counter(
            sc.METRIC_BREAKER_REJECTED,
            unit="{request}",
            description="Logical requests an open circuit breaker failed before sending.",
        )
        self.transitions = meter.create_counter(
            sc.METRIC_BREAKER_TRANSITIONS,
            unit="{transition}",
            description="Circuit breaker state changes, by from and to state.",
        )
        meter.create_observable_gauge(
            sc.METRIC_BREAKER_STATE,
            callbacks=[self.observe],
            unit="{state}",
            description="Circuit breaker state per server: 0 closed, 1 half-open, 2 open.",
        )

    @classmethod
    def of(cls, meter: Meter) -> _MeterInstruments:
        """The instruments of ``meter``, made the first time."""
        with cls._by_meter_lock:
            found = cls._by_meter.get(meter)
            if found is None:
                found = cls._by_meter[meter] = cls(meter)
            return found

    def watch(self, breaker: CircuitBreaker) -> None:
        """Let the state gauge read ``breaker``."""
        if breaker not in self._breakers:
            with self._lock:
                self._breakers.add(breaker)

    def observe(self, options: CallbackOptions) -> list[Observation]:
        """The state of every origin of every watched breaker (the worst one per server)."""
        with self._lock:
            breakers = list(self._breakers)
        levels: dict[tuple[str, int], int] = {}
        for breaker in breakers:
            for (_, host, port), state in breaker.states():
                key = (host, port)
                levels[key] = max(levels.get(key, 0), state.level)
        return [
            Observation(level, {sc.SERVER_ADDRESS: host, sc.SERVER_PORT: port})
            for (host, port), level in levels.items()
        ]


renew_after_fork(_MeterInstruments, "_by_meter_lock")


class OverloadTelemetry:
    """What one logical request records about its overload policies."""

    __slots__ = ("_meter", "_recorder")

    def __init__(self, meter: _MeterInstruments | None, recorder: CallRecorder) -> None:
        self._meter = meter
        self._recorder = recorder

    @classmethod
    def of(cls, instruments: Instruments | None, recorder: CallRecorder) -> OverloadTelemetry:
        """The recorder of one call (records nothing without instruments)."""
        meter = None
        if instruments is not None:
            with _G_OVERLOAD:
                meter = _MeterInstruments.of(instruments.meter)
        return cls(meter, recorder)

    def idempotency_key(self, key: str) -> None:
        """The key is not a secret: a span attribute (never a metric attribute)."""
        self._recorder.set_attribute(sc.IDEMPOTENCY_KEY, key)

    def watch(self, breaker: CircuitBreaker) -> None:
        """Make ``breaker`` visible to the state gauge."""
        if self._meter is not None:
            with _G_OVERLOAD:
                self._meter.watch(breaker)

    def rejected(self, origin: Origin) -> None:
        """An open circuit failed the call (or a redirect hop) before sending."""
        self._recorder.add_event(
            sc.BREAKER_REJECTED_EVENT,
            {sc.SERVER_ADDRESS: origin[1], sc.SERVER_PORT: origin[2]},
        )
        if self._meter is not None:
            with _G_OVERLOAD:
                self._meter.rejected.add(1, self._attrs(origin))

    def retry_denied(self, denied_by: str, reason: str, resend_count: int) -> None:
        """A retry the retry policy wanted was not made."""
        self._recorder.add_event(
            sc.RETRY_DENIED_EVENT,
            {
                sc.RETRY_DENIED_BY: denied_by,
                sc.RETRY_REASON: reason,
                sc.HTTP_REQUEST_RESEND_COUNT: resend_count,
            },
        )
        if self._meter is not None:
            with _G_OVERLOAD:
                attrs = self._recorder.call_attributes()
                attrs[sc.RETRY_DENIED_BY] = denied_by
                self._meter.denied.add(1, attrs)

    def transition(self, origin: Origin, transition: Transition) -> None:
        """A breaker changed state for ``origin``."""
        if self._meter is not None:
            with _G_OVERLOAD:
                before, after = transition
                self._meter.transitions.add(
                    1,
                    {
                        sc.SERVER_ADDRESS: origin[1],
                        sc.SERVER_PORT: origin[2],
                        sc.BREAKER_FROM_STATE: before.value,
                        sc.BREAKER_TO_STATE: after.value,
                    },
                )

    def _attrs(self, origin: Origin) -> dict[str, Any]:
        attrs = self._recorder.call_attributes()
        attrs[sc.SERVER_ADDRESS] = origin[1]
        return attrs
