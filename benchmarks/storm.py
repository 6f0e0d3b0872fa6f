"""A retry storm, measured: a fleet of sessions against an upstream that goes down and comes back.

Each of ``--threads`` workers (default 20) owns one :class:`observable_session.Session` (a
fleet of orchestrator workers) and polls ``GET /jobs/{n}`` every ``--pace`` seconds against
``benchmarks/faultserver.py``. The upstream goes through five phases:

1. healthy (the reference load);
2. outage: every request answered 503, until every session has made ``--per-session``
   logical requests in it (and, with a breaker, until the breakers have had time to probe);
3. recovery: healthy again, until every session has had a success;
4. outage: the port refuses connections (the server is closed; nothing listens);
5. recovery: a server listens on the same port again.

That runs once per fleet configuration: the default session (retry budget on), the session
with ``retry_budget=None`` (every failure retried: today's behaviour) and the default session
plus ``CircuitBreaker(break_duration=...)``. Printed per outage: attempts per logical request
(server-observed for the 503 outage, client-counted for refused connections), load on the
upstream relative to the healthy phase, the same once every breaker is open, time from
recovery until every session succeeded again, and outcomes (nothing lost, every error typed).
A separate poller run checks that a session failing one call in twenty (its retry
succeeding) still retries every one of them.

Backoff is scaled down (``--backoff``, default 0.01 s) so that a run takes seconds; the
ratios do not depend on it. ``--quick`` runs a small version (the test suite runs it).
``--json`` prints the figures as one JSON object. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import structlog

import observable_session
from faultserver import Draw, Fault, FaultSchedule, FaultServer
from observable_session import BreakerState, CircuitBreaker, RequestsApiError, Session

#: What the issue asks for.
TARGET_BUDGET_ATTEMPTS = 1.2
TARGET_BREAKER_FALL = 0.90
TARGET_RECOVERY_SLACK_S = 1.0


class Outage503(FaultSchedule):
    """Every attempt answered ``503 Service Unavailable``."""

    def draw(self, key: str, attempt: int) -> Draw:
        """Always a 503."""
        return Draw(Fault.STATUS_5XX, 503)


@dataclass(frozen=True)
class Settings:
    """The size of a run."""

    threads: int
    per_session: int
    pace: float
    healthy_s: float
    break_duration: float
    backoff: float
    poller_calls: int

    @classmethod
    def of(cls, args: argparse.Namespace) -> Settings:
        """Full or quick settings, with the command line's overrides."""
        quick = args.quick
        return cls(
            threads=args.threads,
            per_session=args.per_session or (30 if quick else 60),
            pace=args.pace or (0.02 if quick else 0.05),
            healthy_s=0.3 if quick else 2.0,
            break_duration=args.break_duration or (0.3 if quick else 5.0),
            backoff=args.backoff,
            poller_calls=40 if quick else 200,
        )


@dataclass
class Call:
    """One logical request as its worker saw it."""

    phase: str
    started: float
    ended: float
    ok: bool
    typed: bool
    attempts: int
    outcome: str
    denied: str | None = None


class Upstream:
    """The faultserver on a fixed port, which can go down (503 or refused) and come back."""

    def __init__(self) -> None:
        self.server: FaultServer | None = FaultServer(FaultSchedule.clean()).start()
        self.port = self.server.port
        self.base_url = self.server.base_url
        self._lock = threading.Lock()

    def attempts(self) -> int:
        """Attempts the server has seen since the last :meth:`reset` (0 while refusing)."""
        with self._lock:
            return self.server.stats().attempts if self.server is not None else 0

    def reset(self) -> None:
        """Zero the server's counters."""
        with self._lock:
            if self.server is not None:
                self.server.reset_stats()

    def answer_503(self) -> None:
        """Start answering every request with 503."""
        assert self.server is not None
        self.server.set_schedule(Outage503())

    def heal(self) -> None:
        """Answer normally again (bringing the listener back if it was closed)."""
        with self._lock:
            if self.server is None:
                self.server = FaultServer(FaultSchedule.clean(), port=self.port).start()
            else:
                self.server.set_schedule(FaultSchedule.clean())
                self.server.reset_stats()

    def refuse(self) -> None:
        """Close the listener and every connection: connects are refused from now on."""
        with self._lock:
            server, self.server = self.server, None
        if server is not None:
            server.close()

    def close(self) -> None:
        """Stop serving."""
        self.refuse()


