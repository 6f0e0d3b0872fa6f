"""The exceptions a :class:`~observable_session.Session` raises.

Every exception is rooted at :class:`RequestsApiError`, and each also subclasses the matching
``requests`` exception, so ``except requests.HTTPError`` keeps working::

    requests.RequestException
     └── RequestsApiError
          ├── ApiHTTPError            (+ requests.HTTPError)       4xx/5xx after retries
          ├── ApiConnectionError      (+ requests.ConnectionError) refused, DNS, reset, truncated
          │    ├── ApiConnectTimeout   (+ ApiTimeout, requests.ConnectTimeout)
          │    ├── ApiSSLError         (+ requests.exceptions.SSLError)
          │    ├── ApiProxyError       (+ requests.exceptions.ProxyError)
          │    └── CircuitOpenError                                open circuit: nothing sent
          ├── ApiTooManyRedirects     (+ requests.TooManyRedirects)
          ├── ApiContentDecodingError (+ requests.exceptions.ContentDecodingError)
          ├── ApiTimeout              (+ requests.Timeout)         connect or read timeout
          │    ├── ApiReadTimeout      (+ requests.ReadTimeout)
          │    └── DeadlineExceeded                                the call's deadline ran out
          ├── InvalidURLError         (+ requests.InvalidURL, ValueError)
          └── InvalidConfigError      (+ ValueError)               bad constructor argument

Messages are masked before the exception is built: no auth header value, no credential after
an auth scheme, no URL userinfo or sensitive query value reaches ``str``, ``repr`` or a
formatted traceback. The chained cause is a masked copy of the original failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from requests import Response

__all__ = [
    "ApiConnectTimeout",
    "ApiConnectionError",
    "ApiContentDecodingError",
    "ApiHTTPError",
    "ApiProxyError",
    "ApiReadTimeout",
    "ApiSSLError",
    "ApiTimeout",
    "ApiTooManyRedirects",
    "AttemptRecord",
    "CircuitOpenError",
    "DeadlineExceeded",
    "InvalidConfigError",
    "InvalidURLError",
    "RequestsApiError",
]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What one attempt of a logical request did.

    Attributes:
        status_code: The response status, or ``None`` when the attempt failed without one.
        error_type: ``error.type`` of the attempt (status code as a string, or the
            fully qualified exception name), or ``None`` when it succeeded.
        duration_s: Seconds the attempt took.
        backoff_s: Seconds slept after it before the next attempt (0.0 for the last one).
    """

    status_code: int | None
    error_type: str | None
    duration_s: float
    backoff_s: float = 0.0


class RequestsApiError(requests.RequestException):
    """Root of every error the session raises.

    Attributes:
        response: The last response, if the server sent one.
        error_type: The ``error.type`` reported in telemetry for the failure, if any.
        status_code: Its status code, or ``None``.
        attempts: How many attempts the logical request made.
        history: One :class:`AttemptRecord` per attempt, in order.
        retry_denied: Why a retry the policy wanted was not made, if one was denied:
            ``"budget"`` (the retry budget), ``"circuit_open"`` (the circuit breaker) or
            ``"retry_after"`` (a 429/503 ``Retry-After`` above ``retry_after_max`` ended the
            call, with ``retry_after_exceeded="raise"``, on any attempt); else ``None``.
        retry_after: Seconds the server asked to wait (``Retry-After``) when
            ``retry_denied == "retry_after"``, else ``None``.
    """

    retry_denied: str | None = None
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        response: Response | None = None,
        attempts: int = 0,
        history: tuple[AttemptRecord, ...] = (),
    ) -> None:
        super().__init__(message, response=response)
        self.status_code: int | None = response.status_code if response is not None else None
        self.attempts = attempts
        self.history = history
        cls = type(self)
        self.error_type: str | None = f"{cls.__module__}.{cls.__qualname__}"
        # requests' RequestException keeps the PreparedRequest, headers and all; a logger
        # that dumps attributes must not find the credentials there.
        self.request = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, attempts={self.attempts})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), self.attempts, self.history), _state(self))


