"""Everything a demo run found, the checks that it adds up, and its JSON form."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from .._version import __version__
from ..telemetry import _semconv as sc
from ._collect import MetricTotals, RouteStats, WaterfallView, percentile
from ._waits import WaitStats, WaitView
from ._workload import AUTH_HEADER, ROUTES, WorkloadResult

__all__ = ["Check", "DemoReport", "LogTap", "build_checks", "report_json"]

#: How many distinct log events the tap keeps a sample line of.
_SAMPLE_EVENTS = 32


class LogTap:
    """A text stream for the JSON log lines: counts them, samples a few, scans for secrets.

    It keeps the first line of each event that shows ``REDACTED`` (bounded), so memory stays
    flat on a ``--forever`` run, and counts every occurrence of a secret.
    """

    def __init__(self, secrets: tuple[str, ...] = (), tee: TextIO | None = None) -> None:
        self._secrets = tuple(s for s in secrets if s)
        self._tee = tee
        self._lock = threading.Lock()
        self._partial = ""
        self.lines = 0
        self.redacted_lines = 0
        self.secret_hits = 0
        self.events: Counter[str] = Counter()
        self._samples: dict[str, str] = {}

    def write(self, text: str) -> int:
        """Take some text; complete lines are counted and scanned."""
        with self._lock:
            buffered = self._partial + text
            *complete, self._partial = buffered.split("\n")
            for line in complete:
                if line.strip():
                    self._take(line)
            if self._tee is not None and complete:
                self._tee.write("".join(f"{line}\n" for line in complete))
        return len(text)

    def flush(self) -> None:
        """Flush the copy, if any; lines are processed as they are written."""
        with self._lock:
            if self._tee is not None:
                self._tee.flush()

    def isatty(self) -> bool:
        """Never a terminal, so loggers render JSON rather than colours."""
        return False

    def _take(self, line: str) -> None:
        self.lines += 1
        self.secret_hits += sum(line.count(secret) for secret in self._secrets)
        event = _event_of(line)
        self.events[event] += 1
        redacted = sc.REDACTED in line
        self.redacted_lines += redacted
        kept = self._samples.get(event)
        # Keep the first line of each event, upgraded to the first one showing REDACTED.
        if kept is None:
            if len(self._samples) < _SAMPLE_EVENTS:
                self._samples[event] = line
        elif redacted and sc.REDACTED not in kept:
            self._samples[event] = line

    def samples(self, limit: int) -> list[str]:
        """Up to ``limit`` lines: ones showing ``REDACTED`` (the demo's deliberate leaks
        first), then one of the library's retry events with its trace and span ids."""
        with self._lock:
            redacted = sorted(
                (kv for kv in self._samples.items() if sc.REDACTED in kv[1]),
                key=lambda kv: _sample_rank(kv[0]),
            )
            chosen = [line for _, line in redacted[: max(limit - 1, 1)]]
            for event in (sc.EVENT_RETRY_SCHEDULED, sc.EVENT_ATTEMPT_FAILED):
                line = self._samples.get(event)
                if line is not None and line not in chosen and len(chosen) < limit:
                    chosen.append(line)
                    break
            return chosen


def _event_of(line: str) -> str:
    import json

    try:
        record = json.loads(line)
    except ValueError:
        return "?"
    return str(record.get("event", "?")) if isinstance(record, dict) else "?"


def _sample_rank(event: str) -> tuple[int, str]:
    preferred = ("demo.session.ready", "demo.upstream.error_body", "demo.request.failed")
    return (preferred.index(event) if event in preferred else len(preferred), event)


@dataclass(frozen=True)
class Check:
    """One invariant the demo verifies about its own run."""

    ok: bool
    text: str


