"""A fault-injecting HTTP/1.1 upstream on 127.0.0.1, for tests and benchmarks.

Per request it answers normally or injects one fault (:class:`Fault`): a 5xx, a 429 with
``Retry-After``, a delay, a reset (``SO_LINGER`` 0), a close mid-body, a truncated chunked body,
garbage instead of HTTP, or a stall after the headers. A refused connection cannot be decided
by a server that has already accepted, so :data:`Fault.REFUSED` is decided by the *client*
(:meth:`FaultSchedule.refuses`) and served by :class:`RefusedPort`, a port that is bound but not
listening: every connect to it is refused, and nothing else can take it meanwhile.

Faults come from a seeded :class:`FaultSchedule`. The fault of an attempt is a pure function of
``(seed, request target, attempt index for that target)``, so a run with several threads gives
every logical request (one target, e.g. ``/jobs/41``) the same faults on every replay, however
the threads interleave. A request header ``X-Fault: reset,ok`` overrides the schedule: item *n*
applies to the *n*-th attempt at that target, the last item repeats.

The server is a raw socket server with one thread per connection, not ``http.server``: the
byte-level faults need the socket, and every answer goes out in one ``sendall`` with
``TCP_NODELAY`` (no Nagle stall). Connections are kept alive and are never closed by the server
except as part of a fault or on ``Connection: close``, so a client never meets a stale pooled
connection the server did not count. Every attempt is counted once, when its request has been
read in full and before any answer, under a lock (:meth:`FaultServer.stats`).

Run as a script, the server runs in its own process and is driven over stdin/stdout (JSON
lines), which is what :class:`FaultServerProcess` does, so a benchmark's own file descriptors,
memory and GIL are not shared with the upstream::

    python benchmarks/faultserver.py --seed 7 --weights ok=90,5xx=5,reset=5
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

__all__ = [
    "DEFAULT_WEIGHTS",
    "Fault",
    "FaultSchedule",
    "FaultServer",
    "FaultServerProcess",
    "RefusedPort",
    "ServerStats",
    "parse_weights",
]

FAULT_HEADER = "x-fault"
STATUS_5XX = (500, 502, 503, 504)
_REASONS = {
    200: "OK",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_MAX_LINE = 65536
_MAX_HEADERS = 100


class Fault(str, enum.Enum):
    """What the upstream does with one attempt."""

    OK = "ok"
    STATUS_5XX = "5xx"
    STATUS_429 = "429"
    DELAY = "delay"
    RESET = "reset"
    CLOSE_MID_BODY = "close_mid_body"
    TRUNCATED_CHUNKED = "truncated_chunked"
    GARBAGE = "garbage"
    STALL = "stall"
    DRIP_HEADERS = "drip_headers"
    DRIP_BODY = "drip_body"
    HUGE_5XX = "huge_5xx"
    REFUSED = "refused"


SERVER_FAULTS = tuple(f for f in Fault if f is not Fault.REFUSED)

DEFAULT_WEIGHTS: Mapping[Fault, float] = {
    Fault.OK: 88.0,
    Fault.STATUS_5XX: 4.0,
    Fault.STATUS_429: 2.0,
    Fault.DELAY: 2.0,
    Fault.RESET: 1.0,
    Fault.CLOSE_MID_BODY: 1.0,
    Fault.TRUNCATED_CHUNKED: 1.0,
    Fault.GARBAGE: 0.5,
    Fault.STALL: 0.3,
    Fault.DRIP_HEADERS: 0.2,
    Fault.DRIP_BODY: 0.3,
    Fault.HUGE_5XX: 1.0,
    Fault.REFUSED: 0.5,
}

STREAM_HEADER = "x-stream"
"""A client that sends ``X-Stream: 1`` reads with ``stream=True``: :data:`Fault.HUGE_5XX` is
served to it only (a client reading bodies whole reads 200 MB, as requests does, and gets an
ordinary 5xx instead), and :data:`Fault.DRIP_BODY` never (its body read is its own, after the
response is returned: it gets an ordinary answer instead)."""


def parse_weights(text: str) -> dict[Fault, float]:
    """Parse ``"ok=90,5xx=5,refused=1"`` into weights; faults not named weigh 0."""
    weights = dict.fromkeys(Fault, 0.0)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        weights[Fault(name.strip())] = float(value)
    return weights


class Draw(NamedTuple):
    """The schedule's choice for one attempt: the fault, and the status it answers with."""

    fault: Fault
    status: int


