"""What the instrumented Session costs per GET, against plain ``requests.Session``.

The benchmark starts its own nginx (Debian's ``/usr/sbin/nginx``) on a free 127.0.0.1 port,
with a config of its own in a temporary directory: keep-alive, ``return 200 "ok"``, no access
log. It then measures six variants, each sequentially and with 4 threads sharing one session:

1. ``requests.Session`` (the baseline);
2. ``observable_session.Session`` with no SDK at all (global providers untouched);
3. ``observable_session.Session`` with a real SDK: ``TracerProvider`` + ``BatchSpanProcessor``
   with a span exporter that drops everything, ``MeterProvider`` with a
   ``PeriodicExportingMetricReader`` and a metric exporter that drops everything;
4. ``requests.Session`` + ``opentelemetry-instrumentation-requests`` with that same SDK.
5. ``observable_session.Session``, no SDK, with plain urllib3 pools instead of the watched
   ones (what the deadline watchdog's pool hooks cost when no deadline is set: ``nosdk``
   is compared with it);
6. ``observable_session.Session``, no SDK, ``deadline=30`` (what a deadline costs: compared
   with ``nosdk``).

Every variant configures logging the same way: ``configure_logging("INFO")`` (JSON lines
to ``os.devnull``), the production set-up the README recommends.

How it measures, and why:

- Every (variant, mode) runs in a fresh subprocess of this script (``--worker``), once per
  round. Setting the global OpenTelemetry providers is irreversible and the requests
  instrumentation patches ``requests.Session.send`` for the whole process, so variants must not
  share a process; a fresh process per run also gives each variant the same start (imports
  done, no garbage from a previous variant).
- Rounds are interleaved: each round runs every (variant, mode) once, in an order rotated from
  round to round, so a slow period of this shared 2-core machine hits all variants alike.
- A worker sends some warm-up GETs (connections open, instruments and attribute sets created),
  then ``N`` timed GETs, and reports wall time / ``N``: the cost per GET including what the
  SDK does off the request path (the batch span processor's thread, garbage collection),
  which a per-GET median would hide. The per-GET median (sequential) is reported too.
- Per variant the table shows the median over rounds; each ratio is the median over rounds of
  (variant / baseline in the same round). Pairing within a round cancels slow drifts of the
  machine that a ratio of two medians would keep.

Run ``python benchmarks/bench_overhead.py`` (about two minutes), ``--quick`` for a
smoke run of a few seconds, ``--profile`` to profile the SDK variant (sequential) with cProfile.
Exit status is 0 whatever the ratios (they are information on a noisy machine), unless
``--strict`` is given and a target failed.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VARIANTS: dict[str, str] = {
    "requests": "requests.Session (baseline)",
    "nosdk": "Session, no SDK",
    "sdk": "Session, SDK",
    "otelreq": "requests.Session + otel-instrumentation-requests, SDK",
    "nowatch": "Session, no SDK, plain urllib3 pools (no deadline watch)",
    "deadline": "Session, no SDK, deadline=30 s",
}
MODES: dict[str, int] = {"sequential": 1, "4 threads": 4}
BASELINE = "requests"
Runs = dict[tuple[str, str], list[dict[str, Any]]]
"""The results of every run, by (variant, mode), one per round."""

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{
    worker_connections 256;
}}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "ok";
        }}
    }}
}}
"""


# -- nginx -------------------------------------------------------------------------------


