"""The auth headers of a session: validated, masked in ``repr``, known to the redactor."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, MutableMapping

from .errors import InvalidConfigError
from .redaction import DEFAULT_REDACTOR, REDACTED

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

    Every value is validated when set and registered with the redactor at once, so a
    rotated credential is masked everywhere from the moment it is assigned; ``repr`` shows
    ``REDACTED`` for every value.
    """

    __slots__ = ("__weakref__", "_items", "_lock", "_retired")

    # Rotated-out values stay masked (a request sent with one may still fail and echo it),
    # up to this many, until the session is closed.
    MAX_RETIRED = 64

    def __init__(
        self, headers: Mapping[str, str] | None = None, *, retired: tuple[str, ...] = ()
    ) -> None:
        self._lock = threading.Lock()
        items: dict[str, tuple[str, str]] = {}
        for name, value in (headers or {}).items():
            check_auth_header(name, value)
            items[name.lower()] = (name, value)
        self._items = items
        self._retired = retired[-self.MAX_RETIRED :]
        self.publish()

    def publish(self) -> None:
        """Register the current and rotated-out values with the redactor."""
        values = [value for _, value in self._items.values()]
        DEFAULT_REDACTOR.set_secrets(self, [*values, *self._retired])

    def values_ever(self) -> tuple[str, ...]:
        """The current values and those rotated out: what must stay masked."""
        return (*self._retired, *(value for _, value in self._items.values()))

    def _retire(self, lowered: str) -> None:
        old = self._items.get(lowered)
        if old is not None:
            self._retired = (*self._retired, old[1])[-self.MAX_RETIRED :]

    def forget(self) -> None:
        """Drop these values, rotated-out ones included, from the redactor (session closed)."""
        self._retired = ()
        DEFAULT_REDACTOR.forget(self)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        check_auth_header(name, value)
        with self._lock:
            self._retire(name.lower())
            items = dict(self._items)
            items[name.lower()] = (name, value)
            self._items = items
            self.publish()

    def __delitem__(self, name: str) -> None:
        with self._lock:
            self._retire(name.lower())
            items = dict(self._items)
            del items[name.lower()]
            self._items = items
            self.publish()

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, _ in self._items.values()])

    def __len__(self) -> int:
        return len(self._items)

    def pairs(self) -> list[tuple[str, str]]:
        """A snapshot of ``(name, value)`` pairs, safe to use while another thread rotates."""
        return list(self._items.values())

    def __repr__(self) -> str:
        return repr({name: REDACTED for name, _ in self._items.values()})

    def __reduce__(self) -> tuple[object, ...]:
        return (AuthHeaders, (dict(self._items.values()),))