#: Attributes set after construction that a pickle round trip keeps (the response is not
#: pickled: its body and request may hold what the masked message leaves out).
_PICKLED_ATTRIBUTES = ("status_code", "retry_denied", "retry_after", "retry_in")


def _state(error: object) -> dict[str, Any]:
    """What ``BaseException.__setstate__`` restores on the rebuilt copy."""
    found = vars(error)
    return {name: found[name] for name in _PICKLED_ATTRIBUTES if name in found}


def _rebuild(
    cls: type[RequestsApiError], message: str, attempts: int, history: tuple[AttemptRecord, ...]
) -> RequestsApiError:
    return cls(message, attempts=attempts, history=history)


class ApiHTTPError(RequestsApiError, requests.HTTPError):
    """The server answered 4xx or 5xx, after any retries the policy allowed."""


class ApiConnectionError(RequestsApiError, requests.ConnectionError):
    """The connection failed: refused, name resolution, reset, or a truncated response."""


class ApiSSLError(ApiConnectionError, requests.exceptions.SSLError):
    """The TLS handshake or certificate check failed (never retried)."""


class ApiProxyError(ApiConnectionError, requests.exceptions.ProxyError):
    """The proxy refused or failed the connection (never retried)."""


class ApiTooManyRedirects(RequestsApiError, requests.TooManyRedirects):
    """More redirects than ``max_redirects``."""


class ApiContentDecodingError(RequestsApiError, requests.exceptions.ContentDecodingError):
    """The body could not be decoded as its ``Content-Encoding`` says."""


class ApiTimeout(RequestsApiError, requests.Timeout):
    """An attempt timed out while connecting or reading."""


class ApiConnectTimeout(ApiConnectionError, ApiTimeout, requests.ConnectTimeout):
    """Connecting timed out (the server never saw the request)."""


class ApiReadTimeout(ApiTimeout, requests.ReadTimeout):
    """The server did not answer in time (it may have seen the request)."""


class DeadlineExceeded(ApiTimeout):
    """The logical request's deadline ran out before an answer, or before the next retry."""


class InvalidURLError(RequestsApiError, requests.exceptions.InvalidURL):
    """A URL was refused before anything was sent (also a ``ValueError``)."""


class InvalidConfigError(RequestsApiError, ValueError):
    """A constructor or call argument is invalid; the message names it, never its value."""


class CircuitOpenError(ApiConnectionError):
    """The origin's circuit breaker is open: the call failed at once, no socket was opened.

    Attributes:
        retry_in: Seconds until the breaker lets a probe through (0.0 when one is in flight).
    """

    retry_in: float = 0.0


# -- waiting for a job (Session.wait) --------------------------------------------------
#
#     RequestsApiError
#      ├── WaitFailed          fail_when matched a poll's response
#      └── ApiTimeout
#           └── DeadlineExceeded
#                └── WaitTimeout  the wait's deadline ran out, sleeps included


class _WaitErrorMixin:
    """What a wait error carries beyond a request error: the poll count."""

    polls: int

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_wait, (type(self), str(self), self.polls), _state(self))


def _rebuild_wait(
    cls: type[WaitFailed | WaitTimeout], message: str, polls: int
) -> RequestsApiError:
    return cls(message, polls=polls)


class WaitFailed(_WaitErrorMixin, RequestsApiError):
    """``Session.wait``'s ``fail_when`` matched: the job failed.

    Attributes:
        response: The poll response that matched ``fail_when``.
        polls: How many polls the wait made.
    """

    def __init__(self, message: str, *, response: Response | None = None, polls: int = 0) -> None:
        super().__init__(message, response=response)
        self.polls = polls


class WaitTimeout(_WaitErrorMixin, DeadlineExceeded):
    """``Session.wait``'s deadline ran out before ``until`` matched (sleeps included).

    Attributes:
        response: The last poll response, or ``None`` if no poll answered.
        polls: How many polls the wait made.
    """

    def __init__(self, message: str, *, response: Response | None = None, polls: int = 0) -> None:
        super().__init__(message, response=response)
        self.polls = polls


__all__ += ["WaitFailed", "WaitTimeout"]
