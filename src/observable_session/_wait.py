"""``Session.wait``: poll a job until a predicate holds, inside one deadline, as one span.

The steps: check the arguments (:class:`WaitSettings`), find what to poll (:func:`poll_target`),
then loop in :class:`_Wait`: poll (a logical request like any other: retries, deadline cut to
what is left), judge the answer, choose the pause, sleep through the session's ``sleep``.

The rule for a poll that fails after its own retries: it ends the wait with its error, unless
it is retryable by the retry policy's classification (a forcelist 5xx, a 429/503 with
``Retry-After``, a connect failure, or a read failure of an idempotent method) and the deadline
leaves room for the next pause; then the wait goes on. A 4xx always ends it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from requests import Response
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from . import _urls
from ._failures import http_error
from ._retry import IDEMPOTENT_METHODS, RETRY_AFTER_STATUSES
from .errors import (
    ApiConnectionError,
    ApiConnectTimeout,
    ApiProxyError,
    ApiSSLError,
    ApiTimeout,
    DeadlineExceeded,
    InvalidConfigError,
    InvalidURLError,
    RequestsApiError,
    WaitFailed,
    WaitTimeout,
)
from .redaction import DEFAULT_REDACTOR
from .telemetry._wait import WaitRecorder

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["PollTarget", "WaitSettings", "poll_target", "wait"]

Predicate = Callable[[Response], object]

#: Keyword arguments a poll passes on to ``Session.request``.
_REQUEST_KWARGS = frozenset(
    {
        "params",
        "data",
        "headers",
        "cookies",
        "files",
        "auth",
        "timeout",
        "allow_redirects",
        "proxies",
        "hooks",
        "stream",
        "verify",
        "cert",
        "json",
        "path_params",
        "url_template",
    }
)
#: A poll that ran into the wait's deadline with less than this left ends the wait at once.
_DEADLINE_SLACK_S = 0.05
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _number(name: str, value: object, *, low: float, rule: str) -> float:
    """``value`` as a float if it is a finite real number >= ``low``, else a typed error."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < low
    ):
        raise InvalidConfigError(f"{name} must be a finite number {rule}")
    return float(value)


@dataclass(frozen=True, slots=True)
class WaitSettings:
    """The validated arguments of one wait.

    Attributes:
        until: Ends the wait with the response it is true for.
        fail_when: Ends the wait with :class:`WaitFailed` (checked before ``until``).
        interval: Seconds before the second poll.
        max_interval: Cap on every pause, ``Retry-After`` included.
        multiplier: Each pause is the previous one times this (>= 1).
        jitter: Each computed pause is scaled by a random factor in ``[1 - jitter, 1 + jitter]``.
        deadline: Seconds the whole wait may take, or ``None`` for no bound.
        method: The polls' HTTP method.
    """

    until: Predicate
    fail_when: Predicate | None
    interval: float
    max_interval: float
    multiplier: float
    jitter: float
    deadline: float | None
    method: str

    @classmethod
    def check(
        cls,
        *,
        until: object,
        fail_when: object,
        interval: object,
        max_interval: object,
        multiplier: object,
        jitter: object,
        deadline: object,
        method: object,
        request_kwargs: Mapping[str, object],
    ) -> WaitSettings:
        """Validate every argument before anything is sent; errors name the argument only."""
        if not callable(until):
            raise InvalidConfigError("until must be a callable taking a Response")
        if fail_when is not None and not callable(fail_when):
            raise InvalidConfigError("fail_when must be a callable taking a Response, or None")
        start = _number("interval", interval, low=0.0, rule=">= 0")
        cap = _number("max_interval", max_interval, low=0.0, rule=">= 0")
        if cap < start:
            raise InvalidConfigError("max_interval must be >= interval")
        factor = _number("multiplier", multiplier, low=1.0, rule=">= 1")
        spread = _number("jitter", jitter, low=0.0, rule="between 0 and 1")
        if spread > 1:
            raise InvalidConfigError("jitter must be a finite number between 0 and 1")
        limit = None
        if deadline is not None:
            limit = _number("deadline", deadline, low=0.0, rule="> 0 (seconds), or None")
            if limit == 0:
                raise InvalidConfigError("deadline must be a finite number > 0 (seconds), or None")
        if not isinstance(method, str) or not method or not set(method) <= _TOKEN_CHARS:
            raise InvalidConfigError("method must be an HTTP method name")
        for key in request_kwargs:
            if key == "raise_for_status":
                raise InvalidConfigError(
                    "raise_for_status is not accepted by wait: the poll error rule decides"
                )
            if key not in _REQUEST_KWARGS:
                raise InvalidConfigError(f"wait got an unexpected keyword argument {key!r}")
        return cls(
            until,
            fail_when,
            start,
            cap,
            factor,
            spread,
            limit,
            method.upper(),
        )


