"""The deadline that holds: one shared watchdog thread shuts down the socket of a late call.

A per-read socket timeout cannot bound a call: a server that sends one byte every 0.2 s
never lets a read time out, and the session cut each attempt's timeouts to what was left of
the deadline and still returned after 13 s for ``deadline=1``. So, in addition to those
cut timeouts:

1. When a logical request has a deadline, :func:`start` registers a :class:`Watch` with the
   process-wide :class:`Watchdog` (one daemon thread, a heap of deadlines ordered by time)
   and makes it current in the calling context.
2. The session's connection pools (installed on every ``HTTPAdapter`` it mounts, see
   :func:`install`) attach each connection they hand out while a watch is current, and detach
   it when it goes back to the pool.
3. When a deadline passes, the watchdog marks the watch fired and calls
   ``socket.shutdown(SHUT_RDWR)`` on the attached connection: the blocked ``recv`` returns at
   once, urllib3 raises, the connection is discarded, and the session raises
   :class:`~observable_session.DeadlineExceeded`.

The watch is cancelled when the logical request ends (for ``stream=True``: when the response is
returned; the body read afterwards is the caller's), under the same lock the watchdog fires
with, and a connection is detached before it is back in the pool, so a socket that another
request may be using is never shut down.

Cost: with no deadline, one context-variable lookup per connection checkout and return (about
0.2 us per request). With a deadline, about 3 us per logical request: one heap push (O(log n))
and one cancel under a lock, a lock per checkout and return. The thread is notified only when
a new deadline is earlier than the one it sleeps until (waking it on every call cost 16 us per
GET), cancelled entries are dropped when due, and the heap is compacted when more than half of
it is cancelled. Behind an HTTP(S) proxy the proxy's
connection is watched the same way; behind a SOCKS proxy, or with a transport that is not an
``HTTPAdapter``, only the cut timeouts apply.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import math
import os
import socket
import sys
import threading
import time
from typing import Any

from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

__all__ = ["WATCHDOG", "Watch", "Watchdog", "install", "start", "stop"]

_MAX_WAIT_S = 3600.0
_RECHECK_S = 0.005  # a connection still connecting when the deadline passed: look again soon

_CURRENT: contextvars.ContextVar[Watch | None] = contextvars.ContextVar(
    "observable_session_deadline", default=None
)


class Watch:
    """One logical request's deadline and the connection it is using now."""

    __slots__ = ("_lock", "at", "cancelled", "connection", "fired", "shut")

    def __init__(self, at: float) -> None:
        self.at = at
        self.connection: Any = None
        self.fired = False
        self.shut = False  # a socket was shut: what was read from it is not an answer
        self.cancelled = False
        self._lock = threading.Lock()

    def attach(self, connection: Any) -> None:
        """The call now uses ``connection``; shut it at once if the deadline already passed."""
        with self._lock:
            self.connection = connection
            if self.fired:
                self.shut = True
                _shutdown(connection)

    def detach(self, connection: Any) -> None:
        """``connection`` is going back to the pool: it must never be shut for this call."""
        with self._lock:
            if self.connection is connection:
                self.connection = None

    def cancel(self) -> None:
        """The call is over: the watchdog will not touch it."""
        with self._lock:
            self.cancelled = True
            self.connection = None

    def fire(self) -> bool:
        """Mark the deadline passed and shut the connection; whether to look again soon."""
        with self._lock:
            if self.cancelled:
                return False
            self.fired = True
            connection = self.connection
            if connection is None:
                return False
            if getattr(connection, "sock", None) is None:
                return True  # still connecting: its connect timeout is cut; check again
            self.shut = True
            _shutdown(connection)
            return False


