"""A pytest plugin for running requests' own test suite: a network fence, and the Session swap.

Loaded with ``-p requests_suite_plugin`` (from ``run_requests_suite.py``), so it runs before
any test module imports requests. Two jobs:

1. **The fence**, in every run (the baseline too): no packet leaves the machine.
   ``socket.getaddrinfo`` (and ``gethostbyname``/``_ex``) refuse every name other than IP
   literals and ``localhost``, ``gethostbyaddr`` every address but the loopback;
   ``socket.socket.connect`` refuses every non-loopback address, except the suite's TARPIT
   ``10.255.255.1`` (used for connect timeouts), which goes to a loopback listener whose
   backlog is full, so the handshake never completes and the connect times out as it would.
2. **The swap**, when ``OBSERVABLE_SESSION_SWAP`` is ``compat`` or ``default``:
   ``requests.Session``/``requests.sessions.Session`` become a *class* (the suite subclasses
   it) built on ``observable_session.Session``, and ``requests.session()`` returns one.
   ``compat`` is the Session's most requests-compatible documented settings
   (``raise_for_status=False``, ``timeout=None``, ``retries_total=0``, ``retries_connect=0``,
   requests' User-Agent); ``default`` is the Session as constructed with no arguments.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Any

TARPIT = "10.255.255.1"

_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_ip_literal(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def _fenced_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    if name is None or _is_ip_literal(name) or str(name).lower() in ("localhost", "localhost."):
        return _real_getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (fenced)")


_real_gethostbyname = socket.gethostbyname
_real_gethostbyname_ex = socket.gethostbyname_ex
_real_gethostbyaddr = socket.gethostbyaddr


def _local_name(name: object) -> bool:
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)
    return _is_ip_literal(text) or text.lower() in ("localhost", "localhost.")


def _fenced_gethostbyname(name: str) -> str:
    if _local_name(name):
        return _real_gethostbyname(name)
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (fenced)")


def _fenced_gethostbyname_ex(name: str) -> tuple[str, list[str], list[str]]:
    if _local_name(name):
        return _real_gethostbyname_ex(name)
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (fenced)")


def _fenced_gethostbyaddr(address: str) -> tuple[str, list[str], list[str]]:
    # A reverse lookup of anything but the loopback would ask a DNS server.
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = str(address).lower() in ("localhost", "localhost.")
    if loopback:
        return _real_gethostbyaddr(address)
    raise socket.herror(1, "Unknown host (fenced)")


def _tarpit_listener() -> tuple[str, int]:
    """A loopback listener that never accepts, its one-slot backlog already full."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(3):  # Linux queues backlog + 1 handshakes; later SYNs are dropped
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        _real_connect_ex(filler, address)
        fillers.append(filler)
    _KEEP.extend([listener, *fillers])
    return address


_KEEP: list[socket.socket] = []
_TARPIT_ADDRESS: tuple[str, int] | None = None


def _fenced_address(sock: socket.socket, address: Any) -> Any:
    global _TARPIT_ADDRESS
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return address
    host = address[0]
    if isinstance(host, str) and host.lower() in ("localhost", "localhost."):
        return address  # connect() resolves it itself: to the loopback
    if host == TARPIT:
        if _TARPIT_ADDRESS is None:
            _TARPIT_ADDRESS = _tarpit_listener()
        return _TARPIT_ADDRESS
    try:
        loopback = ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise OSError(errno.ENETUNREACH, f"non-loopback connect refused by the fence: {host}")
    return address


def _fenced_connect(self: socket.socket, address: Any) -> None:
    _real_connect(self, _fenced_address(self, address))


def _fenced_connect_ex(self: socket.socket, address: Any) -> int:
    try:
        target = _fenced_address(self, address)
    except OSError as exc:
        return exc.errno or errno.ENETUNREACH
    return _real_connect_ex(self, target)


socket.getaddrinfo = _fenced_getaddrinfo
socket.gethostbyname = _fenced_gethostbyname
socket.gethostbyname_ex = _fenced_gethostbyname_ex
socket.gethostbyaddr = _fenced_gethostbyaddr
socket.socket.connect = _fenced_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _fenced_connect_ex  # type: ignore[method-assign]


import requests  # noqa: E402 - after the fence, before any test module
import requests.sessions  # noqa: E402
from requests.utils import default_user_agent  # noqa: E402

import observable_session  # noqa: E402


class CompatSession(observable_session.Session):
    """observable_session.Session in its most requests-compatible documented settings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("raise_for_status", False)
        kwargs.setdefault("timeout", None)
        kwargs.setdefault("retries_total", 0)
        kwargs.setdefault("retries_connect", 0)
        kwargs.setdefault("headers", {"User-Agent": default_user_agent()})
        super().__init__(*args, **kwargs)


_SWAPPED: type[requests.Session] = requests.Session


def _session() -> requests.Session:
    """``requests.session()``, returning the swapped-in class."""
    return _SWAPPED()


def _swap(mode: str) -> None:
    global _SWAPPED
    if mode == "compat":
        _SWAPPED = CompatSession
    elif mode == "default":
        _SWAPPED = observable_session.Session
    else:
        raise SystemExit(f"OBSERVABLE_SESSION_SWAP must be compat, default or empty: {mode!r}")
    requests.Session = _SWAPPED  # type: ignore[misc]
    requests.sessions.Session = _SWAPPED  # type: ignore[misc]
    requests.session = _session
    requests.sessions.session = _session


_MODE = os.environ.get("OBSERVABLE_SESSION_SWAP", "")
if _MODE:
    _swap(_MODE)


def pytest_report_header() -> str:
    """Say in the report header which run this is."""
    return f"requests_suite_plugin: fence on, swap={_MODE or 'none (baseline)'}"
