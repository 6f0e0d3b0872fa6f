"""The exceptions a :class:`~observable_session.Session` raises.

Every exception is rooted at :class:`RequestsApiError`, and every exception class of
``requests.exceptions`` has a counterpart here that is both a :class:`RequestsApiError` and that
requests class (and so its requests bases: ``ValueError``, ``TypeError``, ...), so
``except requests.X`` keeps working. :func:`counterpart` picks the most specific one, by MRO,
for any requests error class (a third party's subclass included)::

    requests.RequestException
     └── RequestsApiError
          ├── ApiHTTPError              (+ requests.HTTPError)       4xx/5xx after retries
          ├── ApiConnectionError        (+ requests.ConnectionError) refused, DNS, reset
          │    ├── ApiConnectTimeout     (+ ApiTimeout, requests.ConnectTimeout)
          │    ├── ApiSSLError           (+ requests.exceptions.SSLError)
          │    ├── ApiProxyError         (+ requests.exceptions.ProxyError)
          │    ├── ApiChunkedEncodingError (+ requests.exceptions.ChunkedEncodingError) truncated
          │    └── CircuitOpenError                                  open circuit: nothing sent
          ├── ApiTimeout                (+ requests.Timeout)         connect or read timeout
          │    ├── ApiReadTimeout        (+ requests.ReadTimeout)
          │    └── DeadlineExceeded                                  the call's deadline ran out
          ├── ApiTooManyRedirects       (+ requests.TooManyRedirects)
          ├── ApiContentDecodingError   (+ requests.exceptions.ContentDecodingError)
          ├── InvalidURLError           (+ requests.InvalidURL, ValueError)
          │    ├── ApiMissingSchema      (+ requests.exceptions.MissingSchema)
          │    ├── ApiInvalidSchema      (+ requests.exceptions.InvalidSchema)
          │    └── ApiInvalidProxyURL    (+ requests.exceptions.InvalidProxyURL)
          ├── ApiInvalidHeader          (+ requests.exceptions.InvalidHeader, ValueError)
          ├── ApiInvalidJSONError       (+ requests.exceptions.InvalidJSONError)  json= with NaN
          │    └── ApiJSONDecodeError    (+ requests.exceptions.JSONDecodeError)
          ├── ApiURLRequired            (+ requests.exceptions.URLRequired)
          ├── ApiStreamConsumedError    (+ requests.exceptions.StreamConsumedError, TypeError)
          ├── ApiRetryError             (+ requests.exceptions.RetryError)
          ├── ApiUnrewindableBodyError  (+ requests.exceptions.UnrewindableBodyError)
          └── InvalidConfigError        (+ ValueError)               bad constructor argument
               └── InvalidHeaderError   (+ ApiInvalidHeader)          bad header name or value

Where 0.x mapped a requests error to a broader class of ours (a truncated body to
``ApiConnectionError``, a missing or unknown scheme to ``InvalidURLError``), its new class keeps
that base, so existing ``except`` clauses keep catching it.

``str(e)`` is the masked message (the seed's wording). ``e.args`` is what requests puts there,
masked: a masked copy (:class:`~observable_session.redaction.MaskedException`) of the
underlying urllib3 error, or requests' own message. ``e.response`` is set as requests sets
it; ``e.request`` is a copy of the request requests sets, with its credential headers and URL
secrets replaced by ``REDACTED`` (the error may be logged after its session closed).
Messages are masked before the exception is built: no auth header value, no credential after
an auth scheme, no URL userinfo or sensitive query value reaches ``str``, ``repr`` or a
formatted traceback. The chained cause is a masked copy of the original failure.

Errors pickle with their message, ``args`` (as strings), ``error_type``, ``status_code``,
``attempts``, ``history`` and every other attribute set on them; ``request`` and ``response``
are dropped (``None`` after unpickling): they hold sockets and credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from requests import exceptions as rex

if TYPE_CHECKING:
    from requests import PreparedRequest, Response

__all__ = [
    "ApiChunkedEncodingError",
    "ApiConnectTimeout",
    "ApiConnectionError",
    "ApiContentDecodingError",
    "ApiHTTPError",
    "ApiInvalidHeader",
    "ApiInvalidJSONError",
    "ApiInvalidProxyURL",
    "ApiInvalidSchema",
    "ApiJSONDecodeError",
    "ApiMissingSchema",
    "ApiProxyError",
    "ApiReadTimeout",
    "ApiRetryError",
    "ApiSSLError",
    "ApiStreamConsumedError",
    "ApiTimeout",
    "ApiTooManyRedirects",
    "ApiURLRequired",
    "ApiUnrewindableBodyError",
    "AttemptRecord",
    "CircuitOpenError",
    "DeadlineExceeded",
    "InvalidConfigError",
    "InvalidHeaderError",
    "InvalidURLError",
    "RequestsApiError",
    "counterpart",
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


_PLAIN = (str, int, float, bool, type(None))


class RequestsApiError(requests.RequestException):
    """Root of every error the session raises.

    Attributes:
        request: A masked copy of the ``PreparedRequest`` requests sets here (or ``None``).
        response: The last response, if the server sent one.
        error_type: The ``error.type`` reported in telemetry for the failure, if any.
        status_code: Its status code, or ``None``.
        attempts: How many attempts the logical request made.
        history: One :class:`AttemptRecord` per attempt, in order.
        requests_type: The ``requests.exceptions`` class this class stands for.
        retry_denied: Why a retry the policy wanted was not made, if one was denied:
            ``"budget"`` (the retry budget), ``"circuit_open"`` (the circuit breaker) or
            ``"retry_after"`` (a 429/503 ``Retry-After`` above ``retry_after_max`` ended the
            call, with ``retry_after_exceeded="raise"``, on any attempt); else ``None``.
        retry_after: Seconds the server asked to wait (``Retry-After``) when
            ``retry_denied == "retry_after"``, else ``None``.
    """

    requests_type: ClassVar[type[requests.RequestException]] = requests.RequestException
    retry_denied: str | None = None
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        response: Response | None = None,
        request: PreparedRequest | None = None,
        attempts: int = 0,
        history: tuple[AttemptRecord, ...] = (),
        args: tuple[Any, ...] | None = None,
    ) -> None:
        # RequestException's own __init__, not super(): a JSONDecodeError's json base would
        # demand (msg, doc, pos).
        requests.RequestException.__init__(
            self, *(args if args is not None else (message,)), response=response, request=request
        )
        if request is None and isinstance(self.request, requests.PreparedRequest):
            # requests took the response's own request (its live credential headers): an
            # error outlives its session's masking, so it holds the masked copy instead.
            from ._failures import masked_request

            self.request = masked_request(self.request)
        self._message = message
        self.status_code: int | None = response.status_code if response is not None else None
        self.attempts = attempts
        self.history = history
        cls = type(self)
        self.error_type: str | None = f"{cls.__module__}.{cls.__qualname__}"

    def __str__(self) -> str:
        return self._message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._message!r}, attempts={self.attempts})"

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("request", "response")}
        args = tuple(a if isinstance(a, _PLAIN) else str(a) for a in self.args)
        return (_rebuild, (type(self), args), state)


def _rebuild(cls: type[RequestsApiError], args: tuple[Any, ...]) -> RequestsApiError:
    exc = cls.__new__(cls)
    exc.args = args
    exc.request = None
    exc.response = None
    return exc


class ApiHTTPError(RequestsApiError, requests.HTTPError):
    """The server answered 4xx or 5xx, after any retries the policy allowed."""

    requests_type = requests.HTTPError


class ApiConnectionError(RequestsApiError, requests.ConnectionError):
    """The connection failed: refused, name resolution, reset."""

    requests_type: ClassVar[type[requests.RequestException]] = requests.ConnectionError


class ApiSSLError(ApiConnectionError, rex.SSLError):
    """The TLS handshake or certificate check failed (never retried)."""

    requests_type = rex.SSLError


class ApiProxyError(ApiConnectionError, rex.ProxyError):
    """The proxy refused or failed the connection (never retried)."""

    requests_type = rex.ProxyError


class ApiChunkedEncodingError(ApiConnectionError, rex.ChunkedEncodingError):
    """The body ended before its announced length or final chunk (a truncated response)."""

    requests_type = rex.ChunkedEncodingError


class ApiTooManyRedirects(RequestsApiError, requests.TooManyRedirects):
    """More redirects than ``max_redirects``; ``response`` is the last redirect response."""

    requests_type = requests.TooManyRedirects


class ApiContentDecodingError(RequestsApiError, rex.ContentDecodingError):
    """The body could not be decoded as its ``Content-Encoding`` says."""

    requests_type = rex.ContentDecodingError


class ApiTimeout(RequestsApiError, requests.Timeout):
    """An attempt timed out while connecting or reading."""

    requests_type = requests.Timeout


class ApiConnectTimeout(ApiConnectionError, ApiTimeout, requests.ConnectTimeout):
    """Connecting timed out (the server never saw the request)."""

    requests_type = requests.ConnectTimeout


class ApiReadTimeout(ApiTimeout, requests.ReadTimeout):
    """The server did not answer in time (it may have seen the request)."""

    requests_type = requests.ReadTimeout


class DeadlineExceeded(ApiTimeout):
    """The logical request's deadline ran out before an answer, or before the next retry."""


