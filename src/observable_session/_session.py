"""The session: ``request`` -> ``send`` -> ``_send_hop`` -> ``_send_with_retries`` -> ``_attempt``.

``send`` opens one logical request (its span, its deadline, its retry counters) and hands
each hop of it to ``_send_hop``, which does what ``requests.Session.send`` does (hooks,
cookies, redirects) except that the adapter call goes through ``_send_with_retries``: one
adapter call per attempt, the mounted adapters never retrying themselves. A redirect hop
re-enters ``send`` from ``resolve_redirects``; it joins the logical request already open in
this context instead of opening another, so hops are resends of the same logical request.
"""

from __future__ import annotations

import contextlib
import operator
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from datetime import timedelta
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any

import requests
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from requests import PreparedRequest, Request, Response
from requests.adapters import BaseAdapter
from requests.auth import AuthBase
from requests.cookies import (
    RequestsCookieJar,
    cookiejar_from_dict,
    extract_cookies_to_jar,
    merge_cookies,
)
from requests.hooks import dispatch_hook
from requests.sessions import merge_hooks, merge_setting
from requests.structures import CaseInsensitiveDict
from requests.utils import get_netrc_auth, resolve_proxies, rewind_body
from urllib3.exceptions import ReadTimeoutError
from urllib3.util import Timeout
from urllib3.util.retry import Retry

from . import _bodies, _config, _deadline, _requests_state, _reuse, _urls
from ._forksafe import renew_after_fork

if TYPE_CHECKING:
    from requests.sessions import _Settings
from ._auth import AuthHeaders
from ._call import ACTIVE as _ACTIVE
from ._call import PENDING as _PENDING
from ._call import Call as _Call
from ._call import CallOptions as _CallOptions
from ._config import DEFAULT_ERROR_BODY_LIMIT
from ._credentials import Credentials, masked_unicode_error, masked_value_error, origin_bound
from ._environment import Environment as _Environment
from ._failures import deadline_error, http_error, wrap
from ._retry import RetryPolicy, error_type
from ._version import __version__
from .errors import (
    AttemptRecord,
    InvalidConfigError,
    InvalidURLError,
    RequestsApiError,
)
from .policies import CircuitBreaker, RetryBudget
from .policies._pipeline import (
    DENIED_BY_RETRY_AFTER,
    KEEP,
    OverloadPolicy,
    annotate_response_error,
)
from .redaction import DEFAULT_REDACTOR
from .telemetry._instruments import Telemetry
from .telemetry._record import CallRecorder, TargetCache

__all__ = ["DEFAULT_TIMEOUT", "Session"]

DEFAULT_TIMEOUT = 30.0
"""Seconds each attempt may wait to connect and between bytes read, when none is given."""

USER_AGENT = f"observable-session/{__version__}"

_UNSET: Any = object()
# add_user_agent's read-modify-write of the header (rare: one lock for every session).
_UA_LOCK = threading.Lock()


renew_after_fork(sys.modules[__name__], "_UA_LOCK")


def _lazy_adapters(cls: type[Session]) -> bool:
    """Whether sessions of ``cls`` may set requests' state themselves, adapters lazily.

    Only when nothing requests' ``__init__`` calls was patched, ``requests.Session`` comes
    right after :class:`Session` in the MRO (no other base's ``__init__`` is skipped) and
    ``cls`` keeps this class's ``mount``, ``adapters``, ``headers`` and ``__setattr__``:
    an override (or a spy patched in) sees what requests' ``__init__`` does with them.
    """
    base = Session.__bases__[0]  # requests.Session, even while a test suite swaps it
    if cls is not Session:
        mro = cls.__mro__
        if mro[mro.index(Session) + 1] is not base:
            return False
    return _OVERRIDABLE(cls) == _OWN_OVERRIDABLE and _requests_state.untouched(base)


def _refuse_retries(adapter: BaseAdapter) -> None:
    retries = getattr(adapter, "max_retries", None)
    if isinstance(retries, Retry) and retries.total not in (0, False):
        raise InvalidConfigError(
            "mounted adapters must have max_retries=0: the session retries itself"
        )


def _install(adapter: BaseAdapter) -> None:
    """What ``mount`` does to an adapter, for requests' default ones built at first use."""
    _refuse_retries(adapter)
    _deadline.install(adapter)


class _Cache:
    """What a session remembers between requests: prepared URLs and headers, targets, env.

    One slotted object, so that a session's own attributes stay few enough (under 30) for
    CPython to keep its ``__dict__`` compact: a session per job, by the thousand.
    """

    __slots__ = ("env", "headers", "targets", "urls")

    def __init__(self) -> None:
        self.targets = TargetCache()
        self.urls: dict[str, str] = {}
        self.headers: tuple[tuple[bool, tuple[Any, ...]], Any] | None = None
        self.env: _Environment | None = None


