"""The demo's workload: a seeded mix of calls on seven routes, driven by K threads.

Every call goes through one shared :class:`~observable_session.Session` with an API key, a
``url_template`` per route and small backoffs. Failures the routes are built to produce are
expected; the workload catches them, logs them, and checks that no exception text carries
the key.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from requests import Response
from requests.adapters import HTTPAdapter

from .. import RequestsApiError, Session

__all__ = [
    "AUTH_HEADER",
    "ROUTES",
    "Call",
    "Route",
    "Workload",
    "WorkloadResult",
    "make_session",
    "plan",
]

#: The header that carries the demo's API key.
AUTH_HEADER = "X-API-Key"
#: Per-attempt timeout of the slow route: shorter than the upstream's slow response.
SLOW_ROUTE_TIMEOUT_S = 0.2

_log = structlog.get_logger("observable_session.demo")


@dataclass(frozen=True)
class Route:
    """One route of the workload: how to call it and how the embedded upstream misbehaves."""

    method: str
    template: str
    weight: int
    fault: str
    param: str | None = None
    timeout: float | None = None

    @property
    def name(self) -> str:
        """The span name the Session gives this route: ``"{METHOD} {url.template}"``."""
        return f"{self.method} {self.template}"


ROUTES: tuple[Route, ...] = (
    Route("POST", "/jobs", 14, "503 now and then (POST)"),
    Route("GET", "/jobs/{job_id}", 30, "flaky 503s", "job_id"),
    Route("GET", "/jobs/{job_id}/result", 14, "429 + Retry-After: 1", "job_id"),
    Route("GET", "/jobs/{job_id}/logs", 12, "connection reset", "job_id"),
    Route(
        "GET",
        "/reports/{report_id}",
        12,
        "slow: read timeout 0.2 s",
        "report_id",
        SLOW_ROUTE_TIMEOUT_S,
    ),
    Route("GET", "/artifacts/{artifact_id}", 12, "302 to another origin", "artifact_id"),
    Route("GET", "/me", 6, "echoes the key in a 401"),
)


@dataclass(frozen=True)
class Call:
    """One logical request to make: a route and its path parameter value."""

    route: Route
    value: str


def plan(seed: int, count: int | None) -> Iterator[Call]:
    """The seeded sequence of calls; endless when ``count`` is ``None``.

    Each route appears at least once when ``count`` allows, so even a short run meets every
    fault.
    """
    rng = random.Random(seed)
    weights = [r.weight for r in ROUTES]
    index = 0
    while count is None or index < count:
        if count is not None and count >= len(ROUTES) and index < len(ROUTES):
            route = ROUTES[(seed + index) % len(ROUTES)]
        else:
            route = rng.choices(ROUTES, weights)[0]
        yield Call(route, f"{rng.getrandbits(40):010x}")
        index += 1


def make_session(
    base_url: str, secret: str, tracer_provider: Any, meter_provider: Any, concurrency: int
) -> Session:
    """The Session the workload shares between its threads."""
    session = Session(
        base_url=base_url,
        auth_headers={AUTH_HEADER: secret},
        retries_total=2,
        retries_connect=1,
        backoff_factor=0.05,
        retry_after_max=0.25,
        timeout=5.0,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    session.add_user_agent("observable-session-demo")
    # A pooled connection per worker, so threads do not discard each other's connections.
    for prefix in ("http://", "https://"):
        session.mount(prefix, HTTPAdapter(pool_maxsize=max(concurrency, 10), max_retries=0))
    return session


@dataclass
class WorkloadResult:
    """What the workload saw from the caller's side."""

    issued: Counter[str] = field(default_factory=Counter)
    succeeded: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    failures_by_type: Counter[str] = field(default_factory=Counter)
    auth_at_other_origin: int = 0
    exception_secret_hits: int = 0
    unexpected: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def total_issued(self) -> int:
        """Logical requests made."""
        return sum(self.issued.values())