def find_nginx() -> str | None:
    """The nginx binary: on PATH, or where Debian puts it (``/usr/sbin`` is not always on PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.02)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)  # graceful: the master stops its worker
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def nginx(binary: str) -> Iterator[str]:
    """Run nginx in the foreground on a free loopback port; yield its URL; stop it."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp,
        open(Path(tmp, "stderr.log"), "wb") as stderr,
    ):
        conf = Path(tmp, "nginx.conf")
        for _ in range(3):  # the free port may be taken between probe and bind: retry
            port = _free_port()
            conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
            proc = subprocess.Popen(
                [binary, "-p", tmp, "-e", f"{tmp}/error.log", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            if _wait_listening(port, proc, timeout=10):
                break
            _stop(proc)
        else:
            logs = [Path(tmp, name) for name in ("stderr.log", "error.log")]
            detail = "".join(log.read_text()[-2000:] for log in logs if log.exists())
            raise RuntimeError(f"nginx did not start: {detail}")
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            _stop(proc)


def nginx_version(binary: str) -> str:
    """``nginx/1.22.1`` or whatever ``nginx -v`` prints."""
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
    return (out.stderr or out.stdout).strip().rsplit(" ", 1)[-1]


# -- the worker: one variant, one mode, one process ---------------------------------------


def _configure_logging() -> None:
    """The production logging set-up, at INFO, for every variant (lines go nowhere)."""
    from observable_session.logs import configure_logging

    configure_logging("INFO", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115


def _install_sdk() -> Callable[[], None]:
    """Global tracer and meter providers that do all the work and export nowhere."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        MetricsData,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DroppingSpanExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DroppingMetricExporter(MetricExporter):
        def export(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            return None

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DroppingSpanExporter()))
    reader = PeriodicExportingMetricReader(DroppingMetricExporter(), export_interval_millis=1000)
    meter_provider = MeterProvider(metric_readers=[reader])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)

    def shutdown() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    return shutdown


def make_session(variant: str) -> tuple[Any, Callable[[], None]]:
    """The session of ``variant`` and what to call after the run (SDK shutdown)."""
    import requests
    import urllib3

    _configure_logging()
    done: Callable[[], None] = lambda: None  # noqa: E731
    if variant in ("sdk", "otelreq"):
        done = _install_sdk()
    if variant == "otelreq":
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        RequestsInstrumentor().instrument()
    if variant in ("requests", "otelreq"):
        return requests.Session(), done
    if variant in ("nosdk", "sdk", "nowatch", "deadline"):
        import observable_session

        session = observable_session.Session(deadline=30.0 if variant == "deadline" else None)
        if variant == "nowatch":  # what the deadline watchdog's pool hooks cost when unused
            for adapter in session.adapters.values():
                adapter.poolmanager.pool_classes_by_scheme = {
                    "http": urllib3.HTTPConnectionPool,
                    "https": urllib3.HTTPSConnectionPool,
                }
        return session, done
    raise ValueError(f"unknown variant {variant!r}")


def _get_loop(session: Any, url: str, count: int, times: list[int] | None) -> int:
    """``count`` GETs; the number that did not answer 200 ``ok``."""
    bad = 0
    clock = time.perf_counter_ns
    for _ in range(count):
        started = clock()
        response = session.get(url)
        if times is not None:
            times.append(clock() - started)
        if response.status_code != 200 or response.content != b"ok":
            bad += 1
    return bad


def run_worker(variant: str, url: str, threads: int, requests_: int, warmup: int) -> dict[str, Any]:
    """Warm up, then time ``requests_`` GETs split over ``threads`` threads sharing a session."""
    session, done = make_session(variant)
    bad = 0
    per_thread = max(1, requests_ // threads)
    warm_each = max(1, warmup // threads)
    results: list[int] = [0] * threads
    times: list[list[int]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def body(index: int) -> None:
        try:
            _get_loop(session, url, warm_each, None)
            barrier.wait(timeout=60)  # start the timed part together
            results[index] = _get_loop(session, url, per_thread, times[index])
            barrier.wait(timeout=600)
        except BaseException:
            barrier.abort()  # the main thread's wait fails now, not at its timeout
            raise

    if threads == 1:
        bad += _get_loop(session, url, warmup, None)
        started, cpu_started = time.perf_counter_ns(), time.process_time_ns()
        bad += _get_loop(session, url, per_thread, times[0])
        wall, cpu = time.perf_counter_ns() - started, time.process_time_ns() - cpu_started
    else:
        workers = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(threads)]
        for worker in workers:
            worker.start()
        barrier.wait(timeout=60)
        started, cpu_started = time.perf_counter_ns(), time.process_time_ns()
        barrier.wait(timeout=600)
        wall, cpu = time.perf_counter_ns() - started, time.process_time_ns() - cpu_started
        for worker in workers:
            worker.join(timeout=60)
        bad += sum(results)
    session.close()
    done()
    total = per_thread * threads
    all_times = [t for chunk in times for t in chunk]
    return {
        "variant": variant,
        "threads": threads,
        "requests": total,
        "bad": bad,
        "wall_us": wall / total / 1000,
        "cpu_us": cpu / total / 1000,
        "p50_us": statistics.median(all_times) / 1000,
    }


def profile_worker(url: str, requests_: int, warmup: int, top: int) -> str:
    """cProfile of the SDK variant, sequential: where the time goes, in general and in ours.

    cProfile inflates every Python call several times over; read shares and call counts
    (per GET: divide by the number of GETs), not absolute times.
    """
    session, done = make_session("sdk")
    _get_loop(session, url, warmup, None)
    profiler = cProfile.Profile()
    profiler.enable()
    _get_loop(session, url, requests_, None)
    profiler.disable()
    session.close()
    done()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    out.write(f"== top {top} functions by self time, {requests_} GETs, SDK variant ==\n")
    stats.print_stats(top)
    out.write("== observable_session functions by self time ==\n")
    stats.print_stats("observable_session", top)
    out.write("== observable_session functions by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats("observable_session", top)
    out.write("== what the session's per-request steps call (cumulative) ==\n")
    stats.print_callees(r"_record\.py.*\((start|end|start_attempt|end_attempt)\)")
    stats.print_callees(r"_session\.py.*\((prepare_request|merge_environment_settings)\)")
    return _short_paths(out.getvalue())


def _short_paths(text: str) -> str:
    """Profile text without the long site-packages and stdlib prefixes."""
    import sysconfig

    prefixes = {sysconfig.get_paths()[key] for key in ("purelib", "platlib", "stdlib")}
    prefixes.add(os.path.dirname(_package_origin()))
    prefixes.add(str(ROOT))
    for prefix in sorted(prefixes, key=len, reverse=True):
        text = text.replace(prefix + os.sep, "")
    return text


# -- the driver: rounds, table, targets ----------------------------------------------------


@dataclass(frozen=True)
class Target:
    """``variant``'s ratio to ``than`` in ``mode`` must be at most ``limit``."""

    label: str
    variant: str
    mode: str
    limit: float
    than: str = BASELINE
    stretch: bool = False


TARGETS = [
    *(Target(f"no SDK <= 0.55x ({m})", "nosdk", m, 0.55) for m in MODES),
    *(Target(f"real SDK <= 0.85x ({m})", "sdk", m, 0.85) for m in MODES),
    *(
        Target(f"real SDK below otel-instrumentation-requests ({m})", "sdk", m, 1.0, "otelreq")
        for m in MODES
    ),
    *(
        Target(
            f"no deadline: watched pools < 1.02x of plain pools ({m})", "nosdk", m, 1.02, "nowatch"
        )
        for m in MODES
    ),
    *(
        Target(f"deadline=30 s < 1.05x of no deadline ({m})", "deadline", m, 1.05, "nosdk")
        for m in MODES
    ),
]


def _worker_cmd(args: argparse.Namespace, url: str, variant: str, threads: int) -> list[str]:
    return [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        variant,
        "--url",
        url,
        "--threads",
        str(threads),
        "--requests",
        str(args.requests),
        "--warmup",
        str(args.warmup),
    ]


def run_one(args: argparse.Namespace, url: str, variant: str, threads: int) -> dict[str, Any]:
    """One (variant, mode) run in a fresh interpreter."""
    proc = subprocess.run(
        _worker_cmd(args, url, variant, threads),
        capture_output=True,
        text=True,
        timeout=args.worker_timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {variant}/{threads} failed:\n{proc.stderr[-3000:]}")
    for line in proc.stderr.strip().splitlines()[:5]:  # e.g. the SDK dropping spans: say so
        print(f"  worker {variant}/{threads}: {line}", file=sys.stderr)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["bad"]:
        raise RuntimeError(f"worker {variant}/{threads}: {result['bad']} GETs were not 200 ok")
    return result


def measure(args: argparse.Namespace, url: str) -> Runs:
    """Interleaved rounds: every (variant, mode) once per round, order rotated per round."""
    cells = [(v, m) for m in MODES for v in VARIANTS]
    runs: Runs = {cell: [] for cell in cells}
    for round_index in range(args.rounds):
        shift = round_index % len(cells)
        for variant, mode in cells[shift:] + cells[:shift]:
            runs[variant, mode].append(run_one(args, url, variant, MODES[mode]))
        print(f"  round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return runs


def ratio(
    runs: Runs, variant: str, mode: str, than: str = BASELINE, metric: str = "wall_us"
) -> float:
    """Median over rounds of ``variant`` / ``than`` in the same round."""
    pairs = zip(runs[variant, mode], runs[than, mode], strict=True)
    return statistics.median(a[metric] / b[metric] for a, b in pairs)


def median_of(runs: Runs, variant: str, mode: str, metric: str = "wall_us") -> float:
    """Median over rounds of ``metric``."""
    return statistics.median(r[metric] for r in runs[variant, mode])


def report(header: str, runs: Runs) -> bool:
    """Print the table and a verdict per target; whether every non-stretch target passed."""
    width = max(len(label) for label in VARIANTS.values())
    print(header)
    print(
        "us/GET = wall time / N of one run, median over rounds; ratio = median over rounds of\n"
        "(variant / baseline of the same round); cpu = the same ratio for process CPU time / N\n"
        "(all threads; immune to time spent descheduled on a loaded machine); spread = min..max\n"
        "us/GET over rounds; seq p50 = median single-GET latency, sequential, median over rounds"
    )
    cols = "".join(f" | {m + ' us/GET':>19} {'ratio':>6} {'cpu':>6} {'spread':>11}" for m in MODES)
    print(f"{'variant':<{width}}{cols} | {'seq p50':>7} {'ratio':>6}")
    print("-" * (width + len(cols) + 17))
    for variant, label in VARIANTS.items():
        line = f"{label:<{width}}"
        for mode in MODES:
            walls = [r["wall_us"] for r in runs[variant, mode]]
            spread = f"{min(walls):.0f}..{max(walls):.0f}"
            line += (
                f" | {median_of(runs, variant, mode):19.1f}"
                f" {ratio(runs, variant, mode):5.2f}x"
                f" {ratio(runs, variant, mode, metric='cpu_us'):5.2f}x {spread:>11}"
            )
        p50 = median_of(runs, variant, "sequential", "p50_us")
        p50_ratio = ratio(runs, variant, "sequential", metric="p50_us")
        print(f"{line} | {p50:7.1f} {p50_ratio:5.2f}x")
    print()
    ok = True
    for target in TARGETS:
        value = ratio(runs, target.variant, target.mode, target.than)
        cpu = ratio(runs, target.variant, target.mode, target.than, "cpu_us")
        passed = value <= target.limit if target.than == BASELINE else value < target.limit
        ok = ok and (passed or target.stretch)
        print(f"{'PASS' if passed else 'FAIL'}  {target.label}: {value:.2f}x (cpu {cpu:.2f}x)")
    return ok


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


ROOT = Path(__file__).resolve().parents[1]


def _package_origin() -> str:
    """Where ``observable_session`` is imported from (a snapshot via PYTHONPATH, or the tree)."""
    import importlib.util

    spec = importlib.util.find_spec("observable_session")
    return os.path.dirname(spec.origin) if spec and spec.origin else "(not found)"


def _shown_origin() -> str:
    """The package's origin as printed: relative to this repository, never a machine path."""
    origin = Path(_package_origin()).resolve()
    if origin.is_relative_to(ROOT):
        return f"./{origin.relative_to(ROOT).as_posix()} (this repository)"
    if "site-packages" in origin.parts:
        return "an installed copy (site-packages)"
    return "a copy outside this repository (PYTHONPATH)"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (the ``--worker`` options are for the subprocesses)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--requests", type=int, default=None, help="timed GETs per run (2000)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed GETs per run (200)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if a (non-stretch) target fails"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the SDK variant instead")
    parser.add_argument("--top", type=int, default=25, help="rows per profile listing")
    parser.add_argument("--nginx", default=None, help="the nginx binary")
    parser.add_argument("--worker", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    args.requests = args.requests or (100 if quick else 2000)
    args.rounds = args.rounds or (1 if quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (10 if quick else 200)
    args.worker_timeout = 120 if quick else 600
    if args.requests < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--requests and --rounds must be >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one measurement) and print the results."""
    args = parse_args(argv)
    if args.worker:
        result = run_worker(args.worker, args.url, args.threads, args.requests, args.warmup)
        print(json.dumps(result))
        return 0
    binary = args.nginx or find_nginx()
    if binary is None:
        print("nginx not found (apt-get install nginx, or pass --nginx)", file=sys.stderr)
        return 2
    with nginx(binary) as url:
        if args.profile:
            print(profile_worker(url, args.requests, args.warmup, args.top))
            return 0
        load_before = _load()
        runs = measure(args, url)
    header = (
        f"GET overhead vs requests.Session: {nginx_version(binary)} on 127.0.0.1 (keep-alive), "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        f"N={args.requests} timed GETs (+{args.warmup} warm-up) per run, {args.rounds} "
        "interleaved rounds, fresh process per run"
        f"\nobservable_session from {_shown_origin()}; "
        f"load average (1 min) {load_before} before, {_load()} after"
    )
    ok = report(header, runs)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
