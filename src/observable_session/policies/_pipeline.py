"""The overload policies of a session, and the small pipeline one logical request runs through.

The send loop asks and tells; it does not know which policies exist:

- ``prepare(request)``: before the first attempt (the idempotency key);
- ``admit(url)``: may an attempt go out? (the circuit breaker, before any socket);
- ``attempted(url, response, error, decision)``: how it went (the budget, the breaker);
- ``may_retry(url, decision, response)``: may the retry the retry policy wants be made?
  (``Retry-After`` above the cap, the retry budget, the circuit breaker).

Each answer is recorded (metrics, span events) through :mod:`..telemetry._overload`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, TypeVar

from requests import PreparedRequest, Response
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from .. import _urls
from .._failures import http_error
from .._retry import classify_error
from ..errors import CircuitOpenError, InvalidConfigError, RequestsApiError
from ..redaction import DEFAULT_REDACTOR
from ..telemetry import _overload as record
from ._breaker import CircuitBreaker, Transition
from ._budget import RetryBudget
from ._idempotency import KEYED_METHODS, header_name, with_key

if TYPE_CHECKING:
    from .._retry import Decision
    from ..errors import AttemptRecord
    from ..telemetry._instruments import Instruments
    from ..telemetry._record import CallRecorder

DENIED_BY_BUDGET: Final = "budget"
DENIED_BY_CIRCUIT: Final = "circuit_open"
DENIED_BY_RETRY_AFTER: Final = "retry_after"
RETRY_AFTER_MODES: Final = ("cap", "raise")

_E = TypeVar("_E", bound=BaseException)


class _Keep:
    """The default of a per-call option: keep the session's setting."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


def _check_budget(value: object) -> RetryBudget | None:
    if value is None or isinstance(value, RetryBudget):
        return value
    raise InvalidConfigError("retry_budget must be a RetryBudget or None")


def _check_breaker(value: object) -> CircuitBreaker | None:
    if value is None or isinstance(value, CircuitBreaker):
        return value
    raise InvalidConfigError("circuit_breaker must be a CircuitBreaker or None")


def _check_mode(value: object) -> str:
    if isinstance(value, str) and value in RETRY_AFTER_MODES:
        return value
    raise InvalidConfigError('retry_after_exceeded must be "cap" or "raise"')


@dataclass(frozen=True)  # no slots: frozen slotted dataclasses do not unpickle on 3.10
class OverloadPolicy:
    """What protects an upstream from this session: budget, breaker, keys, Retry-After rule."""

    budget: RetryBudget | None
    breaker: CircuitBreaker | None
    idempotency_header: str | None
    retry_after_exceeded: str
    retry_after_max: float

    @classmethod
    def build(
        cls,
        *,
        retry_budget: object,
        circuit_breaker: object,
        idempotency_key: object,
        retry_after_exceeded: object,
        retry_after_max: float,
    ) -> OverloadPolicy:
        """The validated policy of a session (raises :class:`InvalidConfigError`)."""
        return cls(
            _check_budget(retry_budget),
            _check_breaker(circuit_breaker),
            header_name(idempotency_key),
            _check_mode(retry_after_exceeded),
            retry_after_max,
        )

    def override(
        self,
        *,
        retry_budget: object = KEEP,
        circuit_breaker: object = KEEP,
        idempotency_key: object = KEEP,
        retry_after_exceeded: object = KEEP,
    ) -> OverloadPolicy:
        """This policy with one call's own settings (``KEEP`` keeps the session's)."""
        changes: dict[str, Any] = {}
        if retry_budget is not KEEP:
            changes["budget"] = _check_budget(retry_budget)
        if circuit_breaker is not KEEP:
            changes["breaker"] = _check_breaker(circuit_breaker)
        if idempotency_key is not KEEP:
            changes["idempotency_header"] = header_name(idempotency_key)
        if retry_after_exceeded is not KEEP:
            changes["retry_after_exceeded"] = _check_mode(retry_after_exceeded)
        return replace(self, **changes) if changes else self

    def start(
        self,
        instruments: Instruments | None,
        recorder: CallRecorder,
        method: str,
        forcelist: Collection[int],
    ) -> CallGuard:
        """The per-call pipeline of one logical request."""
        return CallGuard(self, instruments, recorder, method, forcelist)


