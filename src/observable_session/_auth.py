"""The auth headers of a session: validated, masked in ``repr``, known to the redactor."""

from __future__ import annotations

import re
import threading
from collections.abc import Container, Iterator, Mapping, MutableMapping

from ._credentials import Credentials
from .errors import InvalidConfigError
from .redaction import REDACTED

MIN_SECRET_LENGTH = 4
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")


def check_auth_header(name: object, value: object) -> None:
    """Raise :class:`InvalidConfigError` naming ``name`` (never ``value``) if either is bad."""
    if not isinstance(name, str) or not _HEADER_NAME.match(name):
        raise InvalidConfigError("auth_headers has an invalid header name")
    if not isinstance(value, str):
        raise InvalidConfigError(
            f"auth_headers[{name!r}] must be a str, got {type(value).__name__}"
        )
    if len(value) < MIN_SECRET_LENGTH:
        raise InvalidConfigError(
            f"auth_headers[{name!r}] must be at least {MIN_SECRET_LENGTH} characters "
            "(shorter values cannot be masked safely)"
        )
    if _FORBIDDEN_IN_VALUE.search(value):
        raise InvalidConfigError(f"auth_headers[{name!r}] contains CR, LF or NUL")


class AuthHeaders(MutableMapping[str, str]):
    """A case-insensitive mapping of auth header names to credentials.

    Every value is validated, then registered with the redactor (all its forms), and only
    then made visible to requests: no request can send a value the redactor does not know.
    Rotated-out and deleted values stay masked for the session's life (see
    :mod:`observable_session._credentials`); ``repr`` shows ``REDACTED`` for every value.
    """

    __slots__ = ("__weakref__", "_credentials", "_items", "_lock")

    def __init__(
        self, headers: Mapping[str, str] | None = None, *, credentials: Credentials | None = None
    ) -> None:
        self._lock = threading.Lock()
        items: dict[str, tuple[str, str]] = {}
        for name, value in (headers or {}).items():
            check_auth_header(name, value)
            items[name.lower()] = (name, value)
        self._credentials = Credentials() if credentials is None else credentials
        self._credentials.register([value for _, value in items.values()])
        self._items = items

    def bind(self, credentials: Credentials) -> None:
        """Register the values with ``credentials`` (a session's) from now on."""
        with self._lock:
            credentials.register([value for _, value in self._items.values()])
            self._credentials = credentials

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        check_auth_header(name, value)
        with self._lock:
            self._credentials.register([value])  # before any request can read it
            items = dict(self._items)
            items[name.lower()] = (name, value)
            self._items = items

    def __delitem__(self, name: str) -> None:
        with self._lock:
            items = dict(self._items)
            del items[name.lower()]
            self._items = items  # the old value stays registered: a request may echo it

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, _ in self._items.values()])

    def __len__(self) -> int:
        return len(self._items)

    def lowered_names(self) -> Container[str]:
        """The header names, lower-cased (a snapshot, safe while another thread rotates)."""
        return self._items.keys()

    def pairs(self) -> list[tuple[str, str]]:
        """A snapshot of ``(name, value)`` pairs, safe to use while another thread rotates."""
        return list(self._items.values())

    def __repr__(self) -> str:
        return repr({name: REDACTED for name, _ in self._items.values()})

    def __reduce__(self) -> tuple[object, ...]:
        return (AuthHeaders, (dict(self._items.values()),))
