"""The demo's workload: a seeded mix of calls on seven routes, driven by K threads.

About half of the jobs it submits it also waits for with ``Session.wait`` (polling the
submit's ``Location`` on the ``GET /jobs/{job_id}`` route until DONE or FAILED); each poll
counts as a call on that route.

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

from .. import ApiHTTPError, RequestsApiError, Session, WaitFailed, WaitTimeout

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
#: How the workload waits for a job: short pauses (the upstream's Retry-After of 1 s is
#: capped by max_interval), a deadline for the whole wait.
WAIT_OPTIONS: dict[str, float] = {
    "interval": 0.02,
    "max_interval": 0.1,
    "multiplier": 1.5,
    "deadline": 10.0,
}
#: Shots for a job meant to fail (the embedded upstream fails jobs above 4096 shots).
FAILING_SHOTS = 8192

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


STATUS_ROUTE = next(r for r in ROUTES if r.template == "/jobs/{job_id}")


def _job_state(response: Response) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("state") if isinstance(body, dict) else None


def _job_done(response: Response) -> bool:
    return _job_state(response) == "DONE"


def _job_failed(response: Response) -> bool:
    return _job_state(response) == "FAILED"


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


def _waits_for(call: Call) -> bool:
    """Whether the workload waits for the job this submit creates (about half of them)."""
    return int(call.value[-1], 16) % 2 == 0


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
    waits: Counter[str] = field(default_factory=Counter)
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
        if route.method == "POST" and _waits_for(call) and "Location" in response.headers:
            self._wait_for(response)

    def _wait_for(self, submitted: Response) -> None:
        """Wait for a submitted job; every poll is counted as a call on the status route."""
        name = STATUS_ROUTE.name
        result = self._result

        def count(response: Response, *args: Any, **kwargs: Any) -> None:
            with self._result_lock:
                result.issued[name] += 1
                if response.status_code >= 400:
                    result.failed[name] += 1
                    result.failures_by_type[str(response.status_code)] += 1
                else:
                    result.succeeded[name] += 1

        outcome = "done"
        try:
            self._session.wait(
                submitted,
                until=_job_done,
                fail_when=_job_failed,
                url_template=STATUS_ROUTE.template,
                hooks={"response": count},
                interval=WAIT_OPTIONS["interval"],
                max_interval=WAIT_OPTIONS["max_interval"],
                multiplier=WAIT_OPTIONS["multiplier"],
                deadline=WAIT_OPTIONS["deadline"],
            )
        except WaitFailed:
            outcome = "failed"
        except WaitTimeout as err:
            outcome = "timeout"
            if err.__cause__ is not None:  # the last poll itself ran into the deadline
                self._poll_failed(err, "DeadlineExceeded")
        except ApiHTTPError as err:
            outcome = "error"  # the poll's response was counted by the hook
            self._check_secret(err)
        except RequestsApiError as err:
            outcome = "error"
            self._poll_failed(err, (err.error_type or type(err).__name__).rsplit(".", 1)[-1])
        with self._result_lock:
            result.waits[outcome] += 1

    def _poll_failed(self, err: RequestsApiError, error_type: str) -> None:
        """A poll that raised, so no response reached the hook."""
        with self._result_lock:
            self._result.issued[STATUS_ROUTE.name] += 1
            self._result.failed[STATUS_ROUTE.name] += 1
            self._result.failures_by_type[error_type] += 1
        self._check_secret(err)

    def _check_secret(self, err: BaseException) -> None:
        texts = [str(err), repr(err), *traceback.format_exception(err)]
        hits = sum(text.count(self._secret) for text in texts)
        with self._result_lock:
            self._result.exception_secret_hits += hits

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
            # About one job in five asks for too many shots: the upstream fails it.
            shots = FAILING_SHOTS if int(call.value[-2], 16) < 3 else 1024
            kwargs["json"] = {"name": f"job-{call.value}", "shots": shots}
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