@dataclass
class Fleet:
    """``threads`` workers, each polling through its own session."""

    upstream: Upstream
    settings: Settings
    options: dict[str, Any]
    phase: str = "healthy"
    sessions: list[Session] = field(default_factory=list)
    calls: list[list[Call]] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start every worker."""
        for index in range(self.settings.threads):
            session = Session(
                base_url=self.upstream.base_url,
                backoff_factor=self.settings.backoff,
                timeout=2.0,
                **self.options,
            )
            self.sessions.append(session)
            self.calls.append([])
            self.started.append(0)
            thread = threading.Thread(target=self._work, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _work(self, index: int) -> None:
        session, calls, n = self.sessions[index], self.calls[index], 0
        due = time.monotonic()
        while not self._stop.is_set():
            phase, n = self.phase, n + 1
            self.started[index] += 1
            began = time.monotonic()
            try:
                response = session.get("/jobs/{n}", path_params={"n": f"{index}-{n}"})
                # The attempt count of a success is only on the response's private record.
                attempts = getattr(response, "_observable_session", (1,))[0]
                call = Call(phase, began, time.monotonic(), True, True, attempts, "ok")
            except RequestsApiError as exc:
                name = type(exc).__name__
                call = Call(
                    phase,
                    began,
                    time.monotonic(),
                    False,
                    True,
                    exc.attempts,
                    name,
                    exc.retry_denied,
                )
            except Exception as exc:  # an untyped error: reported, never expected
                call = Call(phase, began, time.monotonic(), False, False, 1, type(exc).__name__)
            calls.append(call)
            # A fixed call rate (as a scheduler's poll loop has), whatever each call took:
            # the load on the upstream then shows the retries, not the callers slowing down.
            due = max(due + self.settings.pace, time.monotonic())
            self._stop.wait(due - time.monotonic())

    def in_phase(self, phase: str) -> list[list[Call]]:
        """Every worker's calls that started in ``phase``."""
        return [[c for c in list(calls) if c.phase == phase] for calls in self.calls]

    def wait_until(self, done: Callable[[], bool], timeout: float) -> float:
        """Poll ``done`` until true or ``timeout``; the time it took."""
        began = time.monotonic()
        while not done() and time.monotonic() - began < timeout:
            time.sleep(0.005)
        return time.monotonic() - began

    def stop(self) -> None:
        """Stop and join every worker, close every session."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        for session in self.sessions:
            session.close()

    def breakers_open(self) -> bool:
        """Whether every worker's breaker is open for the upstream."""
        origin = ("http", "127.0.0.1", self.upstream.port)
        return all(
            s.circuit_breaker is not None
            and s.circuit_breaker.state(origin) is not BreakerState.CLOSED
            for s in self.sessions
        )


