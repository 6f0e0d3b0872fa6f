"""A loopback server that hands each request's socket to a test's function: byte-level faults.

Used for what ``http.server`` cannot do: bodies of 200 MB sent lazily, bodies and headers
that drip, broken gzip, chunked bodies cut short. The handler runs on its own thread per
connection and may answer several requests on one connection (``serve`` loops on it).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

Handler = Callable[["RawServer", socket.socket, bytes], bool]
"""``(server, connection, request head) -> keep the connection open for another request?``"""


class RawServer:
    """Accepts on 127.0.0.1; for each request head read, calls ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sent = 0
        self.connections = 0
        self.requests = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.stopping = self._stop  # handlers that stall wait on this, so close() ends them
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def send(self, conn: socket.socket, data: bytes) -> None:
        """``sendall`` and count the bytes."""
        conn.sendall(data)
        with self.lock:
            self.sent += len(data)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with self.lock:
                self.connections += 1
                self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(10)
        buffer = b""
        with contextlib.suppress(OSError), conn:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                with self.lock:
                    self.requests += 1
                if not self.handler(self, conn, head):
                    return

    def close(self) -> None:
        """Stop accepting and wait (bounded) for the handlers."""
        self._stop.set()
        self._accepter.join(2)
        self._sock.close()
        with self.lock:
            conns = list(self._conns)
        for conn in conns:  # wakes handlers blocked reading a next request
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(0.5)


def start(servers: list[RawServer], handler: Any) -> RawServer:
    """Start a raw server with ``handler`` and add it to ``servers`` (closed by ``raw``)."""
    server = RawServer(handler)
    servers.append(server)
    return server