class InvalidURLError(RequestsApiError, rex.InvalidURL):
    """A URL was refused before anything was sent (also a ``ValueError``)."""

    requests_type: ClassVar[type[requests.RequestException]] = rex.InvalidURL


class ApiMissingSchema(InvalidURLError, rex.MissingSchema):
    """The URL has no scheme (``"example.com/x"``); nothing was sent."""

    requests_type = rex.MissingSchema


class ApiInvalidSchema(InvalidURLError, rex.InvalidSchema):
    """No adapter is mounted for the URL's scheme (or a proxy's); nothing was sent."""

    requests_type = rex.InvalidSchema


class ApiInvalidProxyURL(InvalidURLError, rex.InvalidProxyURL):
    """The proxy URL is invalid; nothing was sent."""

    requests_type = rex.InvalidProxyURL


class ApiInvalidHeader(RequestsApiError, rex.InvalidHeader):
    """A header name or value is invalid (CR/LF, leading space, not str/bytes, ...)."""

    requests_type = rex.InvalidHeader


class ApiInvalidJSONError(RequestsApiError, rex.InvalidJSONError):
    """The ``json=`` body cannot be encoded as JSON (NaN, infinity, a non-JSON type)."""

    requests_type = rex.InvalidJSONError


class ApiJSONDecodeError(ApiInvalidJSONError, rex.JSONDecodeError):
    """A body could not be decoded as JSON (also a ``json.JSONDecodeError``)."""

    requests_type = rex.JSONDecodeError

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # json.JSONDecodeError's attributes, which its __init__ (bypassed) would have set.
        self.msg = message
        self.doc = ""
        self.pos = self.lineno = self.colno = 0