def _outage(fleet: Fleet, name: str, kind: str, healthy_rate: float) -> dict[str, Any]:
    """Run one outage and the recovery after it; the figures of both."""
    settings, upstream = fleet.settings, fleet.upstream
    upstream.reset()
    fleet.phase = name
    began = time.monotonic()
    if kind == "503":
        upstream.answer_503()
    else:
        upstream.refuse()
    has_breaker = "circuit_breaker" in fleet.options
    opened: dict[str, float] = {}

    def enough() -> bool:
        counts = [len(c) for c in fleet.in_phase(name)]
        if has_breaker and "at" not in opened and fleet.breakers_open():
            opened["at"] = time.monotonic()
            opened["attempts"] = upstream.attempts()
            opened["logical"] = sum(counts)
            opened["client"] = sum(c.attempts for cs in fleet.in_phase(name) for c in cs)
        waited_after_open = has_breaker and (
            "at" not in opened or time.monotonic() - opened["at"] < 2.5 * settings.break_duration
        )
        return min(counts) >= settings.per_session and not waited_after_open

    fleet.wait_until(enough, timeout=120)
    ended = time.monotonic()
    server_attempts = upstream.attempts()
    calls = [c for cs in fleet.in_phase(name) for c in cs]
    client_attempts = sum(c.attempts for c in calls)
    attempts = server_attempts if kind == "503" else client_attempts
    duration = ended - began
    figures: dict[str, Any] = {
        "outage": kind,
        "logical_per_session": min(len(cs) for cs in fleet.in_phase(name)),
        "logical": len(calls),
        "attempts": attempts,
        "attempts_per_logical": attempts / max(1, len(calls)),
        "load_vs_healthy": (attempts / duration) / healthy_rate if healthy_rate else None,
        "outcomes": _outcomes(calls),
    }
    if has_breaker and "at" in opened:
        after_s = ended - opened["at"]
        after = (server_attempts if kind == "503" else client_attempts) - (
            opened["attempts"] if kind == "503" else opened["client"]
        )
        after_logical = len(calls) - opened["logical"]
        figures["after_open"] = {
            "seconds": after_s,
            "attempts": after,
            "logical": after_logical,
            "attempts_per_logical": after / max(1, after_logical),
            "load_vs_healthy": (after / after_s) / healthy_rate
            if after_s and healthy_rate
            else None,
        }
    # Recovery: until every worker has had a success that started after it.
    recovery = f"{name}-recovery"
    fleet.phase = recovery
    healed = time.monotonic()
    upstream.heal()
    timeout = settings.break_duration + 10

    def back() -> bool:
        return all(any(c.ok for c in cs) for cs in fleet.in_phase(recovery))

    fleet.wait_until(back, timeout)
    firsts = [min((c.ended for c in cs if c.ok), default=None) for cs in fleet.in_phase(recovery)]
    figures["recovery_s"] = (
        max(t for t in firsts if t is not None) - healed
        if firsts and all(t is not None for t in firsts)
        else None
    )
    figures["recovery_outcomes"] = _outcomes([c for cs in fleet.in_phase(recovery) for c in cs])
    return figures