@dataclass
class DemoReport:
    """The result of a run, ready to render or to serialise."""

    target: str
    embedded: bool
    seed: int
    concurrency: int
    requested: int | None
    duration_limit: float | None
    routes: list[RouteStats]
    waterfall: WaterfallView | None
    metrics: MetricTotals
    workload: WorkloadResult
    log_lines: int
    log_redacted_lines: int
    log_secret_hits: int
    log_samples: list[str]
    spans_seen: int
    span_secret_hits: int
    output_secret_hits: int = 0
    other_origin: str | None = None
    otlp: str | None = None
    prometheus_port: int | None = None
    interrupted: bool = False
    waits: WaitStats = field(default_factory=WaitStats)
    wait_view: WaitView | None = None
    checks: list[Check] = field(default_factory=list)

    def totals(self) -> RouteStats:
        """All routes together."""
        total = RouteStats("all routes")
        for stats in self.routes:
            total.requests += stats.requests
            total.attempts += stats.attempts
            total.redirects += stats.redirects
            total.retries_by_reason.update(stats.retries_by_reason)
            total.errors_by_type.update(stats.errors_by_type)
            total.attempts_attribute += stats.attempts_attribute
            total.durations.extend(stats.durations)
        return total


def fault_of(route_name: str) -> str:
    """The misbehaviour the embedded upstream injects on a route."""
    return next((r.fault for r in ROUTES if r.name == route_name), "")


def build_checks(report: DemoReport) -> list[Check]:
    """The invariants: counts add up, spans and metrics agree, the key never shows."""
    total = report.totals()
    wl = report.workload
    checks = [
        Check(
            all(s.adds_up for s in report.routes) and total.adds_up,
            f"attempts add up on every route: {total.attempts} attempts = {total.requests} "
            f"requests + {total.retries} retries + {total.redirects} redirect hops",
        ),
        Check(
            total.attempts_attribute == total.attempts,
            f"the {sc.ATTEMPTS} attributes sum to {total.attempts_attribute}, one per attempt span",
        ),
        Check(
            report.metrics.attempt_points == total.attempts
            and report.metrics.request_points == total.requests
            and report.metrics.retries == total.retries,
            f"metrics agree with spans: {report.metrics.attempt_points} attempt points, "
            f"{report.metrics.request_points} request points, {report.metrics.retries} "
            "retries counted",
        ),
        Check(
            wl.total_issued == total.requests and wl.failures_by_type == total.errors_by_type,
            f"the workload made {wl.total_issued} calls and caught {sum(wl.failed.values())} "
            f"errors; the spans show {total.requests} and {total.errors}, of the same types",
        ),
    ]
    if wl.waits or report.waits.waits:
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(wl.waits.items()))
        checks.append(
            Check(
                wl.waits == report.waits.outcomes,
                f"the workload waited for {sum(wl.waits.values())} jobs ({outcomes}); the spans "
                f"show {report.waits.waits} WAIT spans with the same outcomes",
            )
        )
    leaks = (
        report.log_secret_hits
        + report.span_secret_hits
        + report.metrics.secret_hits
        + wl.exception_secret_hits
        + report.output_secret_hits
    )
    checks.append(
        Check(
            leaks == 0,
            f"{AUTH_HEADER} value found {leaks} times in {report.log_lines} log lines, "
            f"{report.spans_seen} spans, the metrics, {sum(wl.failed.values())} exceptions, "
            "this output",
        )
    )
    if report.embedded:
        redirects = wl.succeeded.get("GET /artifacts/{artifact_id}", 0)
        checks.append(
            Check(
                wl.auth_at_other_origin == 0,
                f"the other origin received the {AUTH_HEADER} {wl.auth_at_other_origin} times "
                f"in {redirects} cross-origin redirects",
            )
        )
    if wl.unexpected:
        checks.append(Check(False, f"unexpected errors in the workload: {wl.unexpected[:3]}"))
    return checks


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def _route_json(stats: RouteStats) -> dict[str, Any]:
    return {
        "route": stats.route,
        "fault": fault_of(stats.route),
        "requests": stats.requests,
        "attempts": stats.attempts,
        "retries": stats.retries,
        "retries_by_reason": dict(sorted(stats.retries_by_reason.items())),
        "redirects": stats.redirects,
        "errors": stats.errors,
        "errors_by_type": dict(sorted(stats.errors_by_type.items())),
        "p50_ms": _ms(percentile(stats.durations, 0.50)),
        "p95_ms": _ms(percentile(stats.durations, 0.95)),
    }


