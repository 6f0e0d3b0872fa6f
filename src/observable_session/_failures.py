"""Building the session's errors: typed, masked, carrying attempts and history.

Every message passes through the redactor before an exception is built, and every chained
cause is a masked copy of the original failure (see :mod:`observable_session.errors`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from requests import PreparedRequest, RequestException, Response

from ._bodies import error_text
from ._config import DEFAULT_ERROR_BODY_LIMIT
from ._credentials import masked_unicode_error, masked_value_error
from ._retry import error_type
from .errors import ApiHTTPError, DeadlineExceeded, RequestsApiError, counterpart
from .redaction import DEFAULT_REDACTOR, REDACTED

if TYPE_CHECKING:
    from ._call import Call


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
        DEFAULT_REDACTOR.mask(message),
        response=response,
        request=masked_request(response.request),
        attempts=attempts,
        history=history,
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
    # ASCII blanks only: ``str.strip`` also takes U+00A0 and its kin, which may be the last
    # character of a credential (of its UTF-8 read as latin-1, ``Â\xa0``), and what is left
    # of the credential then is no form of it.
    return _masked_cut(text.strip(_ASCII_BLANKS))


_ASCII_BLANKS = " \t\n\r\x0b\x0c"


def _masked_cut(text: str) -> str:
    """The first 1000 characters, masked *before* the cut.

    Cut first, a secret the server placed across character 1000 would keep its first
    characters unmasked (the redactor only knows whole values).
    """
    return DEFAULT_REDACTOR.mask_cut(text, 1000)


#: Request bodies up to this size are masked in an error's request copy (larger ones are
#: uploads: kept as they are, not read through).
_BODY_MASK_LIMIT = 64 * 1024


def masked_request(
    request: PreparedRequest | None, auth_names: Iterable[str] = ()
) -> PreparedRequest | None:
    """A copy of ``request`` for an error's ``.request``: credential headers and URL masked.

    An error outlives its session, and a closed session's values leave the redactor's index,
    so ``error.request.headers`` logged after ``close()`` would show them: the copy holds
    ``REDACTED`` instead of every auth header of the session, every header with a sensitive
    name (``Authorization``, ``Cookie``, ``*-Key``, ``*-Token``, ...) and every known secret;
    a body of up to 64 KiB (text or bytes) has every known secret masked too.
    """
    if not isinstance(request, PreparedRequest):
        return request
    copy = request.copy()
    names = {name.lower() for name in auth_names}
    for name, value in list(copy.headers.items()):
        if name.lower() in names or DEFAULT_REDACTOR.is_sensitive_name(name):
            copy.headers[name] = REDACTED
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        masked = DEFAULT_REDACTOR.mask(text)
        if masked != text:
            copy.headers[name] = masked
    if copy.url:
        copy.url = DEFAULT_REDACTOR.mask_url(copy.url)
    body = copy.body
    if isinstance(body, (str, bytes)) and len(body) <= _BODY_MASK_LIMIT:
        # Sensitive-named form and JSON fields are registered when sent (a client_secret,
        # a login's password): the copy holds them masked, not only the log sinks.
        scrubbed: Any = DEFAULT_REDACTOR.scrub(body)
        if scrubbed != body:
            copy.body = scrubbed
    return copy


def _masked_args(error: BaseException) -> tuple[Any, ...]:
    """``error.args`` as requests built them, masked: exceptions as masked copies."""
    masked: list[Any] = []
    for arg in error.args:
        if isinstance(arg, BaseException):
            masked.append(DEFAULT_REDACTOR.sanitize_exception(arg))
        elif isinstance(arg, str):
            masked.append(DEFAULT_REDACTOR.mask(arg))
        else:
            masked.append(DEFAULT_REDACTOR.mask(str(arg)))
    return tuple(masked)


def wrap(
    error: BaseException,
    call: Call | None,
    cls: type[RequestsApiError] | None = None,
    *,
    where: str = "request not sent",
) -> RequestsApiError:
    """Our typed, masked error for a requests failure; its cause is a masked copy.

    The class is the counterpart of the failure's most specific requests class; ``args``,
    ``request`` and ``response`` are the failure's (``args`` masked). Outside a call, the
    message starts with ``where``.
    """
    if cls is None:
        cls = counterpart(type(error))
    response = getattr(error, "response", None)
    auth_names = list(call.session.auth_headers) if call is not None else []
    request = masked_request(getattr(error, "request", None), auth_names)
    args = _masked_args(error)
    if call is None:
        message = DEFAULT_REDACTOR.mask(f"{where}: {error}")
        exc = cls(message, request=request, response=response, args=args)
    else:
        attempts = f" after {call.attempts} attempts" if call.attempts > 1 else ""
        message = DEFAULT_REDACTOR.mask(f"{call.method} failed{attempts}: {error}")
        exc = cls(
            message,
            request=request,
            response=response,
            attempts=call.attempts,
            history=tuple(call.history),
            args=args,
        )
    exc.error_type = error_type(error)
    exc.__cause__ = DEFAULT_REDACTOR.sanitize_exception(error)
    exc.__suppress_context__ = True
    return exc


def masked_predicate_error(error: BaseException, where: str) -> BaseException | None:
    """What a wait raises for ``error`` from its ``until``/``fail_when``; ``None``: ``error``.

    A predicate reads the poll's response (``r.json()``, a streamed body), so what it
    raises may quote that body: requests' ``JSONDecodeError`` keeps the whole text in
    ``doc`` and in its pickle, a ``ChunkedEncodingError`` the bad chunk line. As for a
    response hook inside ``request()``: a requests error becomes its typed, masked
    counterpart (still that requests class), a bare ``ValueError`` or header
    ``UnicodeEncodeError`` quoting a credential a masked copy; anything else is kept.
    """
    if isinstance(error, RequestsApiError):
        return None
    if isinstance(error, RequestException):
        return wrap(error, None, where=where)
    return masked_unicode_error(error) or masked_value_error(error)


def deadline_error(
    call: Call, response: Response | None, error: BaseException | None
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
        request=masked_request(
            response.request if response is not None else None, list(call.session.auth_headers)
        ),
        attempts=call.attempts,
        history=tuple(call.history),
    )
    if error is not None:
        exc.__cause__ = DEFAULT_REDACTOR.sanitize_exception(error)
        exc.__suppress_context__ = True
    return exc
