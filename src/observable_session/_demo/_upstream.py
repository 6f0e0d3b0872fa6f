"""The embedded misbehaving upstream the demo talks to.

Two loopback HTTP servers on free ports. The main one serves a small job API whose routes each
misbehave in one way; the second one is "another origin" that the artifact route redirects to,
and it counts every request that arrives carrying an auth header (there should be none).

Jobs have a lifecycle: a submit answers ``202 Accepted`` with ``Location`` (the job's status
URL) and ``Retry-After``; the job is QUEUED, then RUNNING on its first status read, then DONE
(or FAILED, when it asked for more than :data:`MAX_SHOTS` shots) on the next. Every route is
also served under ``/api/v1``, the prefix the README's example uses.

Each request decides its fate from a stable hash of its key (the path, or the job name in a
submitted body) plus how many times that key was seen before, so a given workload meets the
same faults whatever the concurrency: the first attempts fail, a later retry succeeds, and a
few keys fail on every attempt so that retries run out.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
import zlib
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

__all__ = [
    "API_PREFIX",
    "AUTH_HEADER_NAMES",
    "JOB_RETRY_AFTER_S",
    "MAX_SHOTS",
    "SLOW_RESPONSE_S",
    "DemoUpstream",
    "failures_for",
]

#: Headers that carry credentials: the echo route repeats them, the other origin counts them.
AUTH_HEADER_NAMES = ("X-API-Key", "Authorization")
#: How long the slow endpoint takes when it is slow; the workload's timeout is shorter.
SLOW_RESPONSE_S = 0.5
#: The Retry-After value (seconds) sent with a 429.
RETRY_AFTER_S = 1
#: The Retry-After value (seconds) sent with a job submission's 202.
JOB_RETRY_AFTER_S = 1
#: A job asking for more shots than this ends FAILED.
MAX_SHOTS = 4096
#: The optional prefix every route is also served under.
API_PREFIX = "/api/v1"
#: How many distinct keys the attempt counter remembers (bounded for --forever runs).
_MAX_KEYS = 50_000

# Per fault, the share of keys (out of 100) that fail 1, 2 or 3 times before succeeding.
# Three failures exhaust the demo's two retries. The tables are cumulative upper bounds.
_FAILURE_TABLES: dict[str, tuple[tuple[int, int], ...]] = {
    "flaky": ((50, 0), (75, 1), (92, 2), (100, 3)),
    "submit": ((85, 0), (100, 1)),
    "rate_limited": ((60, 0), (100, 1)),
    "reset": ((70, 0), (95, 1), (100, 3)),
    "slow": ((65, 0), (90, 1), (100, 3)),
}

_JOB_STATUS = re.compile(r"^/jobs/(?P<job_id>[^/]+)$")
_JOB_RESULT = re.compile(r"^/jobs/(?P<job_id>[^/]+)/result$")
_JOB_LOGS = re.compile(r"^/jobs/(?P<job_id>[^/]+)/logs$")
_REPORT = re.compile(r"^/reports/(?P<report_id>[^/]+)$")
_ARTIFACT = re.compile(r"^/artifacts/(?P<artifact_id>[^/]+)$")
_BLOB = re.compile(r"^/blobs/(?P<artifact_id>[^/]+)$")


def _unprefixed(path: str) -> tuple[str, str]:
    """``(prefix, rest)``: the API prefix (or ``""``) and the route path under it."""
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return API_PREFIX, path[len(API_PREFIX) :] or "/"
    return "", path


def failures_for(fault: str, key: str) -> int:
    """How many attempts at ``key`` fail before one succeeds, for the given fault."""
    bucket = zlib.crc32(f"{fault}:{key}".encode()) % 100
    for upper, failures in _FAILURE_TABLES[fault]:
        if bucket < upper:
            return failures
    return 0


class _AttemptCounter:
    """Counts requests per key, remembering a bounded number of keys."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def next(self, key: str) -> int:
        """Return the 0-based number of this request for ``key`` and count it."""
        with self._lock:
            seen = self._counts.pop(key, 0)
            self._counts[key] = seen + 1
            if len(self._counts) > _MAX_KEYS:
                self._counts.popitem(last=False)
            return seen


