"""Soak: many threads share one Session against a fault-injecting upstream; nothing is lost.

N threads (default 8) share ONE :class:`observable_session.Session` wired to a real
OpenTelemetry SDK (a ``TracerProvider`` whose exporter inspects and drops every span, a
``MeterProvider`` with an ``InMemoryMetricReader``) and run a bounded number of logical
requests, each with a deadline, against ``benchmarks/faultserver.py`` running in its own
process. The run has two phases with identical workloads: ``clean`` (the upstream always
answers normally) and ``faults`` (a seeded schedule of 5xx, 429 + Retry-After, delays,
resets, bodies cut short, truncated chunked bodies, garbage, stalls, headers and bodies that
drip a byte every 50 ms, 5xx with a 200 MB body, and refused connections). Each phase prints
its checks and figures; the script exits 1 if any check fails.

A share of requests (20%) use ``stream=True`` and say so (``X-Stream: 1``): they are the ones
served the 200 MB error bodies (a client reading bodies whole reads them as requests does);
their latency ends when the response is returned, which is as far as the deadline holds.
The deadline check allows 0.1 s past each request's own deadline. Before each phase, one
200 MB 500 and one 200 MB 503 retried twice are met with ``stream=True`` in this process,
and the peak RSS (``VmHWM``, reset first) must stay within 10 MB.

Refused connections never reach the upstream, so the upstream cannot count them: the schedule
sends a share of logical requests to a bound-but-not-listening port, the client counts those
attempts (``exc.attempts`` of each such request), and the attempt-count check compares the
attempt spans with ``server-observed + client-counted refused`` attempts. Backoff sleeps are
injected (recorded, not slept; ``--real-sleep`` sleeps them), so the figures measure work,
not waiting.

    python benchmarks/soak.py                 # 100k logical requests per phase, 8 threads
    python benchmarks/soak.py --quick         # CI size: seconds
    python benchmarks/soak.py --seed 7        # replay: same faults for the same requests
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import secrets
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

import observable_session
from observable_session import RequestsApiError, Session
from observable_session.telemetry import _semconv as sc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faultserver import (
    DEFAULT_WEIGHTS,
    Fault,
    FaultSchedule,
    FaultServerProcess,
    RefusedPort,
    parse_weights,
)

TEMPLATE = "/jobs/{job_id}"
HANG_GRACE_S = 5.0
DEADLINE_SLACK_S = 0.1  # the promise: returned or DeadlineExceeded within 0.1 s after it
HUGE_PEAK_LIMIT_MB = 10.0


@dataclass(frozen=True)
class Config:
    """The workload of one run; both phases use it."""

    requests: int = 100_000
    threads: int = 8
    seed: int = 1
    weights: Mapping[Fault, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    deadline_s: float = 2.0
    short_deadline_s: float = 0.3
    short_deadline_share: float = 0.02
    post_share: float = 0.1
    stream_share: float = 0.2
    connect_timeout_s: float = 1.0
    read_timeout_s: float = 0.25
    backoff_factor: float = 0.05
    warmup: int = 5_000
    rss_limit_mb: float = 4.0
    baseline: bool = True
    real_sleep: bool = False


# -- telemetry audits ------------------------------------------------------------------


class SpanStartCounter(SpanProcessor):
    """Counts spans started, so that ``started == exported`` proves every span ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        with self._lock:
            self.started += 1


