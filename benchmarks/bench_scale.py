"""Redaction at scale: a session per job, thousands of jobs (the targets of issue 11).

Prints, each measured side by side in one run (rounds interleaved so machine noise hits
both sides alike), with its target:

1. create+close of ``Session(base_url=..., auth_headers={unique})`` against
   ``requests.Session()``, with 1 and with 10,000 other live sessions (<= 5x);
2. building 10,000 live sessions: the last 10% against the first 10% (<= 2x), also net of
   the cyclic garbage collector's pauses (they grow with every tracked object of the
   process: building 10,000 plain ``requests.Session()`` shows the same, printed last);
3. ``redact_event`` on a typical event and ``mask()`` on a 300-character text, with 1 and
   with 10,000 live secrets (<= 1.3x, <= 5 us);
4. RSS after closing the 10,000 sessions and ``gc.collect()``, against the start (<= 20 MB):
   right then, with the redactor's grace pool full (the values of the last 1,024 closed
   sessions, still masked), and again once the grace period is over (``Redactor.expire``
   given a later time).

    python benchmarks/bench_scale.py [--sessions 10000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import gc
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

import requests

from bench_redaction import typical_event
from observable_session import Session
from observable_session.redaction import DEFAULT_REDACTOR, EventRedactor, Redactor

BASE = "https://api.example.com/v1/"
TARGET_CREATE = 5.0
TARGET_BUILD = 2.0
TARGET_MASK_RATIO = 1.3
TARGET_MASK_US = 5.0
TARGET_RSS_MB = 20.0

TEXT_300 = (
    "observable_session.attempt.failed GET https://api.example.com/v1/jobs/0000abcd/status"
    "?wait=true status=503 error_type=503 attempt=2 duration_s=0.0123 trace_id="
    "4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7 upstream said: service "
    "unavailable, retry later (the job queue is draining; this is an ordinary message)"
)[:300]


def rss_mb() -> float:
    """Resident set size of this process, in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * 4096 / 1e6


def token() -> str:
    return f"Bearer {secrets.token_urlsafe(32)}"


def our_create_close() -> None:
    Session(base_url=BASE, auth_headers={"Authorization": token()}).close()


def requests_create_close() -> None:
    requests.Session().close()


def per_call(fn: Callable[[], object], batch: int) -> float:
    start = time.perf_counter()
    for _ in range(batch):
        fn()
    return (time.perf_counter() - start) / batch


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, batch: int) -> dict[str, float]:
    """Median seconds per call of each function, rounds interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(per_call(fn, batch))
    return {name: statistics.median(values) for name, values in samples.items()}


_VERDICTS: list[bool] = []


def verdict(ok: bool) -> str:
    """``ok`` or ``OVER``, remembered for the summary line."""
    _VERDICTS.append(ok)
    return "ok" if ok else "OVER"


def create_close_ratio(label: str, rounds: int) -> None:
    medians = interleaved(
        {"ours": our_create_close, "requests": requests_create_close}, rounds, 200
    )
    ratio = medians["ours"] / medians["requests"]
    print(
        f"create+close, {label}: {medians['ours'] * 1e6:7.1f} us vs requests.Session() "
        f"{medians['requests'] * 1e6:5.1f} us = {ratio:.2f}x "
        f"(target <= {TARGET_CREATE}x: {verdict(ratio <= TARGET_CREATE)})"
    )


class GcTimer:
    """Seconds spent in the cyclic garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start


GC = GcTimer()


def build_tenths(
    count: int, make: Callable[[], object]
) -> tuple[list[object], list[float], list[float]]:
    """``count`` objects from ``make``; wall seconds and collector seconds of each tenth."""
    tenth = count // 10
    made: list[object] = []
    times, pauses = [], []
    for _ in range(10):
        collected = GC.total
        start = time.perf_counter()
        for _ in range(tenth):
            made.append(make())
        times.append(time.perf_counter() - start)
        pauses.append(GC.total - collected)
    return made, times, pauses


