"""The retry policy: classify an attempt, decide on a retry, compute the backoff.

The policy is an immutable value. Its counters live in a :class:`urllib3.util.Retry`, whose
``increment()`` returns a new object with the attempt appended to its history and raises
``MaxRetryError`` when a budget is spent; the session owns the loop and the sleep.

Classification asks "could the server have seen it?":

=====================================  =====================  ==========================
outcome of an attempt                  idempotent method      POST / PATCH
=====================================  =====================  ==========================
connect failure (refused, DNS,         retried (``connect``)  retried (``connect``)
connect timeout)
read failure (reset, read timeout,     retried                never
truncated body, garbage)
status in the forcelist                retried                retried if
(500 502 503 504 520 522 524),                                ``retry_post_on_status``
or 429 with ``Retry-After``
anything else                          final                  final
body that cannot be replayed           never re-sent          never re-sent
=====================================  =====================  ==========================
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

import requests
from requests import Response
from urllib3.exceptions import (
    ConnectTimeoutError,
    InvalidHeader,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from ._config import check_bool, check_count, check_seconds

ErrorKind = Literal["connect", "read", "final"]

STATUS_FORCELIST = frozenset({500, 502, 503, 504, 520, 522, 524})
RETRY_AFTER_STATUSES = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_STATUS_RETRY_NON_IDEMPOTENT = frozenset({"POST", "PATCH"})

# Stand-ins handed to ``Retry.increment`` so it charges the right budget.
_CONNECT_ERROR = ConnectTimeoutError("connect failure")
_READ_ERROR = ProtocolError("read failure")


def classify_error(exc: BaseException) -> ErrorKind:
    """Whether a failed attempt never reached the server, may have, or is not retryable."""
    if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.ProxyError)):
        return "final"
    if isinstance(exc, requests.ConnectTimeout):
        return "connect"
    if isinstance(exc, requests.ConnectionError):
        cause = exc.args[0] if exc.args else None
        if isinstance(cause, MaxRetryError) and isinstance(
            cause.reason, (NewConnectionError, ConnectTimeoutError)
        ):
            return "connect"
        return "read"
    if isinstance(exc, (requests.ReadTimeout, requests.exceptions.ChunkedEncodingError)):
        return "read"
    return "final"


def error_type(exc: BaseException) -> str:
    """The ``error.type`` of an exception: its fully qualified class name."""
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after an attempt.

    Attributes:
        retry: The incremented counters when the attempt is to be retried, else ``None``.
        reason: ``observable_session.retry.reason``: status code as a string or error type.
        backoff: Seconds to sleep before the next attempt.
        retry_after: Whether a ``Retry-After`` header set ``backoff``.
        exhausted: The attempt was retryable, but the budget was spent.
    """

    retry: Retry | None
    reason: str
    backoff: float = 0.0
    retry_after: bool = False
    exhausted: bool = False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry settings of a session, validated once.

    Attributes:
        total: Retries in all (the seed's ``retries_total``).
        connect: Retries after connect failures (``retries_connect``).
        backoff_factor: Backoff is ``backoff_factor * 2 ** (n - 1)`` before retry ``n``.
        backoff_max: Cap on one computed backoff.
        backoff_jitter: Up to this many random seconds are added to a computed backoff.
        retry_after_max: Cap on a ``Retry-After`` wait.
        retry_post_on_status: Retry POST and PATCH on forcelist statuses (the seed does).
        status_forcelist: Statuses that are retried.
    """

    total: int = 2
    connect: int = 1
    backoff_factor: float = 0.5
    backoff_max: float = 60.0
    backoff_jitter: float = 0.0
    retry_after_max: float = 120.0
    retry_post_on_status: bool = True
    status_forcelist: frozenset[int] = field(default=STATUS_FORCELIST)
    _initial: Retry = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("total", "connect"):
            check_count(f"retries_{name}", getattr(self, name))
        for name in ("backoff_factor", "backoff_max", "backoff_jitter", "retry_after_max"):
            check_seconds(name, getattr(self, name))
        check_bool("retry_post_on_status", self.retry_post_on_status)
        object.__setattr__(self, "_initial", self._counters())

    def start(self) -> Retry:
        """Fresh counters for one logical request (immutable, so one object serves all)."""
        return self._initial

    def _counters(self) -> Retry:
        return Retry(
            total=self.total,
            connect=self.connect,
            read=None,
            redirect=False,
            status=None,
            other=0,
            allowed_methods=None,
            status_forcelist=self.status_forcelist,
            backoff_factor=self.backoff_factor,
            raise_on_status=False,
            respect_retry_after_header=True,
        )

    def decide(
        self,
        retry: Retry,
        method: str,
        *,
        response: Response | None = None,
        error: BaseException | None = None,
        replayable: bool = True,
        keyed: bool = False,
    ) -> Decision:
        """Decide on a retry after one attempt that returned ``response`` or raised ``error``.

        ``keyed``: the request carries an idempotency key, so the server can deduplicate a
        POST or PATCH whose read failed, and such a read failure may be retried.
        """
        if error is not None:
            reason = error_type(error)
            kind = classify_error(error)
            if kind == "final" or (
                kind == "read" and method not in IDEMPOTENT_METHODS and not keyed
            ):
                return Decision(None, reason)
            stand_in: Exception = _CONNECT_ERROR if kind == "connect" else _READ_ERROR
            return self._increment(retry, method, reason, replayable, error=stand_in)
        assert response is not None
        status = response.status_code
        reason = str(status)
        has_retry_after = "Retry-After" in response.headers
        if not (
            status in self.status_forcelist or (status in RETRY_AFTER_STATUSES and has_retry_after)
        ):
            return Decision(None, reason)
        if method not in IDEMPOTENT_METHODS and not (
            self.retry_post_on_status and method in _STATUS_RETRY_NON_IDEMPOTENT
        ):
            return Decision(None, reason)
        return self._increment(retry, method, reason, replayable, response=response)

    def _increment(
        self,
        retry: Retry,
        method: str,
        reason: str,
        replayable: bool,
        *,
        response: Response | None = None,
        error: Exception | None = None,
    ) -> Decision:
        if not replayable:
            return Decision(None, reason, exhausted=True)
        try:
            raw = response.raw if response is not None else None
            if not isinstance(raw, BaseHTTPResponse):  # a custom transport's raw body
                raw = None
            new = retry.increment(method=method, response=raw, error=error)
        except MaxRetryError:
            return Decision(None, reason, exhausted=True)
        waited = self._retry_after(response)
        if waited is not None:
            return Decision(new, reason, backoff=waited, retry_after=True)
        return Decision(new, reason, backoff=self.backoff(len(new.history)))

    def backoff(self, n: int) -> float:
        """Seconds to sleep before retry ``n`` (1-based), capped, with optional jitter."""
        # The exponent is capped: 2.0 ** 1024 overflows, and retries_total may be that large.
        value: float = min(self.backoff_max, self.backoff_factor * 2.0 ** min(n - 1, 1000))
        if self.backoff_jitter:
            value = min(self.backoff_max, value + random.uniform(0, self.backoff_jitter))
        return value

    def _retry_after(self, response: Response | None) -> float | None:
        """A valid ``Retry-After`` of a 429/503, capped; ``None`` when absent or invalid."""
        if response is None or response.status_code not in RETRY_AFTER_STATUSES:
            return None
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        try:
            seconds = float(Retry().parse_retry_after(value))
        except (InvalidHeader, ValueError, OverflowError):
            return None
        return min(max(seconds, 0.0), self.retry_after_max)
