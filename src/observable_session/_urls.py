"""Joining URLs to the base URL, filling route templates, and origin checks.

Everything here refuses rather than repairs: a URL that could be read two ways (a leading
tab, a control character, a ``../`` that climbs above the base path) is never sent.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit

from ._config import check_no_userinfo
from .errors import InvalidConfigError, InvalidURLError

Origin = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ABSOLUTE = re.compile(r"https?://", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FORMATTER = string.Formatter()


def check_url_text(url: str) -> None:
    """Refuse a URL with leading white space or a control character anywhere."""
    if not isinstance(url, str):
        raise InvalidURLError(f"URL must be a str, got {type(url).__name__}")
    if url[:1].isspace():
        raise InvalidURLError("URL starts with white space; refusing to guess its host")
    if _CONTROL.search(url):
        raise InvalidURLError("URL contains a control character")


def validate_base_url(base_url: object) -> str:
    """Return ``base_url`` if it is an absolute http(s) URL with a host, else raise."""
    if not isinstance(base_url, str):
        raise InvalidConfigError(f"base_url must be a str, got {type(base_url).__name__}")
    try:
        check_url_text(base_url)
    except InvalidURLError as exc:
        raise InvalidConfigError(f"base_url is invalid: {exc}") from None
    parts = urlsplit(base_url)
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise InvalidConfigError("base_url must be an absolute http:// or https:// URL")
    if parts.query or parts.fragment:
        raise InvalidConfigError("base_url must not have a query or fragment")
    check_no_userinfo("base_url", base_url)
    return base_url


def _climbs(relative: str) -> bool:
    """Whether a relative reference's path would step above the directory it is joined to."""
    path = re.split(r"[?#]", relative, maxsplit=1)[0]
    depth = 0
    for raw in re.split(r"[/\\]", path):
        segment = unquote(raw)
        if segment == "..":
            depth -= 1
            if depth < 0:
                return True
        elif segment not in ("", "."):
            depth += 1
    return False


def join_url(base_url: str | None, url: str) -> str:
    """Join ``url`` to ``base_url``: ``x``, ``/x`` and ``//x`` all give ``<base>/x``.

    An absolute ``http(s)://`` URL passes through. Without a base URL, ``url`` is returned
    as is (after the text checks), for requests to validate.
    """
    check_url_text(url)
    if base_url is None or _ABSOLUTE.match(url):
        return url
    relative = url.lstrip("/")
    if _climbs(relative):
        raise InvalidURLError("relative URL climbs above the base URL's path ('..')")
    return base_url.rstrip("/") + "/" + relative


def fill_template(template: str, path_params: Mapping[str, object]) -> str:
    """Fill ``{name}`` fields of a route template with percent-encoded values.

    Values are encoded with no safe characters, so a value can never add a path segment; a
    value of ``.`` or ``..`` (which would) and a missing or unused field are refused.
    """
    values: dict[str, str] = {}
    try:
        fields = [name for _, name, _, _ in _FORMATTER.parse(template) if name is not None]
    except ValueError as exc:
        raise InvalidURLError(f"url template is malformed: {exc}") from None
    for name in fields:
        if name not in path_params:
            raise InvalidURLError(f"path_params has no value for {{{name}}}")
        value = str(path_params[name])
        if value in ("", ".", ".."):
            raise InvalidURLError(f"path_params[{name!r}] must not be empty, '.' or '..'")
        values[name] = quote(value, safe="")
    unused = set(path_params) - set(fields)
    if unused:
        raise InvalidURLError(f"path_params has keys not in the template: {sorted(unused)}")
    return template.format(**values)


def template_path(base_url: str | None, template: str) -> str:
    """The ``url.template`` attribute: the template's path, joined to the base path."""
    joined = (
        template
        if base_url is None or _ABSOLUTE.match(template)
        else (base_url.rstrip("/") + "/" + template.lstrip("/"))
    )
    path = re.split(r"[?#]", joined, maxsplit=1)[0]
    if _ABSOLUTE.match(path):
        path = urlsplit(path).path
    return path or "/"


def origin_of(url: str) -> Origin | None:
    """``(scheme, host, port)`` of an http(s) URL, or ``None`` for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return (scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme])