class CallGuard:
    """The overload policies as one logical request sees them."""

    __slots__ = (
        "_forcelist",
        "_origin",
        "_policy",
        "_recorder",
        "_telemetry",
        "_url",
        "denied",
        "keyed",
        "method",
        "retry_after",
    )

    def __init__(
        self,
        policy: OverloadPolicy,
        instruments: Instruments | None,
        recorder: CallRecorder,
        method: str,
        forcelist: Collection[int],
    ) -> None:
        self._policy = policy
        self._telemetry = record.OverloadTelemetry.of(instruments, recorder)
        self._recorder = recorder
        self._forcelist = forcelist
        self._url: str | None = None
        self._origin: _urls.Origin | None = None
        self.method = method
        self.keyed = False
        self.denied: str | None = None
        self.retry_after: float | None = None

    # -- before the first attempt ---------------------------------------------------------

    def prepare(self, request: PreparedRequest) -> PreparedRequest:
        """``request`` with its idempotency key, when keys are on and the method takes one."""
        header = self._policy.idempotency_header
        if header is None or self.method not in KEYED_METHODS:
            return request
        request, key = with_key(request, header)
        self.keyed = True
        self._telemetry.idempotency_key(key)
        return request

    # -- per attempt ----------------------------------------------------------------------

    def admit(self, url: str, attempts: int, history: tuple[AttemptRecord, ...]) -> None:
        """Raise :class:`CircuitOpenError` when the breaker refuses the first attempt of a hop."""
        breaker = self._policy.breaker
        origin = self._origin_of(url)
        if breaker is None or origin is None:
            return
        allowed, transition = breaker.allow(origin)
        self._transition(breaker, origin, transition)
        if allowed:
            return
        self._telemetry.rejected(origin)
        raise self._open_error(breaker, origin, attempts, history)

    def attempted(
        self, url: str, response: Response | None, error: BaseException | None, decision: Decision
    ) -> None:
        """Tell the budget and the breaker how the attempt went."""
        origin = self._origin_of(url)
        if origin is None:
            return
        budget = self._policy.budget
        if budget is not None:
            if decision.retry is not None or decision.exhausted:
                budget.record_failure(origin)
            elif response is not None and response.status_code < 400:
                budget.record_success(origin)
        breaker = self._policy.breaker
        if breaker is not None:
            if error is not None:
                if classify_error(error) == "final":
                    return  # a TLS or proxy error says nothing about the upstream's health
                failed = True
            else:
                assert response is not None
                failed = response.status_code in self._forcelist
            self._transition(breaker, origin, breaker.record(origin, failed))

    def may_retry(
        self, url: str, decision: Decision, response: Response | None, resend_count: int
    ) -> str | None:
        """``None`` when the retry may be made, else why not (also recorded)."""
        denied = self._denial(url, decision, response)
        if denied is not None:
            self.denied = denied
            self._telemetry.retry_denied(denied, decision.reason, resend_count)
        return denied

    def _denial(self, url: str, decision: Decision, response: Response | None) -> str | None:
        policy = self._policy
        if policy.retry_after_exceeded == "raise" and decision.retry_after:
            asked = _retry_after_seconds(response)
            if asked is not None and asked > policy.retry_after_max:
                self.retry_after = asked
                return DENIED_BY_RETRY_AFTER
        origin = self._origin_of(url)
        if origin is None:
            return None
        if policy.budget is not None and not policy.budget.allows_retry(origin):
            return DENIED_BY_BUDGET
        breaker = policy.breaker
        if breaker is not None:
            allowed, transition = breaker.allow(origin)
            self._transition(breaker, origin, transition)
            if not allowed:
                return DENIED_BY_CIRCUIT
        return None

    # -- at the end -----------------------------------------------------------------------

    def annotate(self, error: _E) -> _E:
        """``error`` saying which policy denied the retry, if one did."""
        if self.denied is not None and isinstance(error, RequestsApiError):
            error.retry_denied = self.denied
            error.retry_after = self.retry_after
        return error

    def retry_after_error(
        self, response: Response, attempts: int, history: tuple[AttemptRecord, ...]
    ) -> RequestsApiError:
        """The typed HTTP error that ends a call whose ``Retry-After`` exceeds the cap."""
        response._observable_session = (attempts, history)  # type: ignore[attr-defined]
        return self.annotate(http_error(response))

    # -- helpers --------------------------------------------------------------------------

    def _origin_of(self, url: str) -> _urls.Origin | None:
        if url != self._url:
            self._url, self._origin = url, _urls.origin_of(url)
        return self._origin

    def _transition(
        self, breaker: CircuitBreaker, origin: _urls.Origin, transition: Transition | None
    ) -> None:
        self._telemetry.watch(breaker)
        if transition is not None:
            self._telemetry.transition(origin, transition)

    def _open_error(
        self,
        breaker: CircuitBreaker,
        origin: _urls.Origin,
        attempts: int,
        history: tuple[AttemptRecord, ...],
    ) -> CircuitOpenError:
        scheme, host, port = origin
        message = (
            f"{self.method} not sent: the circuit breaker for {scheme}://{host}:{port} is open"
        )
        error = CircuitOpenError(DEFAULT_REDACTOR.mask(message), attempts=attempts, history=history)
        error.retry_in = breaker.retry_in(origin)
        error.retry_denied = DENIED_BY_CIRCUIT if attempts else None
        return error


def annotate_response_error(error: RequestsApiError, response: Response) -> RequestsApiError:
    """The ``ApiHTTPError`` ``request()`` raises, saying which policy denied the retry."""
    denied = getattr(response, "_observable_session_denied", None)
    if denied is not None:
        error.retry_denied, error.retry_after = denied
    return error


def _retry_after_seconds(response: Response | None) -> float | None:
    """The ``Retry-After`` the server sent, in seconds, uncapped; ``None`` if unparseable."""
    value = response.headers.get("Retry-After") if response is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(Retry().parse_retry_after(value)))
    except (InvalidHeader, ValueError, OverflowError):
        return None