class _Jobs:
    """The submitted jobs and how often each one's status was read (bounded)."""

    __slots__ = ("_jobs", "_lock", "_submitted")

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, tuple[bool, int]] = OrderedDict()
        self._submitted: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def submit(self, name: str, shots: int) -> str:
        """Register a job; the id depends only on the name and how often it was submitted."""
        with self._lock:
            count = self._submitted.pop(name, 0)
            self._submitted[name] = count + 1
            job_id = f"{zlib.crc32(f'{name}:{count}'.encode()):08x}"
            self._jobs[job_id] = (shots > MAX_SHOTS, 0)
            for table in (self._jobs, self._submitted):
                while len(table) > _MAX_KEYS:
                    table.popitem(last=False)
            return job_id

    def read(self, job_id: str) -> str | None:
        """The state of a submitted job, advancing it one step; ``None`` for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            fails, reads = job
            self._jobs[job_id] = (fails, reads + 1)
        if reads == 0:
            return "RUNNING"
        return "FAILED" if fails else "DONE"


class _QuietServer(ThreadingHTTPServer):
    """A threading server that does not print tracebacks when a client gives up."""

    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients time out on the slow endpoint and the reset endpoint aborts on purpose:
        # the broken pipes that follow are expected.
        pass


class _Handler(BaseHTTPRequestHandler):
    """Shared plumbing: keep-alive HTTP/1.1, JSON replies, no access log."""

    protocol_version = "HTTP/1.1"
    wbufsize = -1  # buffer the response: unbuffered writes stall ~40 ms on Nagle/delayed ACK
    server_version = "demo-upstream/1"
    upstream: ClassVar[DemoUpstream]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _reset_connection(self) -> None:
        """Abort the connection with a TCP RST instead of an answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()  # the fd closes (with RST) once rfile/wfile are closed too

    def _host_name(self) -> str:
        host = self.headers.get("Host") or "127.0.0.1"
        if host.startswith("["):
            return host.split("]", 1)[0] + "]"
        return host.rsplit(":", 1)[0] if ":" in host else host


