"""Building the session's errors: typed, masked, carrying attempts and history.

Every message passes through the redactor before an exception is built, and every chained
cause is a masked copy of the original failure (see :mod:`observable_session.errors`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import requests
from requests import Response

from ._bodies import error_text
from ._config import DEFAULT_ERROR_BODY_LIMIT
from ._retry import error_type
from .errors import (
    ApiConnectionError,
    ApiConnectTimeout,
    ApiContentDecodingError,
    ApiHTTPError,
    ApiProxyError,
    ApiReadTimeout,
    ApiSSLError,
    ApiTimeout,
    ApiTooManyRedirects,
    DeadlineExceeded,
    InvalidURLError,
    RequestsApiError,
)
from .redaction import DEFAULT_REDACTOR

if TYPE_CHECKING:
    from ._session import _Call


def http_error(response: Response, body_limit: int = DEFAULT_ERROR_BODY_LIMIT) -> ApiHTTPError:
    """The seed's message (JSON ``message``/``error.message``/``error``, else text), masked.

    At most ``body_limit`` bytes of the body are read for it (see :mod:`._bodies`).
    """
    attempts, history = getattr(response, "_observable_session", (1, ()))
    url = DEFAULT_REDACTOR.mask_url(response.url or "")
    message = f"{response.status_code} {response.reason or ''} for {response.request.method} {url}"
    if attempts > 1:
        message += f" after {attempts} attempts"
    detail = _detail(response, body_limit)
    if detail:
        message += f": {detail}"
    error = ApiHTTPError(
        DEFAULT_REDACTOR.mask(message), response=response, attempts=attempts, history=history
    )
    error.error_type = str(response.status_code)
    return error


def _detail(response: Response, body_limit: int) -> str:
    text, complete = error_text(response, body_limit)
    data = None
    if complete and text.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # a hostile body nests 30,000 deep
            data = None
    if isinstance(data, dict):
        error = data.get("error")
        for candidate in (
            data.get("message"),
            error.get("message") if isinstance(error, dict) else None,
            error,
        ):
            if isinstance(candidate, str) and candidate:
                return _masked_cut(candidate)
    return _masked_cut(text.strip())


def _masked_cut(text: str) -> str:
    """The first 1000 characters, masked *before* the cut.

    Cut first, a secret the server placed across character 1000 would keep its first
    characters unmasked (the redactor only knows whole values).
    """
    return DEFAULT_REDACTOR.mask(text)[:1000]


_ERROR_CLASSES: tuple[tuple[type[BaseException], type[RequestsApiError]], ...] = (
    (requests.exceptions.SSLError, ApiSSLError),
    (requests.exceptions.ProxyError, ApiProxyError),
    (requests.TooManyRedirects, ApiTooManyRedirects),
    (requests.exceptions.ContentDecodingError, ApiContentDecodingError),
    (requests.ConnectTimeout, ApiConnectTimeout),
    (requests.ReadTimeout, ApiReadTimeout),
    (requests.Timeout, ApiTimeout),
    (requests.ConnectionError, ApiConnectionError),
    (requests.exceptions.ChunkedEncodingError, ApiConnectionError),
    (requests.exceptions.InvalidURL, InvalidURLError),
    (requests.exceptions.InvalidSchema, InvalidURLError),
    (requests.exceptions.MissingSchema, InvalidURLError),
)


def wrap(
    error: BaseException, call: _Call | None, cls: type[RequestsApiError] | None = None
) -> RequestsApiError:
    """Our typed, masked error for a requests failure; its cause is a masked copy."""
    if cls is None:
        cls = RequestsApiError
        for source, target in _ERROR_CLASSES:
            if isinstance(error, source):
                cls = target
                break
    if call is None:
        message = DEFAULT_REDACTOR.mask(f"request not sent: {error}")
        exc = cls(message)
    else:
        attempts = f" after {call.attempts} attempts" if call.attempts > 1 else ""
        message = DEFAULT_REDACTOR.mask(f"{call.method} failed{attempts}: {error}")
        exc = cls(message, attempts=call.attempts, history=tuple(call.history))
    exc.error_type = error_type(error)
    exc.__cause__ = DEFAULT_REDACTOR.sanitize_exception(error)
    exc.__suppress_context__ = True
    return exc


def deadline_error(
    call: _Call, response: Response | None, error: BaseException | None
) -> DeadlineExceeded:
    """The deadline ran out (or the next backoff would outlive it)."""
    last = f"; last: {response.status_code}" if response is not None else ""
    if error is not None:
        last = f"; last: {error_type(error)}"
    message = (
        f"{call.method} deadline of {call.deadline}s exceeded after {call.attempts} attempts{last}"
    )
    exc = DeadlineExceeded(
        DEFAULT_REDACTOR.mask(message),
        response=response,
        attempts=call.attempts,
        history=tuple(call.history),
    )
    if error is not None:
        exc.__cause__ = DEFAULT_REDACTOR.sanitize_exception(error)
        exc.__suppress_context__ = True
    return exc
