"""The placeholder and the names whose values are secret, whatever the value.

Names are matched case-insensitively with ``-`` and ``_`` ignored: ``Authorization``,
``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, ``X-API-Key``, ``api-key``, the query keys
the OpenTelemetry conventions redact, and any name containing ``token``, ``secret``,
``password``, ``passwd``, ``signature``, ``apikey`` (``X-Goog-Api-Key``, ``X-RapidAPI-Key``),
``accesskey``, ``authkey`` (``X-Auth-Key``), ``privatekey`` or ``credential``. Names under
``observable_session.`` never are, nor ``Access-Control-Allow-Credentials`` (a CORS flag).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "NOT_SENSITIVE",
    "REDACTED",
    "SENSITIVE_FRAGMENTS",
    "SENSITIVE_NAMES",
    "SENSITIVE_QUERY_KEYS",
    "NameRules",
]

#: What every masked value, name or URL part is replaced with.
REDACTED: Final = "REDACTED"

#: Header and field names that are sensitive as a whole (compared after normalisation).
SENSITIVE_NAMES: Final = (
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "X-API-Key",
    "api-key",
)
#: Query keys the OpenTelemetry conventions redact in ``url.full``, plus cloud signing keys.
SENSITIVE_QUERY_KEYS: Final = (
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
    "X-Goog-Credential",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
)
#: A name containing any of these (after normalisation) is sensitive.
SENSITIVE_FRAGMENTS: Final = (
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "apikey",
    "accesskey",
    "authkey",
    "privatekey",
    "credential",
)
#: Standard names a fragment matches that hold no secret: the CORS flag, whose one valid
#: value (``true``) would otherwise be registered and masked in every line.
NOT_SENSITIVE: Final = ("Access-Control-Allow-Credentials",)

_OWN_PREFIX: Final = "observable_session."
_CACHE_MAX: Final = 4096


def normalise(name: str) -> str:
    """``name`` lower-cased with ``-`` and ``_`` removed."""
    return name.lower().replace("-", "").replace("_", "")


class NameRules:
    """Which header, field, attribute or query names are sensitive; cached, extendable."""

    __slots__ = ("_exact", "_exempt", "_fragments", "cache", "spellings")

    def __init__(self, extra: Iterable[str] = ()) -> None:
        #: The names as spelled, for the free-text query-key detector.
        self.spellings = frozenset((*SENSITIVE_NAMES, *SENSITIVE_QUERY_KEYS, *extra))
        self._exact = frozenset(normalise(n) for n in self.spellings)
        self._fragments = tuple(normalise(f) for f in SENSITIVE_FRAGMENTS)
        self._exempt = frozenset(normalise(n) for n in NOT_SENSITIVE) - self._exact
        #: Name -> verdict; read directly by the hot paths.
        self.cache: dict[str, bool] = {}

    def extended(self, names: Iterable[str]) -> NameRules:
        """A copy that also treats ``names`` as sensitive."""
        return NameRules((*self.spellings, *names))

    def detector_words(self) -> list[str]:
        """Every spelling and fragment, for the query-key detector."""
        return [*self.spellings, *self._fragments]

    def is_sensitive(self, name: object) -> bool:
        """Whether a field called ``name`` holds a secret (a name that is no text never does).

        A ``str`` subclass (a ``StrEnum`` member) is judged by its characters and ``bytes``
        (a header name requests accepts) as latin-1, neither of them cached: a subclass's
        own ``__eq__``/``__hash__`` could make it stand for another name in the cache.
        """
        if type(name) is not str:
            if isinstance(name, str):
                return self._judged(str.__str__(name))
            if isinstance(name, (bytes, bytearray)):
                return self._judged(bytes(name).decode("latin-1"))
            return False
        cached = self.cache.get(name)
        if cached is not None:
            return cached
        return self._judged(name)

    def _judged(self, name: str) -> bool:
        lowered = name.lower()
        if lowered.startswith(_OWN_PREFIX):
            result = False
        else:
            normalised = normalise(lowered)
            last = normalised.rpartition(".")[2]
            result = (
                normalised in self._exact
                or last in self._exact
                or (
                    normalised not in self._exempt
                    and last not in self._exempt
                    and any(f in normalised for f in self._fragments)
                )
            )
        cache = self.cache
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[name] = result
        return result