@dataclass(frozen=True, slots=True)
class PollTarget:
    """What each poll requests.

    Attributes:
        url: The URL passed to ``Session.request`` (relative to ``base_url``, or absolute).
        route: ``url.template`` of the polls, or ``None``.
        kwargs: The keyword arguments of every poll.
        first_pause: Seconds to wait before the first poll (a submit response's Retry-After).
        first_from_retry_after: Whether ``first_pause`` came from ``Retry-After``.
    """

    url: str
    route: str | None
    kwargs: dict[str, Any]
    first_pause: float = 0.0
    first_from_retry_after: bool = False


def poll_target(
    session: Session, target: object, request_kwargs: dict[str, Any], settings: WaitSettings
) -> PollTarget:
    """The URL to poll: ``target`` itself, or a submit response's Operation-Location/Location."""
    kwargs = dict(request_kwargs)
    template = kwargs.get("url_template")
    if isinstance(target, Response):
        if "path_params" in kwargs:
            raise InvalidConfigError("path_params needs a URL target, not a Response")
        return _from_response(session, target, kwargs, template, settings)
    if isinstance(target, bytes):
        target = target.decode("utf-8")
    if not isinstance(target, str):
        raise InvalidConfigError("target must be a URL (str) or the Response of a submit call")
    if "path_params" in kwargs:
        template = template or target
    route = _urls.template_path(session.base_url, template) if template else None
    return PollTarget(target, route, kwargs)


def _from_response(
    session: Session,
    response: Response,
    kwargs: dict[str, Any],
    template: str | None,
    settings: WaitSettings,
) -> PollTarget:
    location = response.headers.get("Operation-Location") or response.headers.get("Location")
    if not location:
        raise InvalidConfigError(
            "target Response has neither an Operation-Location nor a Location header"
        )
    submitted = response.url or session.base_url or ""
    try:
        url = urljoin(submitted, location.strip())
    except ValueError:
        raise InvalidURLError("target Response's poll location is not a valid URL") from None
    if _urls.origin_of(url) is None:
        raise InvalidURLError("target Response's poll location is not an http(s) URL")
    if not session._auth_origins and _urls.origin_of(url) != _urls.origin_of(submitted):
        # As on a redirect: a location on another origin gets none of the auth headers.
        explicit = {k.lower() for k in kwargs.get("headers") or {}}
        withheld = {n: None for n in session.auth_headers if n.lower() not in explicit}
        kwargs["headers"] = {**(kwargs.get("headers") or {}), **withheld}
    route = _urls.template_path(session.base_url, template) if template else None
    pause = _retry_after(response)
    if pause is not None:
        return PollTarget(url, route, kwargs, min(pause, settings.max_interval), True)
    return PollTarget(url, route, kwargs, settings.interval, False)


