"""What the deadline watchdog costs per GET: side by side, in one process, batches interleaved.

``bench_overhead.py`` runs every variant in a fresh process, which on a shared 2-core machine
lets a slow minute hit one variant and not another. The question here is narrower (what do
the watched pools cost when no deadline is set, and what does a deadline cost), so all three
variants run in this one process against one nginx (started as ``bench_overhead`` does), in
short batches interleaved round by round, each variant with its own session:

1. ``watched``: ``observable_session.Session()`` as shipped, no deadline;
2. ``plain``: the same, its adapters given urllib3's plain pool classes (no watch hooks);
3. ``deadline``: the same as 1 with ``deadline=30``.

Per round each variant's wall and CPU time per GET is taken; the ratios printed are medians
over rounds of (variant / ``watched`` in the same round). No SDK is configured, so the
figures are the session's own work.

    python benchmarks/bench_deadline.py            # 20 rounds of 300 GETs per variant
    python benchmarks/bench_deadline.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overhead import _configure_logging, find_nginx, nginx
from observable_session import Session

VARIANTS = {
    "watched": "no deadline (watched pools, as shipped)",
    "plain": "no deadline, plain urllib3 pools",
    "deadline": "deadline=30 s",
}


def make(variant: str) -> Session:
    """The session of ``variant``."""
    session = Session(deadline=30.0 if variant == "deadline" else None)
    if variant == "plain":
        for adapter in session.adapters.values():
            adapter.poolmanager.pool_classes_by_scheme = {
                "http": urllib3.HTTPConnectionPool,
                "https": urllib3.HTTPSConnectionPool,
            }
    return session


def batch(session: Session, url: str, count: int) -> tuple[float, float]:
    """Wall and CPU microseconds per GET over ``count`` GETs."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        session.get(url).close()
    return (
        (time.perf_counter() - wall) / count * 1e6,
        (time.process_time() - cpu) / count * 1e6,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300, help="GETs per batch")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 50 GETs")
    args = parser.parse_args(argv)
    rounds, count = (3, 50) if args.quick else (args.rounds, args.requests)
    _configure_logging()  # as bench_overhead: INFO, lines go nowhere
    binary = find_nginx()
    if binary is None:
        print("nginx not found (apt-get install nginx)", file=sys.stderr)
        return 2
    with nginx(binary) as url:
        sessions = {v: make(v) for v in VARIANTS}
        for session in sessions.values():
            batch(session, url, 20)  # connections open, caches warm
        walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpus: dict[str, list[float]] = {v: [] for v in VARIANTS}
        names = list(VARIANTS)
        for index in range(rounds):
            shift = index % len(names)
            for variant in names[shift:] + names[:shift]:
                wall, cpu = batch(sessions[variant], url, count)
                walls[variant].append(wall)
                cpus[variant].append(cpu)
        for session in sessions.values():
            session.close()
    print(
        f"deadline watchdog cost per GET: nginx on 127.0.0.1 (keep-alive), {rounds} rounds x "
        f"{count} GETs per variant, interleaved, one process, no SDK"
    )
    print(f"{'variant':<42} {'us/GET':>8} {'ratio':>7} {'cpu us':>8} {'ratio':>7}")
    for variant, label in VARIANTS.items():
        wall_ratio = statistics.median(
            a / b for a, b in zip(walls[variant], walls["watched"], strict=True)
        )
        cpu_ratio = statistics.median(
            a / b for a, b in zip(cpus[variant], cpus["watched"], strict=True)
        )
        print(
            f"{label:<42} {statistics.median(walls[variant]):8.1f} {wall_ratio:6.3f}x "
            f"{statistics.median(cpus[variant]):8.1f} {cpu_ratio:6.3f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