class ApiURLRequired(RequestsApiError, rex.URLRequired):
    """No URL was given."""

    requests_type = rex.URLRequired


class ApiStreamConsumedError(RequestsApiError, rex.StreamConsumedError):
    """The body was already read (also a ``TypeError``)."""

    requests_type = rex.StreamConsumedError


class ApiRetryError(RequestsApiError, rex.RetryError):
    """urllib3 gave up retrying (only a mounted adapter of the caller's own can do that)."""

    requests_type = rex.RetryError


class ApiUnrewindableBodyError(RequestsApiError, rex.UnrewindableBodyError):
    """A redirect would re-send a body that cannot be rewound."""

    requests_type = rex.UnrewindableBodyError


class InvalidConfigError(RequestsApiError, ValueError):
    """A constructor or call argument is invalid; the message names it, never its value."""


class InvalidHeaderError(InvalidConfigError, ApiInvalidHeader):
    """A header name or value given to the session or a call is invalid (nothing was sent).

    Both an :class:`InvalidConfigError` (the argument check) and an :class:`ApiInvalidHeader`
    (so ``requests.exceptions.InvalidHeader``, as requests raises for the same header).
    """


def _by_requests_type() -> dict[type[BaseException], type[RequestsApiError]]:
    table: dict[type[BaseException], type[RequestsApiError]] = {}
    stack: list[type[RequestsApiError]] = [RequestsApiError]
    while stack:
        cls = stack.pop()
        if "requests_type" in cls.__dict__:
            table[cls.requests_type] = cls
        stack.extend(cls.__subclasses__())
    return table


_BY_REQUESTS_TYPE = _by_requests_type()


def counterpart(error_type: type[BaseException]) -> type[RequestsApiError]:
    """Our class for a requests error class: the counterpart of its most specific requests base.

    Walks ``error_type``'s MRO, so a third party's subclass of ``requests.ConnectTimeout``
    maps to :class:`ApiConnectTimeout`; anything that is no requests error maps to
    :class:`RequestsApiError`. Our own classes map to themselves.
    """
    if issubclass(error_type, RequestsApiError):
        return error_type
    for base in error_type.__mro__:
        found = _BY_REQUESTS_TYPE.get(base)
        if found is not None:
            return found
    return RequestsApiError


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

    # Pickled by RequestsApiError.__reduce__, which keeps every attribute (polls included).
    polls: int


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
