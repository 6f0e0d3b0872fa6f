"""``requests.Session``'s own state, set without building its two adapters until first use.

``requests.Session.__init__`` builds two ``HTTPAdapter`` (each a pool manager, a retry
object, a pool container): half of what ``requests.Session()`` costs, and paid by every
session of an orchestrator that makes one per job. A session sets the same attributes to
the same fresh values here, and mounts the default adapters the first time anything reads
``session.adapters`` (a request, ``mount``, ``get_adapter``, pickling), exactly as
requests would have mounted them.

This is done only while the installed requests builds exactly the state known here (checked
once against a real ``requests.Session()``): any other version, a subclass that overrides
``mount`` and a session given positional or keyword arguments for a base class take
requests' own ``__init__``, which mounts at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Any, Final

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.cookies import cookiejar_from_dict
from requests.hooks import default_hooks
from requests.models import DEFAULT_REDIRECT_LIMIT
from requests.utils import default_headers

__all__ = ["default_adapters", "known", "set_requests_state"]

#: What ``requests.Session.__init__`` sets (2.31 to 2.34), ``headers`` as its property does.
ATTRIBUTES: Final = (
    "headers",
    "auth",
    "proxies",
    "hooks",
    "params",
    "stream",
    "verify",
    "cert",
    "max_redirects",
    "trust_env",
    "cookies",
    "adapters",
)
DEFAULT_PREFIXES: Final = ("https://", "http://")

_lock = threading.Lock()
_known: bool | None = None


def _probe(base: type[requests.Session]) -> bool:
    probe = base()
    try:
        state = vars(probe)
        return (
            tuple(state) == ATTRIBUTES
            and state["headers"] == default_headers()
            and state["auth"] is None
            and state["proxies"] == {}
            and state["hooks"] == default_hooks()
            and state["params"] == {}
            and state["stream"] is False
            and state["verify"] is True
            and state["cert"] is None
            and state["max_redirects"] == DEFAULT_REDIRECT_LIMIT
            and state["trust_env"] is True
            and not state["cookies"]
            and tuple(state["adapters"]) == DEFAULT_PREFIXES
            and all(type(a) is HTTPAdapter for a in state["adapters"].values())
        )
    finally:
        probe.close()


def known(base: type[requests.Session]) -> bool:
    """Whether ``base`` (requests' own ``Session``) builds its state exactly as set here."""
    global _known
    if _known is None:
        _known = _probe(base)
    return _known


def set_requests_state(session: Any) -> None:
    """Set what ``requests.Session.__init__`` sets, the adapters left for first use."""
    session._headers = default_headers()
    session.auth = None
    session.proxies = {}
    session.hooks = default_hooks()
    session.params = {}
    session.stream = False
    session.verify = True
    session.cert = None
    session.max_redirects = DEFAULT_REDIRECT_LIMIT
    session.trust_env = True
    session.cookies = cookiejar_from_dict({})
    session._adapters = None


def default_adapters(session: Any, install: Any) -> MutableMapping[str, BaseAdapter]:
    """The session's adapters, the default ones mounted (once, whichever thread asks first).

    Built whole before they are published: another thread never sees one prefix mounted
    and not the other. ``install`` is what ``Session.mount`` does to each adapter.
    """
    with _lock:
        adapters: MutableMapping[str, BaseAdapter] | None = session._adapters
        if adapters is None:
            built: OrderedDict[str, BaseAdapter] = OrderedDict()
            for prefix in DEFAULT_PREFIXES:
                adapter = HTTPAdapter()
                install(adapter)
                built[prefix] = adapter
            adapters = session._adapters = built
        return adapters
