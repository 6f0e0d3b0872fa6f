"""Shared fixtures: scripted loopback HTTP servers and an in-memory OpenTelemetry SDK."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.rawserver import RawServer


@dataclass
class Reply:
    """Answer with this status, body and headers."""

    status: int = 200
    body: bytes | str | dict[str, Any] = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Reset:
    """Accept the request, then reset the connection (RST) without answering."""


@dataclass
class Truncate:
    """Promise a long body, send part of it, and close."""


@dataclass
class Stall:
    """Send the headers, then nothing, for ``seconds``."""

    seconds: float = 1.0


@dataclass
class Echo:
    """Answer ``status`` with a JSON error message that repeats the request's headers."""

    status: int = 401


Action = Reply | Reset | Truncate | Stall | Echo


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Upstream:
    """A threaded HTTP/1.1 server on 127.0.0.1 that follows a script per path."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Action]] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # one write per response: no Nagle / delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                else:
                    body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                with upstream.lock:
                    upstream.seen.append(
                        Seen(self.command, self.path, dict(self.headers.items()), body)
                    )
                    script = upstream.scripts.get(path) or [Reply()]
                    action = script.pop(0) if len(script) > 1 else script[0]
                self._act(action)

            def _read_chunked(self) -> bytes:
                out = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()

            def _act(self, action: Action) -> None:
                if isinstance(action, Reset):
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                if isinstance(action, Truncate):
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"partial")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if isinstance(action, Stall):
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.flush()
                    time.sleep(action.seconds)
                    self.close_connection = True
                    return
                if isinstance(action, Echo):
                    action = Reply(
                        action.status,
                        {"message": f"bad credentials: {dict(self.headers.items())}"},
                    )
                if action.delay:
                    time.sleep(action.delay)
                body = action.body
                if isinstance(body, dict):
                    body = json.dumps(body).encode()
                    action.headers.setdefault("Content-Type", "application/json")
                elif isinstance(body, str):
                    body = body.encode()
                self.send_response(action.status)
                for name, value in action.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle
            do_OPTIONS = do_PURGE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def script(self, path: str, *actions: Action) -> None:
        """Answer requests to ``path`` with ``actions`` in order; the last one repeats."""
        with self.lock:
            self.scripts[path] = list(actions)

    def hits(self, path: str | None = None) -> int:
        """How many requests (to ``path``) the server has seen."""
        with self.lock:
            return sum(1 for s in self.seen if path is None or s.path.split("?")[0] == path)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A scripted loopback server."""
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def other_upstream() -> Iterator[Upstream]:
    """A second loopback server: another origin."""
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


class Otel:
    """A real OpenTelemetry SDK with in-memory span exporter and metric reader."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def providers(self) -> dict[str, Any]:
        """Keyword arguments that point a Session at this SDK."""
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    def spans(self, kind: str | None = None) -> list[ReadableSpan]:
        """Finished spans, optionally only those of one kind (``CLIENT``, ``INTERNAL``)."""
        spans = list(self.exporter.get_finished_spans())
        if kind is None:
            return spans
        return [s for s in spans if s.kind.name == kind]

    def points(self, name: str) -> list[Any]:
        """Data points of metric ``name`` from one collection."""
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        out.extend(metric.data.data_points)
        return out


@pytest.fixture
def otel() -> Iterator[Otel]:
    """A fresh in-memory SDK per test."""
    sdk = Otel()
    yield sdk
    sdk.tracer_provider.shutdown()
    sdk.meter_provider.shutdown()


@pytest.fixture
def no_sleep() -> list[float]:
    """A list that a Session's ``sleep=`` can append to instead of sleeping."""
    return []


@pytest.fixture
def raw() -> Iterator[list[RawServer]]:
    """Raw-socket servers a test starts (``tests.rawserver.start``); closed afterwards."""
    servers: list[RawServer] = []
    yield servers
    for server in servers:
        server.close()