@dataclass(frozen=True)
class FaultSchedule:
    """A seeded, replayable choice of fault per attempt.

    ``weights`` are relative. :data:`Fault.REFUSED` is the share of *logical requests* the
    client sends to a refused port (:meth:`refuses`); the other weights are renormalised among
    themselves for every attempt the server sees (:meth:`draw`).
    """

    seed: int = 0
    weights: Mapping[Fault, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def __post_init__(self) -> None:
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must not be negative")
        if sum(self.weights.get(f, 0.0) for f in SERVER_FAULTS) <= 0:
            raise ValueError("at least one server-side fault (or ok) needs a positive weight")

    @classmethod
    def clean(cls, seed: int = 0) -> FaultSchedule:
        """A schedule that always answers normally."""
        return cls(seed, {Fault.OK: 1.0})

    def draw(self, key: str, attempt: int) -> Draw:
        """The fault for attempt number ``attempt`` (0-based) at request target ``key``."""
        rng = random.Random(f"{self.seed}:{key}:{attempt}")
        faults = SERVER_FAULTS
        fault = rng.choices(faults, [self.weights.get(f, 0.0) for f in faults])[0]
        status = {
            Fault.STATUS_5XX: rng.choice(STATUS_5XX),
            Fault.HUGE_5XX: rng.choice(STATUS_5XX),
            Fault.STATUS_429: 429,
        }.get(fault, 200)
        return Draw(fault, status)

    def refuses(self, key: str) -> bool:
        """Whether the client should send logical request ``key`` to the refused port."""
        total = sum(self.weights.get(f, 0.0) for f in Fault)
        share = self.weights.get(Fault.REFUSED, 0.0) / total
        return random.Random(f"{self.seed}:{key}:refused").random() < share

    def to_json(self) -> str:
        """The schedule as one JSON line (for :class:`FaultServerProcess`)."""
        weights = {f.value: w for f, w in self.weights.items()}
        return json.dumps({"seed": self.seed, "weights": weights})

    @classmethod
    def from_json(cls, text: str) -> FaultSchedule:
        """The inverse of :meth:`to_json`."""
        data = json.loads(text)
        weights = {Fault(k): float(v) for k, v in data["weights"].items()}
        return cls(int(data["seed"]), weights)


@dataclass(frozen=True)
class ServerStats:
    """A consistent snapshot of what the server observed.

    Attributes:
        attempts: Requests read in full (one per attempt that reached the server).
        by_fault: Those attempts per fault served (never ``refused``).
        by_method: Those attempts per HTTP method.
        with_authorization: Attempts that carried an ``Authorization`` header.
        connections: Connections accepted.
        open_connections: Connections open at the time of the snapshot.
    """

    attempts: int
    by_fault: Mapping[str, int]
    by_method: Mapping[str, int]
    with_authorization: int
    connections: int
    open_connections: int

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as plain JSON-able data."""
        return {
            "attempts": self.attempts,
            "by_fault": dict(self.by_fault),
            "by_method": dict(self.by_method),
            "with_authorization": self.with_authorization,
            "connections": self.connections,
            "open_connections": self.open_connections,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerStats:
        """The inverse of :meth:`to_dict`."""
        return cls(**data)


class _Request(NamedTuple):
    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes


class _Closed(Exception):
    """The connection is finished (the peer closed it, or a fault closed it)."""


def _read_request(rfile: IO[bytes]) -> _Request | None:
    """Read one request; ``None`` when the peer closed cleanly between requests."""
    line = rfile.readline(_MAX_LINE)
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests (RFC 9112 2.2)
        line = rfile.readline(_MAX_LINE)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        raise _Closed("malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS):
        raw = rfile.readline(_MAX_LINE)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return _Request(method, target, version, headers, _read_body(rfile, headers))


def _read_body(rfile: IO[bytes], headers: Mapping[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(rfile.readline(_MAX_LINE).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.readline(_MAX_LINE)
    length = int(headers.get("content-length", "0") or "0")
    body = rfile.read(length) if length else b""
    if len(body) != length:
        raise _Closed("body shorter than Content-Length")
    return body


def _for_client(draw: Draw, streaming: bool) -> Draw:
    """The fault this client is served (see :data:`STREAM_HEADER`); counted as served."""
    if draw.fault is Fault.HUGE_5XX and not streaming:
        return Draw(Fault.STATUS_5XX, draw.status)
    if draw.fault is Fault.DRIP_BODY and streaming:
        return Draw(Fault.OK, 200)
    return draw


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class FaultServer:
    """The fault-injecting upstream, serving from background threads in this process.

    Use as a context manager, or call :meth:`start` and :meth:`close`.

    Args:
        schedule: Which fault each attempt gets.
        delay_s: How long :data:`Fault.DELAY` waits before a normal answer.
        stall_s: How long :data:`Fault.STALL` holds a connection after the headers before
            closing it (it closes earlier when the client gives up).
        drip_s: Seconds between the bytes of :data:`Fault.DRIP_HEADERS` (a status line and
            a header of 4 kB, one byte at a time) and :data:`Fault.DRIP_BODY` (a 100 kB body).
        huge_bytes: The ``Content-Length`` of :data:`Fault.HUGE_5XX`'s body, sent in 64 kB
            blocks until the client closes the connection.
        retry_after: The ``Retry-After`` value sent with 429.
        host: The interface; loopback only.
        port: The port (0: any free one); a fixed one lets a closed server come back on
            the same origin (``benchmarks/storm.py`` refuses connections that way).
    """

    def __init__(
        self,
        schedule: FaultSchedule | None = None,
        *,
        delay_s: float = 0.01,
        stall_s: float = 10.0,
        retry_after: str = "1",
        host: str = "127.0.0.1",
        drip_s: float = 0.05,
        huge_bytes: int = 200 << 20,
        port: int = 0,
    ) -> None:
        self._schedule = schedule or FaultSchedule()
        self.delay_s = delay_s
        self.stall_s = stall_s
        self.drip_s = drip_s
        self.huge_bytes = huge_bytes
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._attempts_by_key: dict[str, int] = {}
        self._by_fault: dict[str, int] = {}
        self._by_method: dict[str, int] = {}
        self._attempts = 0
        self._with_auth = 0
        self._connections = 0
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server((host, port), backlog=128)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="faultserver-accept", daemon=True
        )
        self._closed = False

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def schedule(self) -> FaultSchedule:
        """The schedule in force."""
        return self._schedule

    def set_schedule(self, schedule: FaultSchedule) -> None:
        """Replace the schedule; attempts already counted keep their fault."""
        with self._lock:
            self._schedule = schedule

    def start(self) -> FaultServer:
        """Start accepting connections."""
        self._accept_thread.start()
        return self

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, close every open connection, and wait for the accept thread."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() on Linux
        self._listener.close()
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._accept_thread.is_alive():
            self._accept_thread.join(timeout=5)

    def stats(self) -> ServerStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return ServerStats(
                attempts=self._attempts,
                by_fault=dict(self._by_fault),
                by_method=dict(self._by_method),
                with_authorization=self._with_auth,
                connections=self._connections,
                open_connections=len(self._open),
            )

    def reset_stats(self) -> None:
        """Zero the counters and forget every target's attempt index."""
        with self._lock:
            self._attempts_by_key.clear()
            self._by_fault.clear()
            self._by_method.clear()
            self._attempts = self._with_auth = self._connections = 0

    # -- serving ------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections += 1
                self._open.add(conn)
            threading.Thread(
                target=self._serve_connection, args=(conn,), name="faultserver-conn", daemon=True
            ).start()

    def _serve_connection(self, conn: socket.socket) -> None:
        rfile = conn.makefile("rb")
        try:
            while True:
                request = _read_request(rfile)
                if request is None:
                    return
                draw, attempt = self._observe(request)
                self._answer(conn, request, draw, attempt)
                if request.headers.get("connection", "").lower() == "close" or (
                    request.version == "HTTP/1.0"
                ):
                    return
        except (_Closed, OSError, ValueError):
            return
        finally:
            with self._lock:
                self._open.discard(conn)
            rfile.close()
            conn.close()

    def _observe(self, request: _Request) -> tuple[Draw, int]:
        """Count the attempt and choose its fault, under the lock."""
        forced = request.headers.get(FAULT_HEADER)
        with self._lock:
            attempt = self._attempts_by_key.get(request.target, 0)
            self._attempts_by_key[request.target] = attempt + 1
            if forced:
                # "name" or "name:status", e.g. "huge_5xx:500,ok"
                names = [n.strip() for n in forced.split(",")]
                name, _, code = names[min(attempt, len(names) - 1)].partition(":")
                fault = Fault(name)
                status = {Fault.STATUS_5XX: 503, Fault.HUGE_5XX: 503, Fault.STATUS_429: 429}.get(
                    fault, 200
                )
                draw = Draw(fault, int(code) if code else status)
            else:
                draw = self._schedule.draw(request.target, attempt)
            draw = _for_client(draw, request.headers.get(STREAM_HEADER) == "1")
            self._attempts += 1
            self._by_fault[draw.fault.value] = self._by_fault.get(draw.fault.value, 0) + 1
            self._by_method[request.method] = self._by_method.get(request.method, 0) + 1
            if "authorization" in request.headers:
                self._with_auth += 1
        return draw, attempt

    def _answer(self, conn: socket.socket, request: _Request, draw: Draw, attempt: int) -> None:
        """Serve ``draw`` on ``conn``; raise :class:`_Closed` when the fault ends the connection."""
        fault = draw.fault
        body = json.dumps(
            {"method": request.method, "path": request.target, "attempt": attempt}
        ).encode()
        if fault in (Fault.DRIP_HEADERS, Fault.DRIP_BODY, Fault.HUGE_5XX):
            self._hostile(conn, fault, draw.status)
        if fault is Fault.DELAY:
            time.sleep(self.delay_s)
        if fault in (Fault.OK, Fault.DELAY, Fault.STATUS_5XX, Fault.STATUS_429):
            headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
            if fault is Fault.STATUS_429:
                headers["Retry-After"] = self.retry_after
            conn.sendall(_head(draw.status, headers) + body)
            return
        if fault is Fault.RESET:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raise _Closed("reset")  # close() with linger 0 sends RST
        if fault is Fault.GARBAGE:
            conn.sendall(b"\x00\xffNOT-HTTP garbage from the fault server\r\n\r\n")
            raise _Closed("garbage")
        if fault is Fault.CLOSE_MID_BODY:
            headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
            conn.sendall(_head(200, headers) + body[: len(body) // 2])
            raise _Closed("closed mid-body")
        if fault is Fault.TRUNCATED_CHUNKED:
            headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
            conn.sendall(_head(200, headers) + b"%x\r\n" % len(body) + body + b"\r\n")
            raise _Closed("truncated chunked")  # no terminating 0-size chunk
        if fault is Fault.STALL:
            headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
            conn.sendall(_head(200, headers))
            select.select([conn], [], [], self.stall_s)  # until the client gives up
            raise _Closed("stalled")
        raise _Closed(f"unservable fault {fault}")

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        """Send ``data`` one byte every ``drip_s``; stop as soon as the client closes."""
        for byte in data:
            if select.select([conn], [], [], self.drip_s)[0]:
                raise _Closed("client gave up")  # EOF (or a next request: not expected)
            conn.sendall(bytes([byte]))

    def _hostile(self, conn: socket.socket, fault: Fault, status: int) -> None:
        """The faults that hold a connection: dripping headers or body, a huge error body."""
        if fault is Fault.DRIP_HEADERS:
            self._drip(conn, f"HTTP/1.1 200 OK\r\nX-Drip: {'d' * 4096}\r\n".encode())
            raise _Closed("dripped headers")
        if fault is Fault.DRIP_BODY:
            conn.sendall(_head(200, {"Content-Length": "100000"}))
            self._drip(conn, b"d" * 100_000)
            raise _Closed("dripped body")
        conn.sendall(
            _head(status, {"Content-Type": "text/plain", "Content-Length": str(self.huge_bytes)})
        )
        block = b"h" * 65536
        left = self.huge_bytes
        while left > 0:  # until the client closes (EPIPE/ECONNRESET end it)
            conn.sendall(block[:left])
            left -= len(block)
        raise _Closed("huge body sent")


class RefusedPort:
    """A loopback port where every connection is refused.

    The socket is bound but never listens: Linux answers each SYN with RST (ECONNREFUSED), and
    no other process can bind the port while this object holds it.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self.host = host
        self.port: int = self._sock.getsockname()[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        """Release the port."""
        self._sock.close()

    def __enter__(self) -> RefusedPort:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FaultServerProcess:
    """A :class:`FaultServer` in a child process, driven over its stdin and stdout.

    Keeps the upstream's threads, sockets, memory and GIL out of the measuring process.
    """

    def __init__(
        self,
        schedule: FaultSchedule | None = None,
        *,
        delay_s: float = 0.01,
        stall_s: float = 10.0,
        retry_after: str = "1",
    ) -> None:
        schedule = schedule or FaultSchedule()
        self._proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--schedule",
                schedule.to_json(),
                "--delay",
                str(delay_s),
                "--stall",
                str(stall_s),
                "--retry-after",
                retry_after,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        hello = self._readline()
        self.host = "127.0.0.1"
        self.port: int = int(json.loads(hello)["port"])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._proc.pid

    def _readline(self) -> str:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fault server process exited ({self._proc.poll()})")
        return line

    def _command(self, line: str) -> str:
        assert self._proc.stdin is not None
        with self._lock:
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
            return self._readline()

    def stats(self) -> ServerStats:
        """The child's counters."""
        return ServerStats.from_dict(json.loads(self._command("stats")))

    def reset_stats(self) -> None:
        """Zero the child's counters and attempt indices."""
        self._command("reset")

    def set_schedule(self, schedule: FaultSchedule) -> None:
        """Replace the child's schedule."""
        self._command("schedule " + schedule.to_json())

    def close(self) -> None:
        """Stop the child (EOF on its stdin) and reap it."""
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> FaultServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _serve_commands(server: FaultServer, lines: Iterator[str], out: IO[str]) -> None:
    """The child's side of :class:`FaultServerProcess`: one JSON line answers each command."""
    for line in lines:
        command, _, arg = line.strip().partition(" ")
        if command == "stats":
            out.write(json.dumps(server.stats().to_dict()) + "\n")
        elif command == "reset":
            server.reset_stats()
            out.write('{"ok": true}\n')
        elif command == "schedule":
            server.set_schedule(FaultSchedule.from_json(arg))
            out.write('{"ok": true}\n')
        else:
            out.write(json.dumps({"error": f"unknown command {command!r}"}) + "\n")
        out.flush()


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin closes; print the port as the first JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", help="e.g. ok=90,5xx=5,reset=5 (default: DEFAULT_WEIGHTS)")
    parser.add_argument("--schedule", help="a FaultSchedule as JSON (overrides seed/weights)")
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--stall", type=float, default=10.0)
    parser.add_argument("--retry-after", default="1")
    args = parser.parse_args(argv)
    if args.schedule:
        schedule = FaultSchedule.from_json(args.schedule)
    else:
        weights = parse_weights(args.weights) if args.weights else dict(DEFAULT_WEIGHTS)
        schedule = FaultSchedule(args.seed, weights)
    server = FaultServer(
        schedule, delay_s=args.delay, stall_s=args.stall, retry_after=args.retry_after
    )
    with server:
        sys.stdout.write(json.dumps({"port": server.port}) + "\n")
        sys.stdout.flush()
        _serve_commands(server, iter(sys.stdin.readline, ""), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