class AuditExporter(SpanExporter):
    """Inspects every ended span and drops it; memory stays bounded by requests in flight.

    Attempt spans end before their logical span, so each logical span's child count is
    complete when it ends: ``open_children`` only holds logical requests in flight.
    """

    def __init__(self, secret: str, refused_port: int) -> None:
        self._secret = secret
        self._refused_port = refused_port
        self._lock = threading.Lock()
        self.attempt_spans = 0
        self.attempt_spans_refused = 0
        self.logical_spans = 0
        self.exported = 0
        self.secret_hits = 0
        self.child_mismatches = 0
        self.unparented_attempts = 0
        self.open_children: dict[int, int] = {}
        self.attempt_errors: Counter[str] = Counter()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._inspect(span)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def _has_secret(self, span: ReadableSpan) -> bool:
        texts: list[object] = [span.name, span.status.description]
        texts += list((span.attributes or {}).values())
        for event in span.events:
            texts.append(event.name)
            texts += list((event.attributes or {}).values())
        return any(self._secret in str(t) for t in texts)

    def _inspect(self, span: ReadableSpan) -> None:
        attrs = span.attributes or {}
        secret = self._has_secret(span)
        assert span.context is not None
        with self._lock:
            self.exported += 1
            self.secret_hits += secret
            if span.kind is SpanKind.CLIENT:
                self.attempt_spans += 1
                self.attempt_spans_refused += attrs.get(sc.SERVER_PORT) == self._refused_port
                self.attempt_errors[str(attrs.get(sc.ERROR_TYPE, "none"))] += 1
                if span.parent is None:
                    self.unparented_attempts += 1
                else:
                    parent = span.parent.span_id
                    self.open_children[parent] = self.open_children.get(parent, 0) + 1
            else:
                self.logical_spans += 1
                children = self.open_children.pop(span.context.span_id, 0)
                if children != attrs.get(sc.ATTEMPTS):
                    self.child_mismatches += 1


class LogAudit:
    """A structlog processor that counts events, looks for the secret, and drops them."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._lock = threading.Lock()
        self.events: Counter[str] = Counter()
        self.secret_hits = 0

    def reset(self) -> None:
        """Start counting afresh (one phase)."""
        with self._lock:
            self.events.clear()
            self.secret_hits = 0

    def __call__(self, logger: object, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        secret = self.secret in repr(event_dict)
        with self._lock:
            self.events[str(event_dict.get("event"))] += 1
            self.secret_hits += secret
        raise structlog.DropEvent


class Telemetry:
    """A real SDK for one phase: span audit, metric reader."""

    def __init__(self, secret: str, refused_port: int) -> None:
        self.starts = SpanStartCounter()
        self.spans = AuditExporter(secret, refused_port)
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(self.starts)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def metrics(self) -> dict[str, list[Any]]:
        """Every metric's data points by instrument name (cumulative)."""
        points: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


class SleepRecorder:
    """The session's injected sleep: records the backoff asked for; sleeps it only if ``real``."""

    def __init__(self, real: bool = False) -> None:
        self._lock = threading.Lock()
        self.real = real
        self.total = 0.0
        self.calls = 0

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.total += seconds
            self.calls += 1
        if self.real:
            time.sleep(seconds)


# -- process figures -------------------------------------------------------------------


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def rss_kb() -> int:
    """Resident set size of this process, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pooled_connections(session: Session) -> int:
    """Idle connections with an open socket in the session's pools."""
    idle = 0
    for adapter in session.adapters.values():
        manager = getattr(adapter, "poolmanager", None)
        if manager is None:
            continue
        for key in list(manager.pools.keys()):
            pool = manager.pools.get(key)
            if pool is not None:
                idle += sum(1 for c in list(pool.pool.queue) if c is not None and c.sock)
    return idle


@dataclass
class Snapshot:
    """Process figures at one instant (after a full garbage collection)."""

    fds: int
    rss_kb: int
    idle_pooled: int

    @classmethod
    def take(cls, session: Session | None) -> Snapshot:
        gc.collect()
        idle = pooled_connections(session) if session is not None else 0
        return cls(open_fds(), rss_kb(), idle)