class Workload:
    """Runs the plan on ``concurrency`` threads until it is done, time is up, or ``stop()``."""

    def __init__(
        self,
        session: Session,
        calls: Iterator[Call],
        *,
        concurrency: int,
        duration: float | None,
        secret: str,
    ) -> None:
        self._session = session
        self._calls = calls
        self._calls_lock = threading.Lock()
        self._concurrency = concurrency
        self._duration = duration
        self._secret = secret
        self._stop = threading.Event()
        self._result = WorkloadResult()
        self._result_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def start(self) -> None:
        """Start the worker threads."""
        # Deliberately log the credential-bearing headers: the redaction processors, not the
        # call site, keep the key out of the log line.
        headers = {**self._session.headers, **self._session.auth_headers}
        _log.info(
            "demo.session.ready",
            base_url=self._session.base_url,
            headers=headers,
            concurrency=self._concurrency,
        )
        self._started = time.monotonic()
        for number in range(self._concurrency):
            thread = threading.Thread(target=self._work, name=f"demo-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Ask the workers to finish their current call and stop."""
        self._stop.set()

    def stop_requested(self) -> bool:
        """Whether ``stop()`` was called (the run was cut short, not finished)."""
        return self._stop.is_set()

    def running(self) -> bool:
        """Whether any worker is still busy."""
        return any(t.is_alive() for t in self._threads)

    def join(self, timeout: float | None = None) -> WorkloadResult:
        """Wait for the workers and return what they saw."""
        for thread in self._threads:
            thread.join(timeout)
        with self._result_lock:
            self._result.elapsed_s = time.monotonic() - self._started
            return self._result

    def elapsed(self) -> float:
        """Seconds since ``start()``."""
        return time.monotonic() - self._started if self._started else 0.0

    def completed(self) -> int:
        """Logical requests finished so far."""
        with self._result_lock:
            return sum(self._result.succeeded.values()) + sum(self._result.failed.values())

    def _next_call(self) -> Call | None:
        if self._stop.is_set():
            return None
        if self._duration is not None and self.elapsed() >= self._duration:
            return None
        with self._calls_lock:
            return next(self._calls, None)

    def _work(self) -> None:
        while (call := self._next_call()) is not None:
            try:
                self._one(call)
            except Exception as exc:  # a bug in the demo, not a fault it injected
                with self._result_lock:
                    self._result.unexpected.append(f"{type(exc).__name__}: {exc}")
                self._stop.set()

    def _one(self, call: Call) -> None:
        route = call.route
        with self._result_lock:
            self._result.issued[route.name] += 1
        try:
            response = self._send(call)
        except RequestsApiError as err:
            self._failed(route, err)
            return
        if route.template.startswith("/artifacts/"):
            body = response.json()
            if isinstance(body, dict) and body.get("authorization_received"):
                with self._result_lock:
                    self._result.auth_at_other_origin += 1
        with self._result_lock:
            self._result.succeeded[route.name] += 1

    def _send(self, call: Call) -> Response:
        route = call.route
        kwargs: dict[str, Any] = {}
        if route.timeout is not None:
            kwargs["timeout"] = route.timeout
        if route.param is not None:
            kwargs["path_params"] = {route.param: call.value}
        else:
            kwargs["url_template"] = route.template
        if route.method == "POST":
            kwargs["json"] = {"name": f"job-{call.value}", "shots": 1024}
        return self._session.request(route.method, route.template, **kwargs)

    def _failed(self, route: Route, err: RequestsApiError) -> None:
        texts = [str(err), repr(err), *traceback.format_exception(err)]
        hits = sum(text.count(self._secret) for text in texts)
        # The telemetry's error.type: the status code for HTTP errors, else the exception name.
        error_type = err.error_type or (
            str(err.status_code) if err.status_code is not None else type(err).__name__
        )
        with self._result_lock:
            self._result.failed[route.name] += 1
            self._result.failures_by_type[error_type.rsplit(".", 1)[-1]] += 1
            self._result.exception_secret_hits += hits
        _log.warning(
            "demo.request.failed",
            route=route.name,
            error=str(err),
            attempts=err.attempts,
            history=[(a.status_code, a.error_type) for a in err.history],
        )
        if err.response is not None and err.status_code == 401:
            # Deliberately log the raw body, which repeats the key: the redaction processors,
            # not the call site, keep it out of the log line.
            _log.warning("demo.upstream.error_body", route=route.name, body=err.response.text[:300])