def _outcomes(calls: list[Call]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in calls:
        counts[call.outcome] = counts.get(call.outcome, 0) + 1
    for call in calls:
        if call.denied is not None:
            key = f"retry_denied={call.denied}"
            counts[key] = counts.get(key, 0) + 1
    counts["untyped"] = sum(1 for c in calls if not c.typed)
    return counts


def run_fleet(label: str, options: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Healthy, 503 outage, recovery, refused outage, recovery: the figures of one fleet."""
    upstream = Upstream()
    fleet = Fleet(upstream, settings, options)
    try:
        fleet.start()
        upstream.reset()
        began = time.monotonic()
        time.sleep(settings.healthy_s)
        healthy_rate = upstream.attempts() / (time.monotonic() - began)
        results = {
            "fleet": label,
            "healthy_attempts_per_s": healthy_rate,
            "phases": [
                _outage(fleet, "outage-503", "503", healthy_rate),
                _outage(fleet, "outage-refused", "refused", healthy_rate),
            ],
        }
    finally:
        fleet.stop()
        upstream.close()
    recorded = sum(len(c) for c in fleet.calls)
    results["started"] = sum(fleet.started)
    results["lost"] = sum(fleet.started) - recorded
    results["untyped"] = sum(1 for cs in fleet.calls for c in cs if not c.typed)
    return results


def run_poller(settings: Settings) -> dict[str, Any]:
    """Every session fails one call in twenty once (its retry succeeding): all retried?"""
    server = FaultServer(FaultSchedule.clean()).start()
    failures = retries = 0
    lock = threading.Lock()

    def poll(index: int) -> None:
        nonlocal failures, retries
        with Session(base_url=server.base_url, backoff_factor=settings.backoff) as session:
            for n in range(settings.poller_calls):
                fails = n % 20 == 10
                headers = {"X-Fault": "5xx,ok"} if fails else {}
                response = session.get(f"/poll/{index}/{n}", headers=headers)
                attempts = getattr(response, "_observable_session", (1,))[0]
                with lock:
                    failures += fails
                    retries += attempts - 1

    try:
        threads = [threading.Thread(target=poll, args=(i,)) for i in range(settings.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        attempts = server.stats().attempts
    finally:
        server.close()
    return {"failed_calls": failures, "retries": retries, "server_attempts": attempts}


def fleets(settings: Settings) -> dict[str, dict[str, Any]]:
    """The three fleet configurations the issue compares."""
    return {
        "default (budget)": {},
        "retry_budget=None": {"retry_budget": None},
        "default + breaker": {
            "circuit_breaker": CircuitBreaker(break_duration=settings.break_duration)
        },
    }


def _check(results: dict[str, Any], settings: Settings) -> list[tuple[str, bool, str]]:
    """The issue's targets, each with whether it held and the figure behind it."""
    checks: list[tuple[str, bool, str]] = []
    by_label = {r["fleet"]: r for r in results["fleets"]}
    budget = by_label["default (budget)"]["phases"][0]
    checks.append(
        (
            f"default budget, sustained 503 outage: <= {TARGET_BUDGET_ATTEMPTS} attempts/logical",
            budget["attempts_per_logical"] <= TARGET_BUDGET_ATTEMPTS,
            f"{budget['attempts_per_logical']:.3f} over >= {budget['logical_per_session']} "
            "logical requests per session",
        )
    )
    poller = results["poller"]
    checks.append(
        (
            "one call in twenty failing: every one retried",
            poller["retries"] == poller["failed_calls"],
            f"{poller['retries']} retries for {poller['failed_calls']} failed calls",
        )
    )
    breaker = by_label["default + breaker"]
    for phase in breaker["phases"]:
        after = phase.get("after_open")
        fall = 1 - after["load_vs_healthy"] if after and after["load_vs_healthy"] is not None else 0
        checks.append(
            (
                f"breaker, {phase['outage']} outage: load falls >= 90% once open",
                fall >= TARGET_BREAKER_FALL,
                f"{fall:.1%} below the healthy load",
            )
        )
        limit = settings.break_duration + TARGET_RECOVERY_SLACK_S
        recovery = phase["recovery_s"]
        checks.append(
            (
                f"breaker, {phase['outage']} outage: back within break_duration + 1 s",
                recovery is not None and recovery <= limit,
                f"{recovery:.2f} s (limit {limit:.1f} s)" if recovery is not None else "never",
            )
        )
    for fleet in results["fleets"]:
        checks.append(
            (
                f"{fleet['fleet']}: nothing lost, every error typed",
                fleet["lost"] == 0 and fleet["untyped"] == 0,
                f"{fleet['started']} calls, lost {fleet['lost']}, untyped {fleet['untyped']}",
            )
        )
    return checks


def _print(results: dict[str, Any]) -> None:
    print(
        f"storm: {results['settings']['threads']} sessions, "
        f"observable-session {observable_session.__version__}"
    )
    header = (
        f"{'fleet':<20} {'outage':<8} {'logical/sess':>12} {'attempts/logical':>16} "
        f"{'load vs healthy':>15} {'after open':>10} {'recovery s':>10}  outcomes"
    )
    print(header)
    print("-" * len(header))
    for fleet in results["fleets"]:
        for phase in fleet["phases"]:
            after = phase.get("after_open")
            after_text = f"{after['load_vs_healthy']:.3f}x" if after else "-"
            recovery = phase["recovery_s"]
            print(
                f"{fleet['fleet']:<20} {phase['outage']:<8} {phase['logical_per_session']:>12} "
                f"{phase['attempts_per_logical']:>16.3f} {phase['load_vs_healthy']:>14.2f}x "
                f"{after_text:>10} {recovery if recovery is None else round(recovery, 2)!s:>10}"
                f"  {json.dumps(phase['outcomes'])}"
            )
    poller = results["poller"]
    print(
        f"poller (1 call in 20 fails once): {poller['retries']} retries for "
        f"{poller['failed_calls']} failed calls, {poller['server_attempts']} attempts"
    )
    for name, held, figure in results["checks"]:
        print(f"[{'PASS' if held else 'FAIL'}] {name}: {figure}")


def main(argv: list[str] | None = None) -> int:
    """Run the storm and print its figures; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (a few seconds)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--per-session", type=int, default=0, help="logical requests per outage")
    parser.add_argument("--pace", type=float, default=0.0, help="seconds between a worker's calls")
    parser.add_argument("--break-duration", type=float, default=0.0)
    parser.add_argument("--backoff", type=float, default=0.01, help="backoff_factor (scaled down)")
    args = parser.parse_args(argv)
    # The library's per-request debug events would drown the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    settings = Settings.of(args)
    results: dict[str, Any] = {"settings": asdict(settings)}
    results["fleets"] = [
        run_fleet(label, options, settings) for label, options in fleets(settings).items()
    ]
    results["poller"] = run_poller(settings)
    results["checks"] = _check(results, settings)
    if args.json:
        print(json.dumps(results))
    else:
        _print(results)
    return 0 if all(held for _, held, _ in results["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