class Session(requests.Session):
    """A ``requests.Session`` that retries attempt by attempt, traced, measured and masked.

    Args:
        base_url: Base URL that relative URLs are joined to; an absolute http(s) URL.
        headers: Headers to include in all requests (after requests' defaults).
        auth_headers: Authorization headers to include in all requests to ``base_url``'s
            origin (and ``auth_origins``). Values are masked in errors, logs and traces.
        retries_total: Retries in all, per logical request. Default 2.
        retries_connect: Retries after connect failures. Default 1.
        backoff_factor: Seconds; the sleep before retry ``n`` is
            ``backoff_factor * 2 ** (n - 1)``. Default 0.5.
        auth_origins: More URLs whose origins may receive the auth headers.
        timeout: Per-attempt timeout when a call gives none. Default 30 s.
        deadline: Seconds a logical request may take, all attempts and sleeps together.
        retry_post_on_status: Retry POST and PATCH on forcelist statuses, as the seed does.
        raise_for_status: ``request()`` raises :class:`ApiHTTPError` on 4xx/5xx.
        backoff_max: Cap on one computed backoff.
        backoff_jitter: Random seconds (up to this) added to a computed backoff.
        retry_after_max: Cap on a ``Retry-After`` wait.
        tracer_provider: Where spans go; the global provider by default.
        meter_provider: Where metric points go; the global provider by default.
        sleep: The function that sleeps between attempts (tests pass a recorder).
        retry_budget: Retry throttling per origin (gRPC A6); a fresh
            ``RetryBudget(max_tokens=10, token_ratio=0.1)`` by default, ``None`` turns it off.
        circuit_breaker: A :class:`CircuitBreaker` per origin; off (``None``) by default.
        idempotency_key: ``True`` (``Idempotency-Key``) or a header name: every POST and
            PATCH gets a UUID4 key, the same on every attempt and hop. Default ``False``.
        retry_after_exceeded: ``"cap"`` (default) waits at most ``retry_after_max``;
            ``"raise"`` ends the call with the HTTP error carrying ``retry_after`` instead.
        error_body_limit: Bytes of a 4xx/5xx body read for its error message and drained
            before a retry (``stream=True``); a longer body's connection is closed. 64 KiB.

    Every argument is checked here, and again when assigned, raising
    :class:`InvalidConfigError` that names the argument and the rule, never the value.
    """

    def __init__(
        self,
        *args: Any,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth_headers: Mapping[str, str] | None = None,
        retries_total: int = 2,
        retries_connect: int = 1,
        backoff_factor: float = 0.5,
        auth_origins: Iterable[str] | None = None,
        timeout: float | tuple[float, float] | None = DEFAULT_TIMEOUT,
        deadline: float | None = None,
        retry_post_on_status: bool = True,
        raise_for_status: bool = True,
        backoff_max: float = 60.0,
        backoff_jitter: float = 0.0,
        retry_after_max: float = 120.0,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retry_budget: RetryBudget | None = KEEP,
        circuit_breaker: CircuitBreaker | None = None,
        idempotency_key: bool | str = False,
        retry_after_exceeded: str = "cap",
        error_body_limit: int = DEFAULT_ERROR_BODY_LIMIT,
        **kwargs: Any,
    ) -> None:
        # Validate everything before touching any state: no half-built session.
        base = (
            _reuse.reused("base_url", _urls.validate_base_url, base_url)
            if base_url is not None
            else None
        )
        _config.check_headers(headers)
        _config.check_mapping("auth_headers", auth_headers)
        checked_timeout = _config.check_timeout(timeout)
        _config.check_bool("raise_for_status", raise_for_status)
        _config.check_callable("sleep", sleep)
        _config.check_provider("tracer_provider", tracer_provider, "get_tracer")
        _config.check_provider("meter_provider", meter_provider, "get_meter")
        _config.check_byte_limit("error_body_limit", error_body_limit)
        policy = _reuse.reused(
            "retry_policy",
            RetryPolicy,
            retries_total,
            retries_connect,
            backoff_factor,
            backoff_max,
            backoff_jitter,
            retry_after_max,
            retry_post_on_status,
        )
        overload = OverloadPolicy.build(
            retry_budget=RetryBudget() if retry_budget is KEEP else retry_budget,
            circuit_breaker=circuit_breaker,
            idempotency_key=idempotency_key,
            retry_after_exceeded=retry_after_exceeded,
            retry_after_max=policy.retry_after_max,
        )
        origins = (
            _reuse.reused("origins", self._check_origins, base)
            if auth_origins is None
            else self._check_origins(base, auth_origins)
        )
        _config.check_deadline(deadline)
        credentials = Credentials()
        auth = AuthHeaders(auth_headers, credentials=credentials)
        credentials.register_url(base)
        if not args and not kwargs and _lazy_adapters(type(self)):
            _requests_state.set_requests_state(self)
        else:
            super().__init__(*args, **kwargs)
        self._base_url = base
        self._credentials = credentials
        self._auth_headers = auth
        self._auth_origins = origins
        self._policy = policy
        self._overload = overload
        # Checked above: set directly (the setters would check each a second time).
        self._timeout = checked_timeout
        self._deadline = deadline
        self._raise_for_status = raise_for_status
        self._sleep = sleep
        self._error_body_limit = error_body_limit
        self._telemetry = Telemetry(tracer_provider, meter_provider)
        self._cache = _Cache()
        self._closed = False
        if headers:
            credentials.register_headers(headers)  # masked from construction, not first use
            self.headers.update(headers)
        if not any(k.lower() == "user-agent" for k in (headers or {})):
            self.headers["User-Agent"] = USER_AGENT

    # -- configuration ------------------------------------------------------------------

    @staticmethod
    def _check_origins(
        base: str | None, auth_origins: Iterable[str] | None = None
    ) -> frozenset[_urls.Origin]:
        origins: set[_urls.Origin] = set()
        if base is not None:
            base_origin = _urls.origin_of(base)
            assert base_origin is not None
            origins.add(base_origin)
        for url in _config.check_origin_urls("auth_origins", auth_origins):
            origin = _urls.origin_of(url) if isinstance(url, str) else None
            if origin is None:
                raise InvalidConfigError("auth_origins entries must be absolute http(s) URLs")
            origins.add(origin)
        return frozenset(origins)

    @property
    def base_url(self) -> str | None:
        """Return the base URL."""
        return self._base_url

    @base_url.setter
    def base_url(self, value: str | None) -> None:
        base = _urls.validate_base_url(value) if value is not None else None
        old = _urls.origin_of(self._base_url) if self._base_url else None
        origins = set(self._auth_origins) - ({old} if old else set())
        if base is not None:
            new_origin = _urls.origin_of(base)
            assert new_origin is not None
            origins.add(new_origin)
        self._credentials.register_url(base)
        self._base_url = base
        self._auth_origins = frozenset(origins)

    @property
    def timeout(self) -> Any:
        """The per-attempt timeout used when a call gives none (checked when set)."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: Any) -> None:
        self._timeout = _config.check_timeout(value)

    @property
    def deadline(self) -> float | None:
        """Seconds a logical request may take when a call gives none (checked when set)."""
        return self._deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        _config.check_deadline(value)
        self._deadline = value

    @property
    def headers(self) -> Any:
        """The headers sent with every request (checked when the mapping is replaced).

        Kept in the instance's ``headers`` entry, as requests keeps them.
        """
        try:
            return self.__dict__["headers"]
        except KeyError:  # a session made by __new__ alone, as requests' would be
            raise AttributeError("headers") from None

    @headers.setter
    def headers(self, value: Any) -> None:
        if value is None:  # requests itself needs a mapping here
            raise InvalidConfigError("headers must be a mapping of header names to str values")
        # The first assignment is requests.Session.__init__'s own default_headers(): known
        # good, and checking it would cost a third of requests.Session() itself.
        state = self.__dict__
        trusted = "headers" not in state and type(value) is CaseInsensitiveDict
        state["headers"] = value if trusted else _config.check_headers(value)
        credentials = state.get("_credentials")
        if not trusted and credentials is not None:
            credentials.register_headers(value)  # masked from the assignment on

    @property
    def auth(self) -> Any:
        """requests' default auth (a ``(user, password)`` tuple or an auth object).

        Kept in the instance's ``auth`` entry, as requests keeps it; its password is masked
        from the assignment on, not only from the first request that sends it.
        """
        try:
            return self.__dict__["auth"]
        except KeyError:  # a session made by __new__ alone, as requests' would be
            raise AttributeError("auth") from None

    @auth.setter
    def auth(self, value: Any) -> None:
        state = self.__dict__
        state["auth"] = value
        credentials = state.get("_credentials")
        if value is not None and credentials is not None:
            credentials.register_auth(value)

    @property
    def raise_for_status(self) -> bool:
        """Whether ``request()`` raises :class:`ApiHTTPError` on 4xx/5xx."""
        return self._raise_for_status

    @raise_for_status.setter
    def raise_for_status(self, value: bool) -> None:
        self._raise_for_status = _config.check_bool("raise_for_status", value)

    @property
    def error_body_limit(self) -> int:
        """Bytes of an error body read for its message, and drained before a retry."""
        return self._error_body_limit

    @error_body_limit.setter
    def error_body_limit(self, value: int) -> None:
        self._error_body_limit = _config.check_byte_limit("error_body_limit", value)

    @property
    def auth_headers(self) -> AuthHeaders:
        """The auth headers; assigning a value (or a new mapping) rotates the credential."""
        return self._auth_headers

    @auth_headers.setter
    def auth_headers(self, value: Mapping[str, str] | None) -> None:
        _config.check_mapping("auth_headers", value)
        # The new values are registered before the mapping is swapped in; the old ones stay
        # masked while the session lives: a request already sent may still echo them.
        self._auth_headers = AuthHeaders(value, credentials=self._credentials)

    @property
    def retry_policy(self) -> RetryPolicy:
        """The immutable retry settings of this session."""
        return self._policy

    @property
    def retry_budget(self) -> RetryBudget | None:
        """The session's retry budget (``None``: off)."""
        return self._overload.budget

    @property
    def circuit_breaker(self) -> CircuitBreaker | None:
        """The session's circuit breaker (``None``: off)."""
        return self._overload.breaker

    def add_user_agent(self, user_agent: str) -> None:
        """Append ``user_agent`` to the User-Agent header unless that token is already there."""
        if (
            not isinstance(user_agent, str)
            or not user_agent.strip()
            or any(c in user_agent for c in "\r\n")
        ):
            raise InvalidConfigError("user_agent must be a non-empty str without CR/LF")
        with _UA_LOCK:
            current = str(self.headers.get("User-Agent", ""))
            tokens = current.split()
            for token in user_agent.split():
                if token not in tokens:
                    tokens.append(token)
            self.headers["User-Agent"] = " ".join(tokens)

    def refresh_environment(self) -> None:
        """Re-read proxy, CA bundle and netrc settings now.

        The session reads them at its first request and again when one of the proxy,
        CA-bundle or ``NETRC`` variables changes; this also picks up the operating system's
        proxy settings and a netrc file created since.
        """
        self._cache.env = _Environment.read()

    @property
    def _env(self) -> _Environment:
        # Read at first use: creating and closing a session (one per job) stays cheap.
        cache = self._cache
        env = cache.env
        if env is None:
            env = cache.env = _Environment.read()
        return env

    @property
    def adapters(self) -> MutableMapping[str, BaseAdapter]:
        """The mounted adapters; requests' two default ones are built at first read.

        Kept in the instance's ``adapters`` entry, as requests keeps them. Deleting them
        leaves the session as a new one: the next read builds the two defaults again.
        """
        try:
            adapters: MutableMapping[str, BaseAdapter] = self.__dict__["adapters"]
        except KeyError:
            adapters = _requests_state.default_adapters(self, _install)
        return adapters

    @adapters.setter
    def adapters(self, value: MutableMapping[str, BaseAdapter]) -> None:
        self.__dict__["adapters"] = value

    @adapters.deleter
    def adapters(self) -> None:
        self.__dict__.pop("adapters", None)

    def mount(self, prefix: str | bytes, adapter: BaseAdapter) -> None:
        """Register an adapter; one whose own ``max_retries`` would retry is refused.

        The session retries attempt by attempt itself, so retries in the adapter would stack.
        """
        _refuse_retries(adapter)
        super().mount(prefix, adapter)
        _deadline.install(adapter)  # so the deadline watchdog can shut its sockets

    def close(self) -> None:
        """Close the adapters; the redactor keeps this session's secrets for its grace period.

        An error handled after ``with Session(...)`` is still masked (see
        :data:`observable_session.redaction.GRACE_SECONDS`). A closed session can still
        send (as requests allows); its secrets are then registered again before the next
        request is prepared or sent (one prepared before ``close()`` included).
        """
        # Only this class's lazy adapters may be unbuilt (none to close, none to build).
        if "adapters" in self.__dict__ or getattr(type(self), "adapters", None) is not _ADAPTERS:
            super().close()
        self._credentials.close()
        self._closed = True

    def __repr__(self) -> str:
        base = DEFAULT_REDACTOR.mask_url(self._base_url) if self._base_url else None
        return (
            f"<{type(self).__module__.split('.')[0]}.Session base_url={base!r} "
            f"auth_headers={self._auth_headers!r}>"
        )

    # -- pickling -----------------------------------------------------------------------

    _OWN_STATE = (
        "_base_url",
        "_auth_headers",
        "_auth_origins",
        "_policy",
        "_overload",
        "timeout",
        "deadline",
        "raise_for_status",
        "error_body_limit",
    )

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()  # type: ignore[misc]
        for name in self._OWN_STATE:
            state[name] = getattr(self, name)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in self._OWN_STATE:
            setattr(self, name, state.pop(name))
        super().__setstate__(state)  # type: ignore[misc]
        self._credentials = Credentials()
        self._credentials.register_url(self._base_url)
        self._auth_headers.bind(self._credentials)
        for adapter in self.adapters.values():
            _deadline.install(adapter)
        self._sleep = time.sleep
        self._telemetry = Telemetry()
        self._cache = _Cache()
        self._closed = False

    # -- preparing ----------------------------------------------------------------------

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        *args: Any,
        path_params: Mapping[str, object] | None = None,
        url_template: str | None = None,
        deadline: float | None = _UNSET,
        raise_for_status: bool | None = None,
        retry_budget: RetryBudget | None = KEEP,
        circuit_breaker: CircuitBreaker | None = KEEP,
        idempotency_key: bool | str = KEEP,
        retry_after_exceeded: str = KEEP,
        **kwargs: Any,
    ) -> Response:
        """Construct, prepare and send a request; raise on 4xx/5xx after retries.

        Args:
            method: The HTTP method.
            url: A URL relative to ``base_url``, or absolute; with ``path_params``, a route
                template such as ``"/jobs/{job_id}"``.
            path_params: Values for the template's fields (percent-encoded).
            url_template: The route to report as ``url.template`` (low cardinality).
            deadline: Seconds for the whole logical request; overrides the session's.
            raise_for_status: Overrides the session's ``raise_for_status``.
            retry_budget: Overrides the session's retry budget for this call (``None``: off).
            circuit_breaker: Overrides the session's circuit breaker (``None``: off).
            idempotency_key: Overrides the session's ``idempotency_key``.
            retry_after_exceeded: Overrides the session's ``retry_after_exceeded``.
            *args: As for ``requests.Session.request``.
            **kwargs: As for ``requests.Session.request``.
        """
        if isinstance(url, bytes):
            url = url.decode("utf-8")
        if isinstance(method, bytes):
            method = method.decode("ascii")
        _config.check_route(path_params, url_template)
        template = url_template
        if path_params is not None:
            template = url_template or url
            url = _urls.fill_template(template, path_params)
        full_url = _urls.join_url(self._base_url, url)
        route = _urls.template_path(self._base_url, template) if template else None
        if deadline is not _UNSET:
            _config.check_deadline(deadline)
        if kwargs.get("headers") is not None:  # requests' own error would echo the value
            _config.check_headers(kwargs["headers"])
        overload = self._overload.override(
            retry_budget=retry_budget,
            circuit_breaker=circuit_breaker,
            idempotency_key=idempotency_key,
            retry_after_exceeded=retry_after_exceeded,
        )
        options = _CallOptions(route, self.deadline if deadline is _UNSET else deadline, overload)
        token = _PENDING.set(options)
        failure: RequestsApiError | None = None
        unencodable: UnicodeEncodeError | None = None
        try:
            response = super().request(method, full_url, *args, **kwargs)
        except RequestsApiError:
            raise
        except requests.RequestException as exc:  # raised while preparing: nothing was sent
            failure = wrap(exc, None)
        except UnicodeEncodeError as exc:  # a credential requests cannot encode (Basic auth)
            unencodable = masked_unicode_error(exc)
            if unencodable is None:
                raise
        finally:
            _PENDING.reset(token)
        if unencodable is not None:
            raise unencodable  # outside the handler: the original is not even its __context__
        if failure is not None:
            raise failure
        should_raise = self.raise_for_status if raise_for_status is None else raise_for_status
        if should_raise and response.status_code >= 400:
            raise annotate_response_error(http_error(response, self._error_body_limit), response)
        return response

    def wait(
        self,
        target: str | Response,
        *,
        until: Callable[[Response], object],
        fail_when: Callable[[Response], object] | None = None,
        interval: float = 1.0,
        max_interval: float = 30.0,
        multiplier: float = 1.5,
        jitter: float = 0.1,
        deadline: float | None = None,
        method: str = "GET",
        **request_kwargs: Any,
    ) -> Response:
        """Poll ``target`` until ``until(response)`` is true; one span, one deadline.

        Args:
            target: A URL (relative to ``base_url``; ``path_params``/``url_template`` as
                for ``request``), or a submit call's Response: its ``Operation-Location``,
                else its ``Location``, is polled.
            until: Ends the wait with the response it is true for.
            fail_when: Ends the wait with :class:`WaitFailed` (checked first).
            interval: Seconds between the first two polls; then times ``multiplier``.
            max_interval: Cap on every pause, a ``Retry-After`` included.
            multiplier: Growth of the pause after each poll (>= 1).
            jitter: Each computed pause is scaled by a random factor in
                ``[1 - jitter, 1 + jitter]``.
            deadline: Seconds for the whole wait, sleeps included (default: the
                session's); then :class:`WaitTimeout`.
            method: The polls' method.
            **request_kwargs: Passed to every poll's ``request`` (headers, params, ...).

        See :mod:`observable_session._wait` for when a failing poll ends the wait.
        """
        from ._wait import wait

        return wait(
            self,
            target,
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

    def prepare_request(self, request: Request) -> PreparedRequest:
        """Prepare ``request`` as requests does, then add the auth headers where allowed."""
        if not request.cookies and not self.cookies:
            merged_cookies = RequestsCookieJar()  # what the two merges below give: empty
        else:
            cookies = request.cookies or {}
            if not isinstance(cookies, CookieJar):
                cookies = cookiejar_from_dict(cookies)
            merged_cookies = merge_cookies(
                merge_cookies(RequestsCookieJar(), self.cookies), cookies
            )
        credentials = self._credentials
        if self._closed:
            self._reopen()
        # PreparedRequest.prepare, step by step, with shortcuts that change nothing: a URL
        # without params is prepared once per session (parsing and requoting cost more than
        # the rest of the preparation); the session's headers, when the request adds none,
        # are merged and validated once per change of them; an empty cookie jar makes no
        # Cookie header (cookielib's lock, clock and request wrapper are skipped); and auth
        # from the URL is looked for only when the URL has userinfo.
        prepared = PreparedRequest()
        prepared.prepare_method(request.method.upper() if request.method else request.method)
        params = _merge(request.params, self.params)
        self._prepare_url(prepared, request.url, params)
        allowed = bool(prepared.url) and self._auth_allowed(prepared.url or "")
        self._prepare_headers(prepared, request.headers, credentials)
        if not allowed:
            # Credential headers follow the auth_headers origin rule, wherever they were set.
            for name in [n for n in prepared.headers if origin_bound(n)]:
                del prepared.headers[name]
        if len(merged_cookies):
            prepared.prepare_cookies(merged_cookies)
        else:
            prepared._cookies = merged_cookies  # type: ignore[attr-defined]
        if request.data or request.json is not None:
            credentials.register_fields(request.data, request.json)
        prepared.prepare_body(request.data, request.files, request.json)
        auth = merge_setting(request.auth, self.auth) if allowed else None
        if auth is None and self.trust_env:
            # requests calls this name on every request, probing netrc files each time; the
            # session calls it when a netrc file existed at the last environment read, or
            # when someone replaced it (as tests do), so a replacement behaves as in requests.
            # netrc credentials are the host's own: they apply on any origin.
            netrc_auth = requests.sessions.get_netrc_auth
            if self._env.netrc or netrc_auth is not get_netrc_auth:
                auth = netrc_auth(request.url)
        if auth is not None:
            credentials.register_auth(auth)  # a Digest password never reaches the headers
        if auth is not None or "@" in (prepared.url or ""):
            credentials.register_url(prepared.url)
            prepared.prepare_auth(auth, request.url)
        prepared.prepare_hooks(merge_hooks(request.hooks, self.hooks))
        if self.cookies._cookies:  # type: ignore[attr-defined]
            credentials.register_jar(self.cookies)
        if allowed:
            explicit = {k.lower() for k in (request.headers or {})}
            for name, value in self._auth_headers.pairs():
                if name.lower() not in explicit:
                    prepared.headers[name] = _header_value(value)  # type: ignore[assignment]
        return prepared

    def _reopen(self) -> None:
        """A closed session sends again: its registry was emptied, register it anew."""
        self._auth_headers.bind(self._credentials)
        self._credentials.register_url(self._base_url)
        self._cache.headers = None
        self._closed = False

    def _prepare_url(self, prepared: PreparedRequest, url: Any, params: Any) -> None:
        """``prepared.prepare_url``, from a per-session cache when there are no params."""
        if params or not isinstance(url, str):
            prepared.prepare_url(url, params)
            return
        cache = self._cache
        cached = cache.urls.get(url)
        if cached is not None:
            prepared.url = cached
            return
        prepared.prepare_url(url, params)
        if len(cache.urls) >= 512:
            cache.urls = {}
        cache.urls[url] = prepared.url or ""

    def _prepare_headers(
        self, prepared: PreparedRequest, headers: Any, credentials: Credentials
    ) -> None:
        """``prepared.prepare_headers`` of the merged headers, cached while the session's stay.

        The cache key is the session headers' (name, value) pairs in order, so any change to
        them (an item set, deleted, or the mapping replaced) misses; each request gets its
        own copy, since auth, trace and idempotency headers are added to it afterwards. On a
        miss the sensitive values are registered before requests validates them (its error
        quotes a value it refuses). A hit validates nothing, and its values were registered
        at the miss (``close()``, which empties the registry, also empties this cache); the
        send path registers every header of every hop again before it goes on the wire.
        """
        session_headers = self.headers
        if headers or type(session_headers) is not CaseInsensitiveDict:
            merged = _merge(headers, session_headers, CaseInsensitiveDict)
            credentials.register_headers(merged)
            prepared.prepare_headers(merged)
            return
        raw: Any = session_headers  # requests' own storage: _store = {lower: (name, value)}
        # ``headers=None`` keeps None values (requests' merge), ``{}`` drops them: both key.
        key = (headers is None, tuple(raw._store.values()))
        cached = self._cache.headers
        if cached is None or cached[0] != key:
            merged = _merge(headers, session_headers, CaseInsensitiveDict)
            credentials.register_headers(merged)
            prepared.prepare_headers(merged)
            assert prepared.headers is not None
            built: Any = prepared.headers
            self._cache.headers = (key, built._store.copy())
            return
        fresh: Any = CaseInsensitiveDict()
        fresh._store = cached[1].copy()
        prepared.headers = fresh

    def _auth_allowed(self, url: str) -> bool:
        """Whether ``url``'s origin may receive the auth headers."""
        if not self._auth_origins:
            return True
        return _urls.origin_of(url) in self._auth_origins

    def rebuild_auth(self, prepared_request: PreparedRequest, response: Response) -> None:
        """On a redirect off-origin, strip every credential header, not only Authorization.

        The auth headers and every sensitive-named header (``X-API-Key``, ``session.auth``'s
        Authorization ...) go only to the base origin and ``auth_origins``; a change of
        scheme, host or port is a change of origin. Jar cookies follow RFC 6265 instead.
        """
        old = _urls.origin_of(response.request.url or "")
        new = _urls.origin_of(prepared_request.url or "")
        if new != old and not (self._auth_origins and new in self._auth_origins):
            jar_cookie = prepared_request.headers.get("Cookie")
            for name in [n for n in prepared_request.headers if origin_bound(n)]:
                del prepared_request.headers[name]
            for name in self._auth_headers:
                prepared_request.headers.pop(name, None)
            if jar_cookie is not None and prepared_request._cookies:  # type: ignore[attr-defined]
                # resolve_redirects rebuilt Cookie from the jar for this URL: keep it.
                prepared_request.headers["Cookie"] = jar_cookie
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: Any,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> _Settings:
        """Merge settings as requests does; the environment is re-read only when it changed."""
        if self.trust_env:
            env = self._cache.env = self._env.current()
            if env.proxies:
                # Proxies are configured: let requests apply no_proxy rules exactly.
                return super().merge_environment_settings(url, proxies, stream, verify, cert)
            if (verify is True or verify is None) and env.ca_bundle:
                verify = env.ca_bundle
        return {
            "proxies": _merge(proxies, self.proxies),
            "stream": merge_setting(stream, self.stream),
            "verify": merge_setting(verify, self.verify),
            "cert": merge_setting(cert, self.cert),
        }

    # -- sending ------------------------------------------------------------------------

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        """Send a prepared request as one logical request, retrying attempt by attempt.

        Extra keyword arguments beyond requests': ``url_template`` and ``deadline``.
        """
        if isinstance(request, Request):
            raise ValueError("You can only send PreparedRequests.")
        template = kwargs.pop("url_template", None)
        deadline = kwargs.pop("deadline", _UNSET)
        options = _PENDING.get()
        overload = options.overload if options is not None else None
        active = _ACTIVE.get()
        if (
            options is None
            and active is not None
            and active.session is self
            and active.redirecting
            and kwargs.get("allow_redirects") is False
        ):
            # resolve_redirects sending the next hop of the call that is open here.
            return self._send_hop(request, active, kwargs)
        if options is not None:
            _PENDING.set(None)
            template = template or options.url_template
            if deadline is _UNSET:
                deadline = options.deadline
        elif template is not None:
            template = _urls.template_path(self._base_url, template)
        if deadline is _UNSET:
            deadline = self.deadline
        # Per-call arguments get the constructor's checks, before anything is sent.
        _config.check_deadline(deadline)
        _config.check_timeout(kwargs.get("timeout"))
        return self._send_logical(request, kwargs, template, deadline, overload)

    def _send_logical(
        self,
        request: PreparedRequest,
        kwargs: dict[str, Any],
        template: str | None,
        deadline: float | None,
        overload: OverloadPolicy | None = None,
    ) -> Response:
        """Open the logical request, run its hops, close it: one span, one duration point."""
        start = time.perf_counter()
        method = (request.method or "GET").upper()
        try:
            instruments = self._telemetry.instruments()
        except Exception:  # a broken provider must not break the request
            instruments = None
        recorder = CallRecorder(instruments, method, template)
        call = _Call(
            session=self,
            method=method,
            deadline=deadline,
            deadline_at=time.monotonic() + deadline if deadline is not None else None,
            retry=self._policy.start(),
            recorder=recorder,
            guard=(overload or self._overload).start(
                instruments, recorder, method, self._policy.status_forcelist
            ),
        )
        call.recorder.start(self._cache.targets.get(request.url or ""))
        request = call.guard.prepare(request)
        token = _ACTIVE.set(call)
        response: Response | None = None
        failure: BaseException | None = None
        unencodable: ValueError | None = None
        watched = _deadline.start(call.deadline_at)
        call.watch = watched[0] if watched is not None else None
        try:
            response = self._send_hop(request, call, kwargs)
        except RequestsApiError as exc:
            failure = exc
        except requests.RequestException as exc:
            failure = wrap(exc, call)
        except BaseException as exc:
            call.recorder.end(None, error_type(exc), call.attempts, time.perf_counter() - start)
            unencodable = masked_unicode_error(exc) or masked_value_error(exc)
            if unencodable is None:
                raise
        finally:
            _deadline.stop(watched)
            _ACTIVE.reset(token)
        if unencodable is not None:
            raise unencodable  # outside the handler: the original is not even its __context__
        status = response.status_code if response is not None else None
        if failure is not None:
            status = getattr(failure, "status_code", None)
        call.recorder.end(
            status, _error_type_of(status, failure), call.attempts, time.perf_counter() - start
        )
        if failure is not None:
            raise call.guard.annotate(failure)
        assert response is not None
        response._observable_session = (call.attempts, tuple(call.history))  # type: ignore[attr-defined]
        response._observable_deadline_at = call.deadline_at  # type: ignore[attr-defined]
        if call.guard.denied is not None:
            response._observable_session_denied = (call.guard.denied, call.guard.retry_after)  # type: ignore[attr-defined]
        return response

    def _send_hop(self, request: PreparedRequest, call: _Call, kwargs: dict[str, Any]) -> Response:
        """One hop: what ``requests.Session.send`` does, with the attempts retried."""
        kwargs.setdefault("stream", self.stream)
        kwargs.setdefault("verify", self.verify)
        kwargs.setdefault("cert", self.cert)
        if "proxies" not in kwargs:
            if self.trust_env:
                self._cache.env = self._env.current()
            kwargs["proxies"] = (
                resolve_proxies(request, dict(self.proxies), self.trust_env)
                if self.trust_env and self._env.proxies
                else dict(self.proxies or {})
            )
        # Every hop passes here (a prepared request sent directly, a redirect): what it
        # carries is registered before it goes on the wire: a request prepared before
        # close() included (its auth headers, rotated since or not, left the registry).
        if self._closed:
            self._reopen()
        self._credentials.register_headers(request.headers, self._auth_headers.lowered_names())
        for hook in request.hooks.get("response") or ():
            # An auth that answers a challenge (Digest) keeps its password out of the headers.
            owner = getattr(hook, "__self__", None)
            if isinstance(owner, AuthBase):
                self._credentials.register_auth(owner)
        self._credentials.register_proxies(kwargs["proxies"])
        self._credentials.register_query(request.url)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        allow_redirects = kwargs.pop("allow_redirects", True)
        stream = kwargs.get("stream")
        adapter = self.get_adapter(url=request.url or "")
        r = self._send_with_retries(adapter, request, call, kwargs)
        r = dispatch_hook("response", request.hooks, r, **kwargs)
        if r.request is not request and r.request is not None:
            # A hook sent a request of its own (Digest answers its challenge through the
            # adapter, past this path): what it carried is registered before anything reads
            # the answer.
            self._credentials.register_headers(r.request.headers)
        if r.history:
            for resp in r.history:
                extract_cookies_to_jar(self.cookies, resp.request, resp.raw)
        if "set-cookie" in r.headers or "set-cookie2" in r.headers:
            # cookielib reads only these headers; skipping the jar otherwise saves its locks.
            extract_cookies_to_jar(self.cookies, request, r.raw)
            self._credentials.register_jar(self.cookies)
        follow = allow_redirects and _may_follow(r, request)
        if stream and r.is_redirect and (follow or call.redirecting):
            # resolve_redirects would read the redirect's body whole: bound it first.
            _bodies.release_redirect(r, self._error_body_limit, call.deadline_at)
        history: list[Response] = []
        # Asking for the target first skips resolve_redirects' generator and URL parsing on
        # the usual, non-redirect response; the generator asks the same method again.
        if follow and self.get_redirect_target(r):
            previous, call.redirecting = call.redirecting, True
            try:
                history = list(self.resolve_redirects(r, request, **kwargs))
            except requests.RequestException:
                raise
            except ValueError as exc:  # a Location the server sent that cannot be parsed
                raise wrap(exc, call, InvalidURLError) from None
            finally:
                call.redirecting = previous
        if history:
            history.insert(0, r)
            r = history.pop()
            r.history = history
        if not allow_redirects:
            with contextlib.suppress(StopIteration):
                r._next = next(  # type: ignore[attr-defined]
                    self.resolve_redirects(r, request, yield_requests=True, **kwargs)
                )
        if not stream:
            r.content  # noqa: B018 - read the body, as requests does
        return r

    def _send_with_retries(
        self,
        adapter: BaseAdapter,
        request: PreparedRequest,
        call: _Call,
        kwargs: dict[str, Any],
    ) -> Response:
        """Attempt, decide, sleep, attempt again: one adapter call per attempt."""
        replayable = _body_replayable(request)
        timeout = _bounded_timeout(kwargs["timeout"], call)
        if timeout is _EXPIRED:
            raise deadline_error(call, None, None)
        guard = call.guard
        guard.admit(request.url or "", call.attempts, tuple(call.history))
        while True:
            started = time.perf_counter()
            response, error = self._attempt(adapter, request, call, dict(kwargs, timeout=timeout))
            duration = time.perf_counter() - started
            decision = self._policy.decide(
                call.retry,
                call.method,
                response=response,
                error=error,
                replayable=replayable,
                keyed=guard.keyed,
            )
            guard.attempted(request.url or "", response, error, decision)
            status = response.status_code if response is not None else None
            err = _error_type_of(status, error)
            expired = call.deadline_at is not None and (
                time.monotonic() + decision.backoff >= call.deadline_at
            )
            denied = guard.may_retry(request.url or "", decision, response, call.attempts, expired)
            if decision.retry is None or expired or denied is not None:
                call.history.append(AttemptRecord(status, err, duration))
                by_retry_after = denied == DENIED_BY_RETRY_AFTER
                if decision.exhausted or (decision.retry is not None and not by_retry_after):
                    call.recorder.retries_exhausted(call.attempts, decision.reason, expired)
                if by_retry_after and response is not None:
                    raise guard.retry_after_error(
                        response, call.attempts, tuple(call.history), self._error_body_limit
                    )
                # The watchdog shut the socket at the deadline: whatever urllib3 made of
                # that, it is the deadline.
                fired = error is not None and call.watch is not None and call.watch.fired
                if expired and (
                    decision.retry is not None or isinstance(error, requests.Timeout) or fired
                ):
                    raise deadline_error(call, response, error)
                if error is not None:
                    raise wrap(error, call)
                assert response is not None
                return response
            call.history.append(AttemptRecord(status, err, duration, decision.backoff))
            call.retry = decision.retry
            call.recorder.retry_scheduled(
                decision.reason, decision.backoff, decision.retry_after, call.attempts
            )
            if response is not None:
                _bodies.drain(response, self._error_body_limit, call.deadline_at)
            if decision.backoff > 0:
                self._sleep(decision.backoff)
            # A sleep that woke late may have used up the deadline: then the retry is not
            # made, and not counted, so retries == attempts - logical requests holds.
            timeout = _bounded_timeout(kwargs["timeout"], call)
            if timeout is _EXPIRED:
                call.recorder.retries_exhausted(call.attempts, decision.reason, True)
                raise deadline_error(call, response, error)
            call.recorder.retry_proceeds()
            if request.body is not None and not isinstance(request.body, (bytes, str)):
                rewind_body(request)

    def _attempt(
        self,
        adapter: BaseAdapter,
        request: PreparedRequest,
        call: _Call,
        kwargs: dict[str, Any],
    ) -> tuple[Response | None, requests.RequestException | None]:
        """One adapter call in its own CLIENT span, with trace context injected."""
        resend_count = call.attempts
        call.attempts += 1
        recorder = call.recorder
        attempt = recorder.start_attempt(
            self._cache.targets.get(request.url or ""), resend_count, request.headers
        )
        started = time.perf_counter()
        response: Response | None = None
        error: requests.RequestException | None = None
        try:
            response = adapter.send(request, **kwargs)
            if not kwargs.get("stream") and not response.is_redirect:
                # A truncated body is this attempt's failure. A redirect's body is left to
                # resolve_redirects, which (as requests) never fails a call on decoding it.
                response.content  # noqa: B018
        except requests.RequestException as exc:
            error = _as_read_timeout(exc)
            if response is not None:
                response.close()
                response = None
        except BaseException as exc:
            recorder.end_attempt(
                attempt, call.attempts, time.perf_counter() - started, None, error_type(exc), ""
            )
            raise
        if response is not None and call.watch is not None and call.watch.shut:
            # The watchdog shut the socket at the deadline: headers that ended there
            # (http.client takes EOF for their end) are not the server's answer.
            response.close()
            response, error = None, requests.ReadTimeout("deadline reached while reading")
        duration = time.perf_counter() - started
        if response is not None:
            response.elapsed = timedelta(seconds=duration)
            status = response.status_code
            recorder.end_attempt(
                attempt, call.attempts, duration, response, _error_type_of(status, None), None
            )
        else:
            recorder.end_attempt(
                attempt,
                call.attempts,
                duration,
                None,
                error_type(error) if error is not None else None,
                DEFAULT_REDACTOR.mask(str(error)),
            )
        return response, error


# What a subclass (or a spy patched onto the class) may replace that requests' __init__ uses.
_OVERRIDABLE = operator.attrgetter("mount", "adapters", "headers", "__setattr__")
_OWN_OVERRIDABLE = _OVERRIDABLE(Session)
_ADAPTERS = Session.__dict__["adapters"]

# -- small pure helpers ----------------------------------------------------------------


def _merge(request_setting: Any, session_setting: Any, dict_class: Any = OrderedDict) -> Any:
    """``requests.sessions.merge_setting`` with a fast path for an empty request setting.

    requests checks every mapping against a runtime Protocol, which costs more than the
    merge itself; when the request sets nothing the result is the session's mapping without
    ``None`` values, exactly as requests computes it.
    """
    if (
        session_setting is not None
        and not request_setting
        and isinstance(request_setting, (dict, type(None)))
        and isinstance(session_setting, (dict, CaseInsensitiveDict))
    ):
        if request_setting is None:
            return session_setting
        return dict_class((k, v) for k, v in session_setting.items() if v is not None)
    return merge_setting(request_setting, session_setting, dict_class=dict_class)


def _header_value(value: str) -> str | bytes:
    """A header value http.client can send: latin-1 text as is, anything else as UTF-8."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")
    return value


_EXPIRED: Any = object()


def _bounded_timeout(timeout: Any, call: _Call) -> Any:
    """The attempt's timeout, cut so no wait outlives the deadline; ``_EXPIRED`` if it has."""
    if call.deadline_at is None:
        return timeout
    remaining = call.deadline_at - time.monotonic()
    if remaining <= 0:
        return _EXPIRED
    if isinstance(timeout, Timeout):
        timeout = _timeout_pair(timeout)
    if isinstance(timeout, tuple):
        return tuple(remaining if t is None else min(t, remaining) for t in timeout)
    if isinstance(timeout, (int, float)):
        return min(timeout, remaining)
    return remaining if timeout is None else timeout


def _timeout_pair(timeout: Timeout) -> tuple[float | None, float | None]:
    """A urllib3 ``Timeout`` as ``(connect, read)``, its ``total`` capping both."""

    def seconds(value: object) -> float | None:
        return float(value) if isinstance(value, (int, float)) else None  # DEFAULT: None

    total = seconds(timeout.total)
    pair = [seconds(timeout._connect), seconds(timeout._read)]
    return tuple(  # type: ignore[return-value]
        total if p is None else (p if total is None else min(p, total)) for p in pair
    )


def _body_replayable(request: PreparedRequest) -> bool:
    """Whether the body can be sent again: bytes, str, or a file that can really be rewound.

    requests records ``_body_position`` from ``tell()`` alone, so an object with
    ``read``/``tell`` but no ``seek`` would pass that test and fail only on the retry.
    """
    body = request.body
    if body is None or isinstance(body, (bytes, str)):
        return True
    return (
        callable(getattr(body, "read", None))
        and callable(getattr(body, "seek", None))
        and isinstance(getattr(request, "_body_position", None), int)
    )


def _as_read_timeout(exc: requests.RequestException) -> requests.RequestException:
    """A timeout while reading the body is a read timeout (requests calls it ConnectionError)."""
    cause = exc.args[0] if exc.args else None
    if isinstance(exc, requests.ConnectionError) and isinstance(cause, ReadTimeoutError):
        converted = requests.ReadTimeout(*exc.args, request=exc.request, response=exc.response)
        converted.__cause__ = exc.__cause__
        converted.__traceback__ = exc.__traceback__
        return converted
    return exc


def _may_follow(response: Response, request: PreparedRequest) -> bool:
    """A 307/308 re-sends the body: not when it cannot be replayed (the seed sent it empty)."""
    return response.status_code not in (307, 308) or _body_replayable(request)


def _error_type_of(status: int | None, error: BaseException | None) -> str | None:
    """``error.type``: the failure's type (as reported by our errors), else a 4xx/5xx status."""
    if isinstance(error, RequestsApiError) and error.error_type:
        return error.error_type
    if error is not None:
        return error_type(error)
    if status is not None and status >= 400:
        return str(status)
    return None
