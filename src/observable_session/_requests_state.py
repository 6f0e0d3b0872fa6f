"""``requests.Session``'s own state, set without building its two adapters until first use.

``requests.Session.__init__`` builds two ``HTTPAdapter`` (each a pool manager, a retry
object, a pool container): half of what ``requests.Session()`` costs, and paid by every
session of an orchestrator that makes one per job. A session sets the same attributes to
the same fresh values here, and mounts the default adapters the first time anything reads
``session.adapters`` (a request, ``mount``, ``get_adapter``, pickling), exactly as
requests would have mounted them, into the instance's ``adapters`` entry, where requests
keeps them.

This is done only while nothing requests' ``__init__`` calls was replaced since the state
was checked (once, against a real ``requests.Session()``): a patched ``__init__``,
``mount`` or ``HTTPAdapter``, a patched name in ``requests.sessions``, and any other version
of requests take requests' own ``__init__``, which mounts at once and so runs the patch.
"""

from __future__ import annotations

import sys
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from typing import Any, Final

import requests
from requests import adapters as _adapters_module
from requests import cookies, sessions, utils
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.cookies import RequestsCookieJar, cookiejar_from_dict
from requests.hooks import default_hooks
from requests.models import DEFAULT_REDIRECT_LIMIT
from requests.structures import CaseInsensitiveDict
from requests.utils import default_headers

from ._forksafe import renew_after_fork

__all__ = ["default_adapters", "set_requests_state", "untouched"]

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

# HTTPAdapter.__init__'s defaults (pool sizes, retries, blocking) in 2.31 to 2.34.
_ADAPTER_DEFAULTS: Final = (
    _adapters_module.DEFAULT_POOLSIZE,
    _adapters_module.DEFAULT_POOLSIZE,
    _adapters_module.DEFAULT_RETRIES,
    _adapters_module.DEFAULT_POOLBLOCK,
)

_lock = threading.Lock()


renew_after_fork(sys.modules[__name__], "_lock")

_known: bool | None = None
_pristine: tuple[object, ...] | None = None
# default_headers()' storage when the state was checked: copied, it is what that call makes.
_headers_store: Any = None


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
            and all(
                type(a) is HTTPAdapter and a.max_retries.total == 0
                for a in state["adapters"].values()
            )
        )
    finally:
        probe.close()


def _hooks(base: type[requests.Session]) -> tuple[object, ...]:
    """Everything ``requests.Session.__init__`` calls or reads: a patch changes one."""
    adapter_init = HTTPAdapter.__init__
    return (
        base.__init__,
        base.mount,
        sessions.HTTPAdapter,
        sessions.default_headers,
        sessions.default_hooks,
        sessions.cookiejar_from_dict,
        sessions.DEFAULT_REDIRECT_LIMIT,
        adapter_init,
        adapter_init.__defaults__,
        # What default_headers() and cookiejar_from_dict({}) read, so the copies stay true.
        utils.default_user_agent,
        utils.DEFAULT_ACCEPT_ENCODING,
        cookies.RequestsCookieJar,
    )


def _defined_in(function: object, module: types.ModuleType) -> bool:
    # A wrapper (functools.wraps, wrapt) is not a function compiled from that module's file.
    return (
        isinstance(function, types.FunctionType)
        and function.__code__.co_filename == module.__file__
    )


def _own(base: type[requests.Session]) -> bool:
    """Whether ``base`` and what it calls are requests' own, as imported here."""
    return (
        _defined_in(base.__init__, sessions)
        and _defined_in(base.mount, sessions)
        and _defined_in(HTTPAdapter.__init__, _adapters_module)
        and HTTPAdapter.__init__.__defaults__ == _ADAPTER_DEFAULTS
        and sessions.HTTPAdapter is HTTPAdapter
        and sessions.default_headers is default_headers
        and sessions.default_hooks is default_hooks
        and sessions.cookiejar_from_dict is cookiejar_from_dict
        and sessions.DEFAULT_REDIRECT_LIMIT == DEFAULT_REDIRECT_LIMIT
        and cookies.RequestsCookieJar is RequestsCookieJar
        and utils.CaseInsensitiveDict is CaseInsensitiveDict
    )


def untouched(base: type[requests.Session]) -> bool:
    """Whether ``base`` (requests' own ``Session``) would build exactly the state set here.

    Checked once against a real ``requests.Session()`` (while nothing is patched), then by
    identity at every call: a patch made since means requests' own ``__init__``.
    """
    global _known, _pristine, _headers_store
    hooks = _hooks(base)
    if _known is None:
        if not _own(base):
            return False  # patched already: decide at a later session, once it is undone
        _pristine = hooks
        _headers_store = default_headers()._store  # type: ignore[attr-defined]
        _known = _probe(base)
    return _known and hooks == _pristine


def set_requests_state(session: Any) -> None:
    """Set what ``requests.Session.__init__`` sets, the adapters left for first use."""
    state = session.__dict__
    store = _headers_store
    if store is None:
        headers = default_headers()
    else:  # default_headers() without its per-call dict building: a third of the time
        headers = CaseInsensitiveDict.__new__(CaseInsensitiveDict)
        headers._store = store.copy()  # type: ignore[attr-defined]
    state["headers"] = headers  # where requests keeps it (through a property here)
    session.auth = None
    session.proxies = {}
    session.hooks = default_hooks()
    session.params = {}
    session.stream = False
    session.verify = True
    session.cert = None
    session.max_redirects = DEFAULT_REDIRECT_LIMIT
    session.trust_env = True
    session.cookies = RequestsCookieJar()  # what cookiejar_from_dict({}) returns, sooner
    # requests replaces adapters a subclass set before calling __init__: so does this.
    state.pop("adapters", None)


def default_adapters(
    session: Any, install: Callable[[BaseAdapter], None]
) -> MutableMapping[str, BaseAdapter]:
    """The session's adapters, the default ones mounted (once, whichever thread asks first).

    Built whole before they are published: another thread never sees one prefix mounted
    and not the other, and one that assigns ``session.adapters`` meanwhile keeps its value.
    ``install`` is what ``Session.mount`` does to each adapter (it may refuse one).
    """
    with _lock:
        state = session.__dict__
        if "adapters" in state:
            adapters: MutableMapping[str, BaseAdapter] = state["adapters"]
            return adapters
        built: OrderedDict[str, BaseAdapter] = OrderedDict()
        for prefix in DEFAULT_PREFIXES:
            adapter = HTTPAdapter()
            install(adapter)
            built[prefix] = adapter
        # setdefault: an assignment made while these were built (without the lock) wins.
        published: MutableMapping[str, BaseAdapter] = state.setdefault("adapters", built)
        return published