def _waterfall_json(view: WaterfallView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    return {
        "name": view.name,
        "trace_id": view.trace_id,
        "duration_ms": _ms(view.duration_s),
        "status_code": view.status_code,
        "error_type": view.error_type,
        "attempts": [
            {
                "start_ms": _ms(a.start_s),
                "duration_ms": _ms(a.duration_s),
                "status_code": a.status_code,
                "error_type": a.error_type,
                "resend_count": a.resend_count,
                "server": a.server,
            }
            for a in view.attempts
        ],
        "retries": [
            {
                "at_ms": _ms(r.at_s),
                "reason": r.reason,
                "backoff_ms": _ms(r.backoff_s),
                "retry_after": r.retry_after,
                "resend_count": r.resend_count,
            }
            for r in view.retries
        ],
    }


def _waits_json(stats: WaitStats, view: WaitView | None) -> dict[str, Any]:
    return {
        "waits": stats.waits,
        "polls": stats.polls,
        "outcomes": dict(sorted(stats.outcomes.items())),
        "p50_ms": _ms(percentile(stats.durations, 0.50)),
        "p95_ms": _ms(percentile(stats.durations, 0.95)),
        "waterfall": None
        if view is None
        else {
            "name": view.name,
            "trace_id": view.trace_id,
            "duration_ms": _ms(view.duration_s),
            "outcome": view.outcome,
            "polls": [
                {
                    "start_ms": _ms(p.start_s),
                    "duration_ms": _ms(p.end_s - p.start_s),
                    "status_code": p.status_code,
                    "error_type": p.error_type,
                    "attempts": len(p.attempts),
                    "pause_ms": _ms(p.pause_s),
                    "pause_from_retry_after": p.pause_from_retry_after,
                }
                for p in view.polls
            ],
        },
    }


def report_json(report: DemoReport) -> dict[str, Any]:
    """The machine-readable summary printed by ``--json``."""
    import json

    total = report.totals()
    wl = report.workload
    return {
        "version": __version__,
        "target": report.target,
        "embedded_upstream": report.embedded,
        "seed": report.seed,
        "concurrency": report.concurrency,
        "requested": report.requested,
        "duration_limit_s": report.duration_limit,
        "elapsed_s": round(wl.elapsed_s, 3),
        "interrupted": report.interrupted,
        "totals": _route_json(total) | {"route": None, "fault": None},
        "routes": [_route_json(s) for s in report.routes],
        "metrics": {
            "attempt_points": report.metrics.attempt_points,
            "request_points": report.metrics.request_points,
            "retries": report.metrics.retries,
            "backoff_points": report.metrics.backoff_points,
        },
        "workload": {
            "issued": wl.total_issued,
            "succeeded": sum(wl.succeeded.values()),
            "failed": sum(wl.failed.values()),
            "failures_by_type": dict(sorted(wl.failures_by_type.items())),
            "auth_at_other_origin": wl.auth_at_other_origin if report.embedded else None,
        },
        "waterfall": _waterfall_json(report.waterfall),
        "waits": _waits_json(report.waits, report.wait_view),
        "logs": {
            "lines": report.log_lines,
            "redacted_lines": report.log_redacted_lines,
            "sample": [json.loads(line) for line in report.log_samples],
        },
        "secret_occurrences": {
            "logs": report.log_secret_hits,
            "spans": report.span_secret_hits,
            "metrics": report.metrics.secret_hits,
            "exceptions": wl.exception_secret_hits,
            "output": report.output_secret_hits,
        },
        "exports": {"otlp": report.otlp, "prometheus_port": report.prometheus_port},
        "checks": [{"ok": c.ok, "text": c.text} for c in report.checks],
        "ok": all(c.ok for c in report.checks),
    }