def build(count: int) -> list[Session]:
    made, times, pauses = build_tenths(
        count, lambda: Session(base_url=BASE, auth_headers={"Authorization": token()})
    )
    ratio = times[-1] / times[0]
    net = (times[-1] - pauses[-1]) / (times[0] - pauses[0])
    print(
        f"building {count} live sessions: first 10% {times[0] * 1e3:.0f} ms, last 10% "
        f"{times[-1] * 1e3:.0f} ms = {ratio:.2f}x (target <= {TARGET_BUILD}x: "
        f"{verdict(ratio <= TARGET_BUILD)}); net of gc pauses {net:.2f}x "
        f"({verdict(net <= TARGET_BUILD)}); tenths (gc): "
        + " ".join(f"{t * 1e3:.0f}({p * 1e3:.0f})" for t, p in zip(times, pauses, strict=True))
    )
    return [s for s in made if isinstance(s, Session)]


def build_requests(count: int) -> None:
    made, times, pauses = build_tenths(count, requests.Session)
    print(
        f"for comparison, building {count} requests.Session(): last 10% / first 10% = "
        f"{times[-1] / times[0]:.2f}x, net of gc pauses "
        f"{(times[-1] - pauses[-1]) / (times[0] - pauses[0]):.2f}x"
    )
    for session in made:
        assert isinstance(session, requests.Session)
        session.close()


class Owner:
    """Holds one secret in a redactor."""


def mask_costs(count: int, rounds: int) -> None:
    redactors: dict[int, tuple[Redactor, list[Owner]]] = {}
    for n in (1, count):
        redactor = Redactor()
        owners = [Owner() for _ in range(n)]
        for owner in owners:
            redactor.set_secrets(owner, [token()])
        redactors[n] = (redactor, owners)
    job = iter(range(10**9))
    fns: dict[str, Callable[[], object]] = {}
    for n, (redactor, _) in redactors.items():
        processor = EventRedactor(redactor)
        fns[f"redact_event/{n}"] = lambda p=processor: p(None, "warning", typical_event(next(job)))
        fns[f"mask/{n}"] = lambda r=redactor: r.mask(TEXT_300)
    fns["event construction"] = lambda: typical_event(next(job))
    medians = interleaved(fns, rounds, 2000)
    build_cost = medians["event construction"]
    for name in ("redact_event", "mask"):
        low = medians[f"{name}/1"] - (build_cost if name == "redact_event" else 0)
        high = medians[f"{name}/{count}"] - (build_cost if name == "redact_event" else 0)
        ratio = high / low
        print(
            f"{name:>12}: {low * 1e6:5.2f} us with 1 secret, {high * 1e6:5.2f} us with {count} "
            f"= {ratio:.2f}x (target <= {TARGET_MASK_RATIO}x: "
            f"{verdict(ratio <= TARGET_MASK_RATIO)}; <= {TARGET_MASK_US} us: "
            f"{verdict(high * 1e6 <= TARGET_MASK_US)})"
        )


def main() -> None:
    """Run every measurement and print the ratios against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    for _ in range(300):  # warm imports, caches and the allocator
        our_create_close()
        requests_create_close()
    DEFAULT_REDACTOR.expire(now=time.monotonic() + 1e6)
    gc.collect()
    start_rss = rss_mb()
    one = Session(base_url=BASE, auth_headers={"Authorization": token()})
    create_close_ratio("1 other live session", args.rounds)
    sessions = build(args.sessions)
    create_close_ratio(f"{args.sessions} other live sessions", args.rounds)
    live_rss = rss_mb()
    for session in sessions:
        session.close()
    one.close()
    del sessions, one
    gc.collect()
    closed_rss = rss_mb()
    DEFAULT_REDACTOR.expire(now=time.monotonic() + 1e6)
    gc.collect()
    expired_rss = rss_mb()
    grew, grew_after = closed_rss - start_rss, expired_rss - start_rss
    print(
        f"RSS: start {start_rss:.0f} MB, {args.sessions} live {live_rss:.0f} MB, closed + "
        f"gc.collect() {closed_rss:.0f} MB (+{grew:.1f} MB with the grace pool full: "
        f"{verdict(grew <= TARGET_RSS_MB)}), after the grace period {expired_rss:.0f} MB "
        f"(+{grew_after:.1f} MB: {verdict(grew_after <= TARGET_RSS_MB)}; target <= "
        f"{TARGET_RSS_MB} MB)"
    )
    mask_costs(args.sessions, args.rounds)
    build_requests(args.sessions)
    over = _VERDICTS.count(False)
    print(
        f"scale targets: {len(_VERDICTS) - over} of {len(_VERDICTS)} met"
        + (f", {over} OVER" if over else "")
    )


if __name__ == "__main__":
    main()