def _shutdown(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """A single daemon thread that fires watches when their time comes (heap ordered)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """Empty state; also the child's state after ``fork`` (the parent's lock may be held,
        its thread is gone, and its calls are not the child's)."""
        self._heap: list[tuple[float, int, Watch]] = []
        self._cancelled = 0
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf  # when the thread wakes next (-inf: it is not waiting)

    def watch(self, at: float) -> Watch:
        """A new watch firing at ``at`` (``time.monotonic()`` clock)."""
        watch = Watch(at)
        with self._cond:
            if self._thread is None or not self._thread.is_alive():  # first use, or forked
                self._thread = threading.Thread(
                    target=self._run, name="observable-session-deadline", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (at, next(self._seq), watch))
            # Wake the thread only when it sleeps past this deadline. A wake per call (as
            # "new earliest entry" would give once the thread has emptied the heap) costs a
            # thread switch per request: measured at about 16 us per GET.
            if at < self._wake_at:
                self._wake_at = at
                self._cond.notify()
        return watch

    def cancel(self, watch: Watch) -> None:
        """Cancel ``watch``; compact the heap when most of it is cancelled entries."""
        watch.cancel()
        with self._cond:
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def pending(self) -> int:
        """Entries in the heap (cancelled ones not yet dropped included)."""
        with self._cond:
            return len(self._heap)

    def _due(self) -> list[Watch]:
        """Wait for the earliest deadline; pop and return every live watch that is due.

        Cancelled entries are dropped only when due (or by compaction): popping them as soon
        as they are cancelled would leave the heap empty between calls, and every call would
        have to wake the thread again.
        """
        with self._cond:
            while True:
                now = time.monotonic()
                due: list[Watch] = []
                while self._heap and self._heap[0][0] <= now:
                    watch = heapq.heappop(self._heap)[2]
                    if watch.cancelled:
                        self._cancelled = max(0, self._cancelled - 1)
                    else:
                        due.append(watch)
                if due:
                    self._wake_at = -math.inf  # busy firing: it looks at the heap again after
                    return due
                if not self._heap:
                    self._wake_at = math.inf
                    self._cond.wait()
                    continue
                self._wake_at = self._heap[0][0]
                # threading.TIMEOUT_MAX is finite: wait in slices of at most an hour.
                self._cond.wait(min(self._wake_at - now, _MAX_WAIT_S))

    def _run(self) -> None:
        while True:
            try:
                self._fire_due()
            except Exception:  # pragma: no cover - the watchdog must outlive any surprise
                time.sleep(_RECHECK_S)

    def _fire_due(self) -> None:
        for watch in self._due():
            try:
                again = watch.fire()
            except Exception:  # the watchdog must survive anything a socket does
                again = False
            if again:
                with self._cond:
                    heapq.heappush(
                        self._heap, (time.monotonic() + _RECHECK_S, next(self._seq), watch)
                    )


WATCHDOG = Watchdog()
"""The process-wide watchdog."""

if hasattr(os, "register_at_fork"):  # worker pools fork: the child starts with an empty heap
    os.register_at_fork(after_in_child=WATCHDOG._reset)


Started = tuple["Watch | None", "contextvars.Token[Watch | None]"] | None
"""What :func:`start` returns and :func:`stop` takes."""


def start(at: float | None) -> Started:
    """Watch the calling context until :func:`stop`: connections it checks out are shut when
    ``at`` passes. ``None`` (no deadline) costs one lookup and returns ``None``, unless an
    outer call is watched here (a request made from a hook): then that watch is hidden, so the
    inner call's connections are not attached to the outer deadline."""
    if at is None:
        if _CURRENT.get() is None:
            return None
        return None, _CURRENT.set(None)
    watch = WATCHDOG.watch(at)
    return watch, _CURRENT.set(watch)


def stop(started: Started) -> None:
    """End what :func:`start` began (the call is over, or its response is returned)."""
    if started is not None:
        watch, token = started
        _CURRENT.reset(token)
        if watch is not None:
            WATCHDOG.cancel(watch)


class _WatchedPool:
    """Mixin: attach connections handed out while a watch is current, detach them on return.

    Calls ``HTTPConnectionPool``'s methods directly (the HTTPS pool does not override them):
    cheaper than ``super()`` on a path every request takes, deadline or not.
    """

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = HTTPConnectionPool._get_conn(self, timeout)  # type: ignore[arg-type]
        watch = _CURRENT.get()
        if watch is not None:
            watch.attach(conn)
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            watch = _CURRENT.get()
            if watch is not None:
                watch.detach(conn)
        HTTPConnectionPool._put_conn(self, conn)  # type: ignore[arg-type]


class WatchedHTTPConnectionPool(_WatchedPool, HTTPConnectionPool):
    """``HTTPConnectionPool`` whose connections the deadline watchdog can shut down."""


class WatchedHTTPSConnectionPool(_WatchedPool, HTTPSConnectionPool):
    """``HTTPSConnectionPool`` whose connections the deadline watchdog can shut down."""


_POOL_CLASSES = {"http": WatchedHTTPConnectionPool, "https": WatchedHTTPSConnectionPool}


def _watch_manager(manager: object) -> None:
    # A SOCKS manager brings pool classes of its own: replacing them would drop the proxy.
    if isinstance(manager, PoolManager) and not isinstance(manager, _socks_managers()):
        manager.pool_classes_by_scheme = _POOL_CLASSES


def _socks_managers() -> tuple[type, ...]:
    # Looked up, not imported: importing it without PySocks warns, and requests imports it
    # before making the first SOCKS manager, so none can exist while it is not loaded.
    socks = sys.modules.get("urllib3.contrib.socks")
    manager = getattr(socks, "SOCKSProxyManager", None)
    return (manager,) if isinstance(manager, type) else ()


def install(adapter: Any) -> None:
    """Make an ``HTTPAdapter``'s pool managers (direct and HTTP proxy) build watched pools.

    Other transports are left alone. Proxy managers are made lazily by
    ``proxy_manager_for``, so that method is wrapped on the instance (once).
    """
    manager = getattr(adapter, "poolmanager", None)
    if manager is None:
        return
    _watch_manager(manager)
    for proxy_manager in getattr(adapter, "proxy_manager", {}).values():
        _watch_manager(proxy_manager)
    original = getattr(adapter, "proxy_manager_for", None)
    if original is None or getattr(original, "_observable_session_watched", False):
        return

    def proxy_manager_for(proxy: str, **kwargs: Any) -> Any:
        made = original(proxy, **kwargs)
        _watch_manager(made)
        return made

    proxy_manager_for._observable_session_watched = True  # type: ignore[attr-defined]
    adapter.proxy_manager_for = proxy_manager_for
