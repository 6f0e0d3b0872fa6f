"""Argument checks shared by the session and the retry policy.

Every check raises :class:`InvalidConfigError` naming the argument and the rule it broke,
never the value: a value may be a credential (a header, a URL with userinfo), and a message
that echoes it would leak it into logs. Each check is a plain function that returns the value
it accepted (possibly normalised), so a caller can check everything first and only then
assign, leaving no half-built object behind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from urllib3.util import Timeout

from .errors import InvalidConfigError, InvalidHeaderError

DEFAULT_ERROR_BODY_LIMIT = 65536
"""Bytes of an error response's body read to build its message (and to drain it)."""

MAX_SECONDS = 1e9
"""The largest number of seconds accepted (about 31 years): sockets and sleeps overflow above
a platform limit (``settimeout(1e10)`` raises ``OverflowError``)."""

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_HEADER_VALUE = re.compile(r"[\r\n\x00]")


def _type_name(value: object) -> str:
    return type(value).__name__


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_seconds(name: str, value: object, *, allow_zero: bool = True) -> float:
    """A finite number of seconds, ``>= 0`` (or ``> 0`` when ``allow_zero`` is false), at
    most :data:`MAX_SECONDS`."""
    rule = ">= 0" if allow_zero else "> 0"
    if not _is_number(value):
        raise InvalidConfigError(f"{name} must be a number {rule}, got {_type_name(value)}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        number = math.inf
    if (
        not math.isfinite(number)
        or number < 0
        or (number == 0 and not allow_zero)
        or number > MAX_SECONDS
    ):
        raise InvalidConfigError(
            f"{name} must be a finite number {rule} and <= {MAX_SECONDS:g} seconds "
            "(not NaN or infinity)"
        )
    return number


def check_count(name: str, value: object) -> int:
    """An ``int >= 0`` (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidConfigError(
            f"{name} must be an int >= 0 (use 0 to disable retries), got {_type_name(value)}"
        )
    return value


def check_bool(name: str, value: object) -> bool:
    """A real ``bool``: ``"false"`` or ``0`` would be read the wrong way round."""
    if not isinstance(value, bool):
        raise InvalidConfigError(f"{name} must be True or False, got {_type_name(value)}")
    return value


def check_deadline(value: object, name: str = "deadline") -> float | None:
    """``None`` or a finite number of seconds ``> 0``."""
    if value is None:
        return None
    return check_seconds(name, value, allow_zero=False)


def check_timeout(value: object, name: str = "timeout") -> Any:
    """``None``, seconds ``> 0``, a ``(connect, read)`` pair of those, or a urllib3 ``Timeout``.

    requests accepts the same shapes; anything else (a 3-tuple, a list, a str, zero, NaN)
    would fail only when a request is sent, with a bare ``ValueError``.
    """
    if value is None:
        return value
    if isinstance(value, Timeout):
        for label, part in (
            ("connect", value._connect),
            ("read", value._read),
            ("total", value.total),
        ):
            if _is_number(part):
                check_seconds(f"{name} ({label})", part, allow_zero=False)
        return value
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InvalidConfigError(
                f"{name} must be seconds or a (connect, read) pair, got a tuple of {len(value)}"
            )
        for part, label in zip(value, ("connect", "read"), strict=True):
            if part is not None:
                check_seconds(f"{name} ({label})", part, allow_zero=False)
        return value
    if not _is_number(value):
        # "must be an int, float or None" is requests' wording, which callers (and requests'
        # own suite) match on.
        raise InvalidConfigError(
            f"{name} must be an int, float or None (seconds > 0) or a (connect, read) tuple,"
            f" got {_type_name(value)}"
        )
    check_seconds(name, value, allow_zero=False)
    return value


def check_headers(value: object, name: str = "headers") -> Mapping[Any, Any] | None:
    """``None`` or a mapping of header names to ``str``/``bytes`` values without CR/LF/NUL
    (or ``None``, which requests reads as "do not send this header")."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidConfigError(f"{name} must be a mapping of header names to str values")
    for key, item in value.items():
        key_text = key.decode("latin-1") if isinstance(key, bytes) else key
        if not isinstance(key_text, str) or not _HEADER_NAME.match(key_text):
            raise InvalidHeaderError(f"{name} has an invalid header name")
        if item is None:  # requests: a None value removes the header for this request
            continue
        if isinstance(item, bytes):
            item = item.decode("latin-1")
        if not isinstance(item, str):
            raise InvalidHeaderError(f"{name}[{key_text!r}] must be a str, got {_type_name(item)}")
        if _BAD_HEADER_VALUE.search(item) or item[:1].isspace():
            raise InvalidHeaderError(
                f"{name}[{key_text!r}] must not contain CR, LF or NUL, nor start with white space"
            )
    return value


def check_mapping(name: str, value: object) -> Mapping[Any, Any] | None:
    """``None`` or a mapping (a str or a list of pairs is refused: it has no ``items``)."""
    if value is not None and not isinstance(value, Mapping):
        raise InvalidConfigError(
            f"{name} must be a mapping (dict) or None, got {_type_name(value)}"
        )
    return value


def check_callable(name: str, value: object) -> Callable[..., Any]:
    """A callable."""
    if not callable(value):
        raise InvalidConfigError(f"{name} must be callable, got {_type_name(value)}")
    return value


def check_provider(name: str, value: object, method: str) -> Any:
    """``None`` or an object with the provider's factory method (``get_tracer``/``get_meter``)."""
    if value is not None and not callable(getattr(value, method, None)):
        raise InvalidConfigError(f"{name} must be None or have a {method}() method")
    return value


def check_byte_limit(name: str, value: object) -> int:
    """An ``int >= 0`` of bytes."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidConfigError(f"{name} must be an int >= 0 (bytes), got {_type_name(value)}")
    return value


def check_route(path_params: object, url_template: object) -> None:
    """Per-call ``path_params`` (``None`` or a mapping with str keys) and ``url_template``
    (``None`` or a str): anything else failed deep in the template code with a bare
    ``TypeError``."""
    if path_params is not None and (
        not isinstance(path_params, Mapping) or not all(isinstance(k, str) for k in path_params)
    ):
        raise InvalidConfigError("path_params must be a mapping of field names (str) to values")
    if url_template is not None and not isinstance(url_template, str):
        raise InvalidConfigError(
            f"url_template must be a str or None, got {_type_name(url_template)}"
        )


def check_no_userinfo(name: str, url: str) -> None:
    """Refuse a URL with userinfo: ``repr`` and logs would show it; use ``auth_headers``."""
    if "@" in urlsplit(url).netloc:
        raise InvalidConfigError(
            f"{name} must not contain userinfo (user:password@); pass credentials in auth_headers"
        )


def check_origin_urls(name: str, value: object) -> list[str]:
    """A list of absolute http(s) URLs that name an origin only: no path, query or userinfo."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidConfigError(f"{name} must be a list of URLs, not a {_type_name(value)}")
    urls: list[str] = []
    for url in value:
        if not isinstance(url, str):
            raise InvalidConfigError(f"{name} entries must be absolute http(s) URLs (str)")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise InvalidConfigError(f"{name} entries must be absolute http(s) URLs") from None
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise InvalidConfigError(
                f"{name} entries must be origins (scheme://host[:port]) without a path, "
                "query or fragment"
            )
        check_no_userinfo(f"{name} entries", url)
        urls.append(url)
    return urls
