"""``Session.wait``: poll a job until a predicate holds, inside one deadline, as one span.

The steps: check the arguments and find what to poll (:mod:`._wait_config`),
then loop in :class:`_Wait`: poll (a logical request like any other: retries, deadline cut to
what is left), judge the answer, choose the pause, sleep through the session's ``sleep``.

The rule for a poll that fails after its own retries: it ends the wait with its error, unless
it is retryable by the retry policy's classification (a forcelist 5xx, a 429/503 with
``Retry-After``, a connect failure, or a read failure of an idempotent method) and the deadline
leaves room for the next pause; then the wait goes on. A 4xx always ends it.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from requests import Response

from ._failures import http_error, masked_predicate_error
from ._retry import IDEMPOTENT_METHODS, RETRY_AFTER_STATUSES
from ._wait_config import (
    OVERLOAD_KWARGS,
    PollTarget,
    Predicate,
    WaitSettings,
    poll_target,
    retry_after,
)
from .errors import (
    ApiConnectionError,
    ApiConnectTimeout,
    ApiProxyError,
    ApiSSLError,
    ApiTimeout,
    DeadlineExceeded,
    RequestsApiError,
    WaitFailed,
    WaitTimeout,
)
from .redaction import DEFAULT_REDACTOR
from .telemetry._wait import WaitRecorder

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["wait"]

#: A poll that ran into the wait's deadline with less than this left ends the wait at once.
_DEADLINE_SLACK_S = 0.05


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
                if settings.fail_when is not None and self._holds(settings.fail_when, response):
                    raise self._failed(response)
                if self._holds(settings.until, response):
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
        error = http_error(response, self.session.error_body_limit)
        if not _retryable_status(self.session, method, response):
            raise error
        return response, error

    def _holds(self, predicate: Predicate, response: Response) -> bool:
        """``predicate(response)``; what it raises quoting the body is raised masked."""
        try:
            return bool(predicate(response))
        except BaseException as exc:
            masked = masked_predicate_error(exc, f"wait for {self._where()}")
            if masked is None:
                raise
        raise masked  # outside the handler: the original is not even its __context__

    def _next_pause(self, step: float, response: Response | None) -> tuple[float, bool]:
        settings = self.settings
        told = retry_after(response)
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
    # The polls' overload options are checked now, so a bad one fails before any poll.
    session._overload.override(
        **{k: request_kwargs[k] for k in OVERLOAD_KWARGS if k in request_kwargs}
    )
    poll = poll_target(session, target, request_kwargs, settings)
    limit = settings.deadline if settings.deadline is not None else session.deadline
    return _Wait(session, settings, poll, limit).run()
