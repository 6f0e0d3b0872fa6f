"""What requests reads from the environment: proxies, CA bundle, netrc, checked cheaply.

requests calls ``urllib.request.getproxies()`` (a scan of the whole environment) and probes
netrc files on every request. The session reads all of it once, and per request only looks up
the few variables that can change the outcome for an http(s) URL (``_KEY_NAMES``): when one of
them changed, it reads everything again. So changing ``HTTPS_PROXY`` or ``REQUESTS_CA_BUNDLE``
between two requests takes effect as in requests, at the cost of a handful of dictionary
lookups. What is not re-read per request: proxy settings of the operating system (macOS,
Windows registry) and a netrc file created after the session (``refresh_environment()``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.request import getproxies

__all__ = ["Environment"]

_KEY_NAMES = (
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NETRC",
)


_ENCODED_NAMES: tuple[object, ...] | None = None


def _key() -> tuple[object, ...]:
    """The values of ``_KEY_NAMES`` now (in whatever form the environment stores them)."""
    global _ENCODED_NAMES
    # os.environ is looked up at call time: tests (requests' own) patch it with a plain dict.
    environ = os.environ
    if type(environ) is os._Environ:
        # The encoded store behind os.environ: eleven plain dict lookups instead of eleven
        # encode-and-look-up calls (about 0.5 us against 5 us per request).
        data = environ._data  # type: ignore[attr-defined]
        if _ENCODED_NAMES is None:
            _ENCODED_NAMES = tuple(environ.encodekey(name) for name in _KEY_NAMES)
        return tuple(data.get(name) for name in _ENCODED_NAMES)
    return tuple(environ.get(name) for name in _KEY_NAMES)


@dataclass(frozen=True, slots=True)
class Environment:
    """The environment as requests would read it, and the key it was read under."""

    key: tuple[object, ...]
    proxies: Mapping[str, str]
    ca_bundle: str | None
    netrc: bool

    @classmethod
    def read(cls) -> Environment:
        """Read proxies, CA bundle and netrc presence now."""
        environ = os.environ
        netrc_paths = [environ.get("NETRC"), "~/.netrc", "~/_netrc"]
        return cls(
            key=_key(),
            proxies=dict(getproxies()),
            ca_bundle=environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE"),
            netrc=any(p and os.path.exists(os.path.expanduser(p)) for p in netrc_paths),
        )

    def current(self) -> Environment:
        """This one, or a fresh read if a variable that matters changed since."""
        return self if _key() == self.key else Environment.read()
