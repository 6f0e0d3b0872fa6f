"""The arguments of ``Session.wait``: checked once, and the URL each poll requests.

:class:`WaitSettings` validates every argument before anything is sent (a typed error that
names the argument, never its value); :func:`poll_target` turns the target (a URL, or a submit
Response's ``Operation-Location``/``Location``) into what every poll requests, with the
redirect rule for credentials applied to a location on another origin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from requests import PreparedRequest, Response
from requests.utils import get_netrc_auth
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from . import _urls
from .errors import InvalidConfigError, InvalidURLError

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["PollTarget", "Predicate", "WaitSettings", "poll_target", "retry_after"]

Predicate = Callable[[Response], object]

#: The per-call overload options of ``Session.request`` a wait passes on to its polls.
OVERLOAD_KWARGS = ("retry_budget", "circuit_breaker", "idempotency_key", "retry_after_exceeded")

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
        # The overload options of ``request``, per poll (validated before the first poll).
        *OVERLOAD_KWARGS,
    }
)
#: A pause longer than this is refused (a day: ``time.sleep`` overflows long before
#: ``inf``, and a wait that sleeps longer between two polls is not a wait).
MAX_PAUSE_S = 86400.0
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


_PAUSE_RULE = ">= 0 and <= 86400 (seconds)"


def _number(name: str, value: object, *, low: float, rule: str, high: float = math.inf) -> float:
    """``value`` as a float if it is a finite real number in [``low``, ``high``], else an error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidConfigError(f"{name} must be a finite number {rule}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float: refused like infinity
        number = math.inf
    if not math.isfinite(number) or number < low or number > high:
        raise InvalidConfigError(f"{name} must be a finite number {rule}")
    return number


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
        start = _number("interval", interval, low=0.0, rule=_PAUSE_RULE, high=MAX_PAUSE_S)
        cap = _number("max_interval", max_interval, low=0.0, rule=_PAUSE_RULE, high=MAX_PAUSE_S)
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
    if _urls.origin_of(url) != _urls.origin_of(submitted):
        _withhold_credentials(session, url, kwargs)
    route = _urls.template_path(session.base_url, template) if template else None
    pause = retry_after(response)
    if pause is not None:
        return PollTarget(url, route, kwargs, min(pause, settings.max_interval), True)
    return PollTarget(url, route, kwargs, settings.interval, False)


def _no_auth(request: PreparedRequest) -> PreparedRequest:
    """An ``auth=`` that adds nothing: keeps the session's ``auth`` off another origin."""
    return request


def _withhold_credentials(session: Session, url: str, kwargs: dict[str, Any]) -> None:
    """As on a redirect to another origin: no auth headers, no Authorization, no ``auth``.

    The auth headers are withheld unless ``auth_origins``/``base_url`` allow ``url`` (then
    ``prepare_request`` decides); an ``Authorization`` in the session's ``headers`` and the
    session's ``auth`` are dropped, as requests' ``rebuild_auth`` drops them (netrc for the
    new host applies, as there). What the caller passed to ``wait`` itself is kept.
    """
    explicit = {k.lower() for k in kwargs.get("headers") or {}}
    names = {n.lower(): n for n in session.auth_headers}
    withheld = set() if session._auth_origins else set(names)
    if "authorization" not in names or not session._auth_origins:
        withheld.add("authorization")
    headers = {n: None for n in withheld if n not in explicit}
    kwargs["headers"] = {**(kwargs.get("headers") or {}), **headers}
    if session.auth is not None and kwargs.get("auth") is None:  # auth=None: the session's
        netrc = get_netrc_auth(url) if session.trust_env else None
        kwargs["auth"] = netrc or _no_auth


def retry_after(response: Response | None) -> float | None:
    """A valid ``Retry-After`` (seconds or HTTP date) as seconds >= 0, else ``None``."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(Retry().parse_retry_after(value))
    except OverflowError:
        # Digits too many for a float: urllib3 >= 2.6 caps them itself, older ones do not.
        # Every caller caps the pause, so "very long" is the faithful reading.
        return math.inf
    except (InvalidHeader, ValueError):
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None