def peak_rss_kb() -> int:
    """Peak resident set size of this process (``VmHWM``), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs`` 5); whether that worked."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def huge_body_probe(base_url: str) -> Check:
    """Peak RSS while a 200 MB 500 and a 200 MB 503 retried twice are met with stream=True.

    Run in this process, one request at a time, before a phase's counters are reset. The
    error message reads at most ``error_body_limit`` (64 KiB) and each retried response is
    drained at most that much, else its connection is closed: the peak must stay flat.
    """
    gc.collect()
    was_reset = reset_peak_rss()
    start_kb = rss_kb() if was_reset else peak_rss_kb()
    seen: list[str] = []
    began = time.perf_counter()
    for fault, retries in (("huge_5xx:500", 0), ("huge_5xx:503", 2)):
        with Session(base_url=base_url, retries_total=retries, sleep=lambda s: None) as session:
            try:
                session.get(
                    "/huge", headers={"X-Fault": fault, "X-Stream": "1"}, stream=True, timeout=5
                )
                seen.append("no error")
            except RequestsApiError as exc:
                seen.append(f"{type(exc).__name__} {exc.status_code} x{exc.attempts}")
    took = time.perf_counter() - began
    growth_mb = (peak_rss_kb() - start_kb) / 1024
    expected = ["ApiHTTPError 500 x1", "ApiHTTPError 503 x3"]
    return Check(
        "huge error bodies (stream=True): peak RSS",
        seen == expected and growth_mb < HUGE_PEAK_LIMIT_MB,
        f"peak {growth_mb:+.2f} MB < {HUGE_PEAK_LIMIT_MB:g} MB for a 200 MB 500 and a 200 MB "
        f"503 retried twice ({'; '.join(seen)}; {took:.2f} s; peak "
        f"{'reset first' if was_reset else 'not resettable: vs earlier peak'})",
    )


# -- the workload ----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What logical request ``i`` does; a pure function of (seed, i)."""

    method: str
    deadline: float
    refused: bool
    stream: bool = False


def plan_for(cfg: Config, schedule: FaultSchedule, i: int) -> Plan:
    """The method, deadline and target of logical request ``i``."""
    rng = random.Random(f"{cfg.seed}:plan:{i}")
    method = "POST" if rng.random() < cfg.post_share else "GET"
    short = rng.random() < cfg.short_deadline_share
    deadline = cfg.short_deadline_s if short else cfg.deadline_s
    stream = rng.random() < cfg.stream_share
    return Plan(method, deadline, schedule.refuses(TEMPLATE.format(job_id=i)), stream)


OUTCOMES = (
    "ok",
    "ApiHTTPError",
    "ApiConnectionError",
    "ApiConnectTimeout",
    "ApiReadTimeout",
    "ApiTimeout",
    "DeadlineExceeded",
    "RequestsApiError (other)",
    "stream body cut (caller's read)",
    "wrong body",
    "untyped exception",
)