def _retry_after(response: Response | None) -> float | None:
    """A valid ``Retry-After`` (seconds or HTTP date) as seconds >= 0, else ``None``."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(Retry().parse_retry_after(value))
    except (InvalidHeader, ValueError, OverflowError):
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _retryable_status(session: Session, method: str, response: Response) -> bool:
    """A 5xx the retry policy would retry for ``method`` (4xx never go on)."""
    policy = session.retry_policy
    status = response.status_code
    if status < 500:
        return False
    if not (
        status in policy.status_forcelist
        or (status in RETRY_AFTER_STATUSES and "Retry-After" in response.headers)
    ):
        return False
    return method in IDEMPOTENT_METHODS or (
        policy.retry_post_on_status and method in ("POST", "PATCH")
    )


def _retryable_error(method: str, error: RequestsApiError) -> bool:
    """A connect failure (any method) or a read failure of an idempotent method."""
    if isinstance(error, (ApiSSLError, ApiProxyError)):
        return False
    if isinstance(error, ApiConnectTimeout):
        return True
    # The typed error cannot tell a refused connection from a reset one: for a method that
    # is not idempotent, assume the server may have seen it.
    if isinstance(error, (ApiConnectionError, ApiTimeout)):
        return method in IDEMPOTENT_METHODS
    return False


class _Wait:
    """The state of one wait: polls so far, the last response, the clock."""

    def __init__(
        self, session: Session, settings: WaitSettings, target: PollTarget, deadline: float | None
    ) -> None:
        self.session = session
        self.settings = settings
        self.target = target
        self.deadline = deadline
        self.started = time.monotonic()
        self.deadline_at = self.started + deadline if deadline is not None else None
        self.polls = 0
        self.last: Response | None = None
        self.deadline_cause: DeadlineExceeded | None = None
        self.recorder = WaitRecorder(session._telemetry, settings.method, target.route)

    def run(self) -> Response:
        """Wait, record the outcome, return the final response or raise."""
        self.recorder.start()
        outcome, status, error_type = "error", None, None
        try:
            response = self._loop()
            outcome, status = "done", response.status_code
            return response
        except WaitTimeout as exc:
            outcome, status, error_type = "timeout", exc.status_code, exc.error_type
            raise
        except WaitFailed as exc:
            outcome, status, error_type = "failed", exc.status_code, exc.error_type
            raise
        except RequestsApiError as exc:
            status, error_type = exc.status_code, exc.error_type
            raise
        except BaseException as exc:
            cls = type(exc)
            error_type = f"{cls.__module__}.{cls.__qualname__}"
            raise
        finally:
            self.recorder.end(
                outcome, self.polls, time.monotonic() - self.started, status, error_type
            )

    def _loop(self) -> Response:
        settings = self.settings
        if self.target.first_pause > 0:
            self._pause(self.target.first_pause, self.target.first_from_retry_after)
        step = settings.interval
        while True:
            response, failure = self._poll()
            if failure is None:
                assert response is not None
                if settings.fail_when is not None and settings.fail_when(response):
                    raise self._failed(response)
                if settings.until(response):
                    return response
            pause, from_retry_after = self._next_pause(step, response)
            step = min(settings.max_interval, step * settings.multiplier)
            if (
                failure is not None
                and failure is not self.deadline_cause
                and not self._room_for(pause)
            ):
                raise failure
            self._pause(pause, from_retry_after)

    def _poll(self) -> tuple[Response | None, RequestsApiError | None]:
        """One poll; a failure that lets the wait go on is returned, any other raised."""
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            raise self._timeout(self.deadline_cause)
        self.deadline_cause = None
        if self.last is not None:
            self.last.close()  # a streamed poll response must not hold its connection
        own = self.session.deadline
        cut = remaining is not None and (own is None or remaining <= own)
        poll_deadline = remaining if cut else own
        self.polls += 1
        method = self.settings.method
        try:
            response = self.session.request(
                method,
                self.target.url,
                deadline=poll_deadline,
                raise_for_status=False,
                **self.target.kwargs,
            )
        except DeadlineExceeded as exc:
            self.last = exc.response if exc.response is not None else self.last
            if cut:
                # The wait's own deadline, cut for this poll. The poll may have given up
                # early (its next retry's backoff did not fit): then the wait still pauses
                # and polls while there is room, and times out at the deadline, not before.
                left = self._remaining()
                if left is None or left <= _DEADLINE_SLACK_S:
                    raise self._timeout(exc)  # noqa: B904 - the cause is set, masked
                self.deadline_cause = exc
                return None, exc
            if not _retryable_error(method, exc):
                raise
            return None, exc
        except RequestsApiError as exc:
            self.last = exc.response if exc.response is not None else self.last
            if not _retryable_error(method, exc):
                raise
            return None, exc
        self.last = response
        if response.status_code < 400:
            return response, None
        error = http_error(response)
        if not _retryable_status(self.session, method, response):
            raise error
        return response, error

    def _next_pause(self, step: float, response: Response | None) -> tuple[float, bool]:
        settings = self.settings
        told = _retry_after(response)
        if told is not None:
            return min(told, settings.max_interval), True
        spread = settings.jitter
        factor = random.uniform(1.0 - spread, 1.0 + spread) if spread else 1.0
        return min(settings.max_interval, step * factor), False

    def _remaining(self) -> float | None:
        return None if self.deadline_at is None else self.deadline_at - time.monotonic()

    def _room_for(self, pause: float) -> bool:
        remaining = self._remaining()
        return remaining is None or pause < remaining

    def _pause(self, seconds: float, from_retry_after: bool) -> None:
        """Sleep before the next poll; a pause the deadline cuts ends the wait at the deadline."""
        remaining = self._remaining()
        if remaining is not None and seconds >= remaining:
            if remaining > 0:
                self.session._sleep(remaining)
            raise self._timeout(self.deadline_cause)
        self.recorder.poll_scheduled(seconds, from_retry_after, self.polls + 1)
        if seconds > 0:
            self.session._sleep(seconds)

    def _where(self) -> str:
        return f"{self.settings.method} {DEFAULT_REDACTOR.mask_url(self.target.url)}"

    def _timeout(self, cause: BaseException | None) -> WaitTimeout:
        last = f"; last: {self.last.status_code}" if self.last is not None else ""
        message = (
            f"wait for {self._where()}: deadline of {self.deadline}s exceeded "
            f"after {self.polls} polls{last}"
        )
        exc = WaitTimeout(DEFAULT_REDACTOR.mask(message), response=self.last, polls=self.polls)
        if cause is not None:
            exc.__cause__ = DEFAULT_REDACTOR.sanitize_exception(cause)
            exc.__suppress_context__ = True
        return exc

    def _failed(self, response: Response) -> WaitFailed:
        message = (
            f"wait for {self._where()}: fail_when matched after {self.polls} polls "
            f"(status {response.status_code})"
        )
        return WaitFailed(DEFAULT_REDACTOR.mask(message), response=response, polls=self.polls)


def wait(
    session: Session,
    target: object,
    *,
    until: object,
    fail_when: object = None,
    interval: object = 1.0,
    max_interval: object = 30.0,
    multiplier: object = 1.5,
    jitter: object = 0.1,
    deadline: object = None,
    method: object = "GET",
    request_kwargs: dict[str, Any],
) -> Response:
    """Validate, find the poll target, and run one wait (see :meth:`Session.wait`)."""
    settings = WaitSettings.check(
        until=until,
        fail_when=fail_when,
        interval=interval,
        max_interval=max_interval,
        multiplier=multiplier,
        jitter=jitter,
        deadline=deadline,
        method=method,
        request_kwargs=request_kwargs,
    )
    poll = poll_target(session, target, request_kwargs, settings)
    limit = settings.deadline if settings.deadline is not None else session.deadline
    return _Wait(session, settings, poll, limit).run()