class _ApiHandler(_Handler):
    """The job API: each route misbehaves in its own way."""

    def do_GET(self) -> None:
        """Dispatch a GET to its route."""
        path = _unprefixed(urlsplit(self.path).path)[1]
        self._read_body()
        self.upstream._count("requests")
        if match := _JOB_STATUS.match(path):
            self._flaky_status(path, match["job_id"])
        elif match := _JOB_RESULT.match(path):
            self._rate_limited_result(path, match["job_id"])
        elif match := _JOB_LOGS.match(path):
            self._resetting_logs(path, match["job_id"])
        elif match := _REPORT.match(path):
            self._slow_report(path, match["report_id"])
        elif match := _ARTIFACT.match(path):
            self._redirect_artifact(match["artifact_id"])
        elif path == "/me":
            self._echo_auth()
        elif path == "/healthz":
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, {"message": f"no route for {path}"})

    def do_POST(self) -> None:
        """Submit a job: 202 with Location and Retry-After; a few submissions meet a 503 first."""
        prefix, path = _unprefixed(urlsplit(self.path).path)
        body = self._read_body()
        self.upstream._count("requests")
        if path != "/jobs":
            self._send_json(404, {"message": f"no route for POST {path}"})
            return
        try:
            request = json.loads(body or b"{}")
            name = str(request.get("name", ""))
            shots = int(request.get("shots", 0))
        except (ValueError, AttributeError, TypeError, OverflowError):
            self._send_json(400, {"message": "body must be a JSON object with integer shots"})
            return
        if self._fails("submit", f"submit:{name}"):
            self._send_json(503, {"message": "scheduler busy, try again"})
            return
        job_id = self.upstream._jobs.submit(name, shots)
        headers = {"Location": f"{prefix}/jobs/{job_id}", "Retry-After": str(JOB_RETRY_AFTER_S)}
        payload = {"id": job_id, "job_id": job_id, "name": name, "state": "QUEUED"}
        self._send_json(202, payload, headers)

    def _fails(self, fault: str, key: str) -> bool:
        return self.upstream._attempts.next(key) < failures_for(fault, key)

    def _flaky_status(self, key: str, job_id: str) -> None:
        if self._fails("flaky", key):
            self.upstream._count("503")
            self._send_json(503, {"message": "service unavailable"})
            return
        state = self.upstream._jobs.read(job_id)
        payload: dict[str, object] = {"id": job_id, "job_id": job_id, "state": state or "RUNNING"}
        if state == "FAILED":
            payload["error"] = f"more than {MAX_SHOTS} shots"
        self._send_json(200, payload)

    def _rate_limited_result(self, key: str, job_id: str) -> None:
        if self._fails("rate_limited", key):
            self.upstream._count("429")
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            self._send_json(429, {"message": "too many requests"}, headers)
        else:
            self._send_json(200, {"job_id": job_id, "result": {"counts": {"00": 512, "11": 512}}})

    def _resetting_logs(self, key: str, job_id: str) -> None:
        if self._fails("reset", key):
            self.upstream._count("reset")
            self._reset_connection()
        else:
            self._send_json(200, {"job_id": job_id, "lines": ["queued", "running", "done"]})

    def _slow_report(self, key: str, report_id: str) -> None:
        if self._fails("slow", key):
            self.upstream._count("slow")
            time.sleep(SLOW_RESPONSE_S)
        self._send_json(200, {"report_id": report_id, "rows": 3})

    def _redirect_artifact(self, artifact_id: str) -> None:
        location = f"http://{self._host_name()}:{self.upstream.other_port}/blobs/{artifact_id}"
        self.upstream._count("redirect")
        self._send_json(302, {"location": location}, {"Location": location})

    def _echo_auth(self) -> None:
        # The kind of error message real APIs write: it repeats the credential it rejected.
        name = next((n for n in AUTH_HEADER_NAMES if n in self.headers), AUTH_HEADER_NAMES[0])
        credential = self.headers.get(name, "")
        self.upstream._count("echo")
        self._send_json(401, {"message": f"credential rejected: {name}={credential}"})


class _OtherOriginHandler(_Handler):
    """Another origin (a different port): serves blobs and notes leaked auth headers."""

    def do_GET(self) -> None:
        """Serve a blob, recording whether an auth header came with the request."""
        path = urlsplit(self.path).path
        self._read_body()
        received = any(name in self.headers for name in AUTH_HEADER_NAMES)
        if received:
            self.upstream._count("auth_at_other_origin")
        if match := _BLOB.match(path):
            payload = {"artifact_id": match["artifact_id"], "authorization_received": received}
            self._send_json(200, payload)
        else:
            self._send_json(404, {"message": f"no route for {path}"})


class DemoUpstream:
    """The two loopback servers, started by ``start()`` (or ``with``) and stopped by ``close()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, other_port: int = 0) -> None:
        self._attempts = _AttemptCounter()
        self._jobs = _Jobs()
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        api = type("ApiHandler", (_ApiHandler,), {"upstream": self})
        other = type("OtherOriginHandler", (_OtherOriginHandler,), {"upstream": self})
        self._api = _QuietServer((host, port), api)
        self._other = _QuietServer((host, other_port), other)
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        """The address both servers listen on."""
        return str(self._api.server_address[0])

    @property
    def port(self) -> int:
        """The job API's port."""
        return int(self._api.server_address[1])

    @property
    def other_port(self) -> int:
        """The other origin's port."""
        return int(self._other.server_address[1])

    @property
    def url(self) -> str:
        """The job API's base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def other_origin_url(self) -> str:
        """The other origin's base URL."""
        return f"http://{self.host}:{self.other_port}"

    def counts(self) -> dict[str, int]:
        """A snapshot of what the servers did: requests, 503, 429, reset, slow, ..."""
        with self._lock:
            return dict(self._counts)

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] = self._counts.get(what, 0) + 1

    def start(self) -> DemoUpstream:
        """Serve both servers from daemon threads."""
        for server in (self._api, self._other):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop serving and release the ports."""
        for server in (self._api, self._other):
            if self._threads:
                server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads.clear()

    def __enter__(self) -> DemoUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