class Workload:
    """Runs logical requests ``[start, stop)`` on threads sharing one session, and records."""

    def __init__(
        self,
        cfg: Config,
        session: Session,
        schedule: FaultSchedule,
        refused_base: str,
        secret: str,
    ) -> None:
        n = cfg.requests
        self.cfg = cfg
        self.session = session
        self.schedule = schedule
        self.refused_base = refused_base
        self.secret = secret
        self.ends = bytearray(n)
        self.outcome = bytearray(n)
        self.latency = array("d", bytes(8 * n))
        self.deadline = array("d", bytes(8 * n))
        self.refused_requests = 0
        self.refused_attempts = 0
        self.exception_secret_hits = 0
        self.untyped: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._next = 0
        self._stop = 0
        self.inflight: list[tuple[int, float] | None] = [None] * cfg.threads
        self.rss_trend: list[tuple[int, int]] = []

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self._stop:
                return None
            self._next += 1
            return self._next - 1

    def run(self, start: int, stop: int) -> tuple[float, list[int]]:
        """Run requests ``[start, stop)``; return wall seconds and indices that hung.

        The calling thread is the watchdog: a request in flight for longer than its deadline
        plus a grace is hung; 30 s after the first one, the run is abandoned. It also samples
        RSS at every tenth of the range (no collection forced: the trend, not the floor).
        """
        self._next, self._stop = start, stop
        threads = [
            threading.Thread(target=self._worker, args=(t,), name=f"soak-{t}", daemon=True)
            for t in range(self.cfg.threads)
        ]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        hung: set[int] = set()
        give_up = None
        tenth = max(1, (stop - start) // 10)
        next_sample = start
        self.rss_trend = []
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(0.1)
            now = time.perf_counter()
            if self._next >= next_sample:
                self.rss_trend.append((self._next, rss_kb()))
                next_sample = self._next + tenth
            for slot in list(self.inflight):
                if slot is not None and now - slot[1] > self.cfg.deadline_s + HANG_GRACE_S:
                    hung.add(slot[0])
            if hung and give_up is None:
                give_up = now + 30.0
            if give_up is not None and now > give_up:
                break
        return time.perf_counter() - began, sorted(hung)

    def _worker(self, slot: int) -> None:
        while (i := self._take()) is not None:
            began = time.perf_counter()
            self.inflight[slot] = (i, began)
            code = self._one(i, began)
            self.outcome[i] = code
            self.ends[i] += 1
            self.inflight[slot] = None

    def _one(self, i: int, began: float) -> int:
        """One logical request; its latency ends when the session returns or raises.

        With ``stream=True`` the deadline holds up to the response; the body read after it is
        the caller's (a cut body there is an outcome of its own, not a session failure).
        """
        plan = plan_for(self.cfg, self.schedule, i)
        self.deadline[i] = plan.deadline
        url = (self.refused_base if plan.refused else "") + TEMPLATE
        kwargs: dict[str, Any] = {"json": {"job": i}} if plan.method == "POST" else {}
        if plan.stream:
            kwargs.update(stream=True, headers={"X-Stream": "1"})
        try:
            response = self.session.request(
                plan.method, url, path_params={"job_id": i}, deadline=plan.deadline, **kwargs
            )
        except RequestsApiError as exc:
            self.latency[i] = time.perf_counter() - began
            return self._failed(plan, exc)
        except BaseException as exc:  # the soak's whole point: nothing untyped escapes
            self.latency[i] = time.perf_counter() - began
            with self._lock:
                self.untyped[f"{type(exc).__module__}.{type(exc).__qualname__}"] += 1
            return OUTCOMES.index("untyped exception")
        self.latency[i] = time.perf_counter() - began
        try:
            body = response.json()
        except requests.JSONDecodeError:
            body = None
        except requests.RequestException:  # only a stream=True body read can fail here
            response.close()
            return OUTCOMES.index("stream body cut (caller's read)")
        expected = {"method": plan.method, "path": f"/jobs/{i}"}
        if response.status_code != 200 or not isinstance(body, dict):
            return OUTCOMES.index("wrong body")
        if {k: body.get(k) for k in expected} != expected:
            return OUTCOMES.index("wrong body")
        return OUTCOMES.index("ok")

    def _failed(self, plan: Plan, exc: RequestsApiError) -> int:
        texts = (str(exc), repr(exc), str(exc.__cause__), repr(exc.history))
        leaked = any(self.secret in t for t in texts)
        with self._lock:
            self.exception_secret_hits += leaked
            if plan.refused:
                self.refused_requests += 1
                self.refused_attempts += exc.attempts
        name = type(exc).__name__
        if name in OUTCOMES:
            return OUTCOMES.index(name)
        return OUTCOMES.index("RequestsApiError (other)")


# -- one phase -------------------------------------------------------------------------


@dataclass
class Check:
    """One verdict line."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"  [{'PASS' if self.ok else 'FAIL'}] {self.name} | {self.detail}"


@dataclass
class PhaseResult:
    """What one phase measured, and its verdicts."""

    name: str
    checks: list[Check]
    throughput: float
    p50_ms: float
    p99_ms: float
    lines: list[str]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    if not sorted_values:
        return float("nan")
    rank = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[rank]


def _sum_points(points: Iterable[Any], attr: str) -> int:
    return int(sum(getattr(p, attr) for p in points))


def run_phase(
    name: str,
    cfg: Config,
    schedule: FaultSchedule,
    server: FaultServerProcess,
    refused: RefusedPort,
    logs: LogAudit,
) -> PhaseResult:
    """Run the workload once under ``schedule`` with a fresh session and SDK, then check it."""
    secret = logs.secret
    huge = huge_body_probe(server.base_url)
    server.set_schedule(schedule)
    server.reset_stats()
    logs.reset()
    sleeps = SleepRecorder(cfg.real_sleep)
    before = Snapshot.take(None)
    otel = Telemetry(secret, refused.port)
    session = Session(
        base_url=server.base_url,
        auth_headers={"Authorization": f"Bearer {secret}", "X-Api-Key": secret},
        timeout=(cfg.connect_timeout_s, cfg.read_timeout_s),
        backoff_factor=cfg.backoff_factor,
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
        sleep=sleeps,
    )
    work = Workload(cfg, session, schedule, refused.base_url, secret)
    warmup = min(cfg.warmup, cfg.requests // 3)
    warm_wall, hung = work.run(0, warmup)
    warm = Snapshot.take(session)
    main_wall, hung_main = work.run(warmup, cfg.requests) if not hung else (0.0, [])
    hung += hung_main
    end = Snapshot.take(session)
    stats = server.stats()
    metrics = otel.metrics()
    session.close()
    otel.shutdown()
    del session, work.session
    closed = Snapshot.take(None)

    n = cfg.requests
    outcomes = Counter(OUTCOMES[c] for c in work.outcome)
    ends = Counter(work.ends)
    spans = otel.spans
    attempt_count = _sum_points(metrics.get(sc.METRIC_CLIENT_REQUEST_DURATION, []), "count")
    logical_count = _sum_points(metrics.get(sc.METRIC_REQUEST_DURATION, []), "count")
    retries_points = metrics.get(sc.METRIC_RETRIES, [])
    retries = _sum_points(retries_points, "value")
    active = _sum_points(metrics.get(sc.METRIC_CLIENT_ACTIVE_REQUESTS, []), "value")
    metric_secret = any(
        secret in str(v) for pts in metrics.values() for p in pts for v in p.attributes.values()
    )
    observed = stats.attempts + work.refused_attempts
    main_lat = sorted(work.latency[warmup:])
    max_latency = max(work.latency) if n else 0.0
    overrun = (
        max(lat - dl for lat, dl in zip(work.latency, work.deadline, strict=True)) if n else 0.0
    )
    throughput = (n - warmup) / main_wall if main_wall else float("nan")
    rss_growth_mb = (end.rss_kb - warm.rss_kb) / 1024
    retry_logs = logs.events.get(sc.EVENT_RETRY_SCHEDULED, 0)
    bad = n - outcomes["wrong body"] - outcomes["untyped exception"]

    checks = [
        Check(
            "ended exactly once",
            ends.get(1, 0) == n and not hung,
            f"{ends.get(1, 0)}/{n} (lost {ends.get(0, 0)}, more than once "
            f"{n - ends.get(0, 0) - ends.get(1, 0)}, hung {len(hung)})",
        ),
        Check(
            "response or typed exception",
            bad == n,
            f"{bad}/{n} (wrong body {outcomes['wrong body']}, untyped "
            f"{outcomes['untyped exception']} {dict(work.untyped)})",
        ),
        Check(
            "none outlived its deadline",
            overrun <= DEADLINE_SLACK_S,
            f"worst: {overrun * 1000:+.0f} ms past its own deadline (slack "
            f"{DEADLINE_SLACK_S * 1000:.0f} ms); slowest request {max_latency * 1000:.0f} ms",
        ),
        Check(
            "attempts: spans == server + refused == duration count",
            spans.attempt_spans == observed == attempt_count,
            f"spans {spans.attempt_spans}, server {stats.attempts} + refused "
            f"{work.refused_attempts} = {observed}, {sc.METRIC_CLIENT_REQUEST_DURATION} "
            f"count {attempt_count}",
        ),
        Check(
            "refused attempts: client count == spans to refused port",
            work.refused_attempts == spans.attempt_spans_refused,
            f"{work.refused_attempts} attempts in {work.refused_requests} requests, "
            f"spans {spans.attempt_spans_refused}",
        ),
        Check(
            "logical: spans == requests == duration count",
            spans.logical_spans == n == logical_count,
            f"spans {spans.logical_spans}, requests {n}, {sc.METRIC_REQUEST_DURATION} "
            f"count {logical_count}",
        ),
        Check(
            "retries counter == attempts - logical",
            retries == spans.attempt_spans - n,
            f"{sc.METRIC_RETRIES} {retries}, {spans.attempt_spans} - {n} = "
            f"{spans.attempt_spans - n}, {sc.EVENT_RETRY_SCHEDULED} logs {retry_logs}",
        ),
        Check(
            "each logical span's attempts == its attempt spans",
            spans.child_mismatches == 0
            and not spans.open_children
            and spans.unparented_attempts == 0,
            f"mismatched {spans.child_mismatches}, orphaned "
            f"{sum(spans.open_children.values())}, unparented {spans.unparented_attempts}",
        ),
        Check(
            "every span ended",
            otel.starts.started == spans.exported,
            f"started {otel.starts.started}, ended {spans.exported}",
        ),
        Check(
            "no secret in spans, metrics, logs, exceptions",
            not (
                spans.secret_hits or metric_secret or logs.secret_hits or work.exception_secret_hits
            ),
            f"spans {spans.secret_hits}, metrics {int(metric_secret)}, logs {logs.secret_hits}, "
            f"exceptions {work.exception_secret_hits}",
        ),
        Check(
            "auth headers on every attempt to the origin",
            stats.with_authorization == stats.attempts,
            f"{stats.with_authorization}/{stats.attempts}",
        ),
        Check(
            f"{sc.METRIC_CLIENT_ACTIVE_REQUESTS} back to 0",
            active == 0,
            f"{active}",
        ),
        Check(
            "fds: no socket outside the pool",
            end.fds - end.idle_pooled == warm.fds - warm.idle_pooled,
            f"after warm-up {warm.fds} fds ({warm.idle_pooled} pooled), end {end.fds} fds "
            f"({end.idle_pooled} pooled)",
        ),
        Check(
            "pool bounded, fds back to start after close",
            end.idle_pooled <= cfg.threads and closed.fds == before.fds,
            f"pooled {end.idle_pooled} <= {cfg.threads}; fds before session {before.fds}, "
            f"after close {closed.fds}",
        ),
        huge,
        Check(
            "RSS growth after warm-up",
            rss_growth_mb < cfg.rss_limit_mb,
            f"{rss_growth_mb:+.2f} MB < {cfg.rss_limit_mb} MB "
            f"({warm.rss_kb / 1024:.1f} -> {end.rss_kb / 1024:.1f} MB)",
        ),
    ]
    p50, p99 = percentile(main_lat, 0.50) * 1000, percentile(main_lat, 0.99) * 1000
    reasons = Counter[str]()
    for point in retries_points:
        reasons[str(point.attributes.get(sc.RETRY_REASON))] += int(point.value)
    lines = [
        f"  requests {n} ({warmup} warm-up), threads {cfg.threads}, "
        f"wall {warm_wall + main_wall:.1f} s",
        f"  throughput {throughput:.0f} logical req/s; latency p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms (after warm-up)",
        "  outcomes: " + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()),
        "  server faults served: "
        + ", ".join(f"{k} {v}" for k, v in sorted(stats.by_fault.items()))
        + f"; connections accepted {stats.connections}",
        f"  refused (client-side, not seen by the server): {work.refused_requests} requests, "
        f"{work.refused_attempts} attempts",
        "  retries by reason: "
        + (", ".join(f"{k} {v}" for k, v in reasons.most_common()) or "none"),
        "  attempt error.type: "
        + ", ".join(f"{k} {v}" for k, v in spans.attempt_errors.most_common()),
        "  RSS trend (MB at request #): "
        + ", ".join(f"{kb / 1024:.1f}@{i}" for i, kb in work.rss_trend[-12:]),
        f"  backoff requested ({'slept' if sleeps.real else 'recorded, not slept'}): "
        f"{sleeps.total:.1f} s in {sleeps.calls} sleeps",
    ]
    return PhaseResult(name, checks, throughput, p50, p99, lines)


# -- the run ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Config:
    """Read the command line into a :class:`Config`."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, help="logical requests per phase (100000)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--weights", help="fault weights, e.g. ok=88,5xx=4,...,refused=0.5")
    parser.add_argument("--deadline", type=float, default=2.0, help="seconds per request")
    parser.add_argument("--read-timeout", type=float, default=0.25)
    parser.add_argument("--rss-limit-mb", type=float, default=4.0)
    parser.add_argument("--real-sleep", action="store_true", help="sleep the backoff for real")
    parser.add_argument("--backoff-factor", type=float, default=0.05)
    parser.add_argument("--no-baseline", action="store_true", help="skip the clean phase")
    parser.add_argument("--quick", action="store_true", help="CI size: 1500 requests per phase")
    args = parser.parse_args(argv)
    requests = args.requests or (1500 if args.quick else 100_000)
    return Config(
        requests=requests,
        threads=args.threads,
        seed=args.seed,
        weights=parse_weights(args.weights) if args.weights else dict(DEFAULT_WEIGHTS),
        deadline_s=args.deadline,
        read_timeout_s=args.read_timeout,
        warmup=min(5_000, max(500, requests // 20)),
        rss_limit_mb=args.rss_limit_mb,
        baseline=not args.no_baseline,
        real_sleep=args.real_sleep,
        backoff_factor=args.backoff_factor,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; print every check; return 1 if any failed."""
    cfg = parse_args(argv)
    secret = "soak-" + secrets.token_hex(12)
    logs = LogAudit(secret)
    structlog.configure(processors=[logs], cache_logger_on_first_use=False)
    faults = FaultSchedule(cfg.seed, cfg.weights)
    print(
        f"observable-session {observable_session.__version__} soak: {cfg.requests} logical "
        f"requests per phase, {cfg.threads} threads, seed {cfg.seed}, deadline "
        f"{cfg.deadline_s} s ({cfg.short_deadline_share:.0%} at {cfg.short_deadline_s} s), "
        f"read timeout {cfg.read_timeout_s} s, POST share {cfg.post_share:.0%}, backoff factor "
        f"{cfg.backoff_factor} ({'real' if cfg.real_sleep else 'injected, not slept'})"
    )
    print("  weights: " + ", ".join(f"{f.value}={w:g}" for f, w in cfg.weights.items() if w))
    print(
        "  note: refused connections never reach the server; their attempts are counted on "
        "the client (exc.attempts of the requests the schedule sent to the refused port)"
    )
    results: list[PhaseResult] = []
    with FaultServerProcess(FaultSchedule.clean(cfg.seed)) as server, RefusedPort() as refused:
        phases: list[tuple[str, FaultSchedule]] = [("faults", faults)]
        if cfg.baseline:
            phases.insert(0, ("clean", FaultSchedule.clean(cfg.seed)))
        for name, schedule in phases:
            result = run_phase(name, cfg, schedule, server, refused, logs)
            results.append(result)
            print(f"\nphase {name}:")
            for line in result.lines:
                print(line)
            for check in result.checks:
                print(check.line())
            sys.stdout.flush()
    by_name = {r.name: r for r in results}
    if "clean" in by_name:
        clean, faulty = by_name["clean"], by_name["faults"]
        print(
            f"\nfaults vs clean: throughput x{faulty.throughput / clean.throughput:.2f} "
            f"({faulty.throughput:.0f} vs {clean.throughput:.0f} req/s), "
            f"p50 x{faulty.p50_ms / clean.p50_ms:.2f} ({faulty.p50_ms:.2f} vs "
            f"{clean.p50_ms:.2f} ms), p99 x{faulty.p99_ms / clean.p99_ms:.2f} "
            f"({faulty.p99_ms:.2f} vs {clean.p99_ms:.2f} ms)"
        )
    failed = [f"{r.name}: {c.name}" for r in results for c in r.checks if not c.ok]
    if failed:
        print(f"\nSOAK FAILED: {len(failed)} check(s): " + "; ".join(failed))
        return 1
    print(f"\nSOAK PASSED: {sum(len(r.checks) for r in results)} checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
