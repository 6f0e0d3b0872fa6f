"""This tree's Session against an older copy of the package, side by side in one process.

``bench_overhead.py`` runs every variant in a fresh process, which is right for the ratio
to plain requests but too coarse to see a change of a few percent on a shared machine. This
script answers "did this commit make a GET cheaper?": it imports the package twice, this
tree's ``observable_session`` and a snapshot of an older version renamed ``os_before``
(``git worktree add`` or ``git archive`` a commit, copy its ``src/observable_session`` to
``DIR/os_before``; the package imports itself relatively, so the copy is independent), makes
one session of each plus a plain ``requests.Session``, and sends batches of GETs to a local
nginx, batches interleaved and rotated, so a slow second of the machine hits all three alike.

Per batch it records wall time and process CPU time (all threads: the SDK's batch span
processor included). It prints the median over rounds of (after / before) and of each
session / requests in the same round. ``--sdk`` installs the same dropping SDK as
``bench_overhead.py`` (both sessions record into it). Logging is ``configure_logging("INFO")``.

    python benchmarks/bench_ab.py --before DIR [--sdk] [--rounds 20] [--batch 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench_overhead as bo


def _batch(session: Any, url: str, count: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    bad = bo._get_loop(session, url, count, None)
    if bad:
        raise RuntimeError(f"{bad} GETs were not 200 ok")
    return (time.perf_counter() - wall) / count * 1e6, (time.process_time() - cpu) / count * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="directory holding os_before/")
    parser.add_argument("--sdk", action="store_true", help="install a dropping SDK")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=300)
    args = parser.parse_args(argv)
    if not Path(args.before, "os_before", "__init__.py").is_file():
        parser.error("--before must hold os_before/__init__.py")
    sys.path.insert(0, args.before)
    import os_before
    import requests

    import observable_session

    bo._configure_logging()
    done = bo._install_sdk() if args.sdk else (lambda: None)
    binary = bo.find_nginx()
    if binary is None:
        print("nginx not found", file=sys.stderr)
        return 2
    sessions = {
        "requests": requests.Session(),
        "before": os_before.Session(),
        "after": observable_session.Session(),
    }
    names = list(sessions)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    with bo.nginx(binary) as url:
        for session in sessions.values():
            _batch(session, url, 100)  # warm-up: connections, caches, instruments
        for index in range(args.rounds):
            order = names[index % 3 :] + names[: index % 3]
            for name in order:
                results[name].append(_batch(sessions[name], url, args.batch))
    for session in sessions.values():
        session.close()
    done()

    def ratio(a: str, b: str, i: int) -> float:
        return statistics.median(x[i] / y[i] for x, y in zip(results[a], results[b], strict=True))

    print(
        f"{'SDK' if args.sdk else 'no SDK'}, {args.rounds} rounds of {args.batch} GETs, "
        "batches interleaved; medians over rounds"
    )
    for name in names:
        walls = [r[0] for r in results[name]]
        cpus = [r[1] for r in results[name]]
        print(
            f"  {name:<8} wall {statistics.median(walls):6.1f} us/GET  "
            f"cpu {statistics.median(cpus):6.1f} us/GET  "
            f"vs requests: wall {ratio(name, 'requests', 0):.3f}x "
            f"cpu {ratio(name, 'requests', 1):.3f}x"
        )
    print(
        f"  after / before: wall {ratio('after', 'before', 0):.3f}x "
        f"cpu {ratio('after', 'before', 1):.3f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
