"""One demo run, start to finish: check, start, drive, render, clean up.

Imported only after the command line parsed, so that ``--help`` and usage errors need nothing
beyond the core dependencies; the ``[demo]`` extra is imported from here, lazily.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import random
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, TYPE_CHECKING, Any, TextIO, cast
from urllib.parse import urlsplit

from ._cli import PROG, DemoOptions

if TYPE_CHECKING:
    from rich.console import Console

    from ._collect import SpanRecorder
    from ._report import DemoReport, LogTap
    from ._telemetry import DemoTelemetry
    from ._workload import Workload

__all__ = ["DemoError", "missing_extras", "prometheus_url", "run_demo"]

#: Modules of the [demo] extra, and the options that need each one.
_EXTRA_MODULES = {
    "opentelemetry.sdk": "always",
    "rich": "always",
    "opentelemetry.exporter.otlp.proto.http": "otlp",
    "opentelemetry.exporter.prometheus": "prometheus_port",
}
#: Where ``--prometheus-port`` listens: every interface, so a Prometheus container can scrape.
#: How often a long run without a terminal prints a status line.
_STATUS_EVERY_S = 10.0
#: Output width when stdout is not a terminal and COLUMNS is unset (CI logs, pipes).
_PLAIN_WIDTH = 128
#: How many JSON log lines the terminal view shows.
_LOG_SAMPLES = 4


class DemoError(Exception):
    """A condition that ends a command with a one-line message and a non-zero exit."""

    def __init__(self, message: str, command: str = "demo") -> None:
        super().__init__(message)
        self.command = command

    def __str__(self) -> str:
        return f"{PROG} {self.command}: error: {self.args[0]}"


def missing_extras(options: DemoOptions) -> list[str]:
    """The ``[demo]`` extra's modules this run needs and cannot import."""
    missing = []
    for module, needed_for in _EXTRA_MODULES.items():
        if needed_for != "always" and getattr(options, needed_for) in (None, False):
            continue
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def _unreachable(url: str, timeout: float = 3.0) -> str | None:
    """Why a TCP connection to ``url``'s host and port fails, or ``None`` if it works."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


@contextmanager
def _logging_to(stream: LogTap, extra_handler: logging.Handler | None) -> Iterator[None]:
    """Route structlog and stdlib logging through the redacting JSON chain, then restore."""
    import structlog

    from ..logs import configure_logging

    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_structlog = structlog.get_config()
    configure_logging("INFO", json=True, stream=cast(IO[str], stream))
    if extra_handler is not None:
        # The OTLP handler (otel_logs.redacting_log_handler) masks its own copy of a record.
        root.addHandler(extra_handler)
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_structlog)


@contextmanager
def _stop_on_sigterm(stop: Callable[[], None]) -> Iterator[None]:
    """Let ``docker compose stop`` end a ``--forever`` run like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _drive(
    workload: Workload, recorder: SpanRecorder, options: DemoOptions, console: Console, err: TextIO
) -> bool:
    """Wait for the workload, showing progress; return whether it was interrupted."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    interrupted = False
    show_bar = console.is_terminal and not options.json
    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
    columns += [MofNCompleteColumn()] if options.requests else []
    columns += [TimeElapsedColumn()]
    progress = Progress(*columns, console=console, transient=True, disable=not show_bar)
    total = options.requests or options.duration
    last_status = time.monotonic()
    with progress:
        task = progress.add_task("requests", total=total)
        while workload.running():
            try:
                time.sleep(0.1)
            except KeyboardInterrupt:
                interrupted = True
                workload.stop()
                continue
            done, attempts = recorder.totals()
            description = f"{done} requests, {attempts} attempts"
            completed = done if options.requests else min(workload.elapsed(), total or 0)
            progress.update(task, completed=completed, description=description)
            quiet = show_bar or options.json or not options.is_long_run
            if not quiet and time.monotonic() - last_status >= _STATUS_EVERY_S:
                last_status = time.monotonic()
                print(f"{PROG} demo: {workload.elapsed():.0f} s, {description}", file=err)
    return interrupted or workload.stop_requested()


def _preflight(options: DemoOptions) -> None:
    missing = missing_extras(options)
    if missing:
        raise DemoError(
            f"the demo needs the [demo] extra (missing: {', '.join(missing)}); "
            "install it with: pip install 'observable-session[demo]'"
        )
    if options.target is not None and (reason := _unreachable(options.target)) is not None:
        raise DemoError(f"--target {options.target} is unreachable ({reason})")


def _start_telemetry(options: DemoOptions, key: str) -> DemoTelemetry:
    from ._telemetry import setup_telemetry

    try:
        return setup_telemetry(
            secrets=(key,),
            otlp=options.otlp,
            prometheus_port=options.prometheus_port,
            prometheus_addr=options.prometheus_host,
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DemoError(
            f"cannot serve --prometheus-port {options.prometheus_port} ({reason})"
        ) from None


def _open_log_file(path: str | None, stack: ExitStack) -> TextIO | None:
    if path is None:
        return None
    try:
        return stack.enter_context(open(path, "w", encoding="utf-8"))
    except OSError as exc:
        raise DemoError(f"cannot write --log-file {path} ({exc.strerror or exc})") from None


def _print_report(report: DemoReport, options: DemoOptions, console: Console, key: str) -> None:
    """Render to text first, so that the output itself can be checked for the key."""
    from ._report import build_checks, report_json
    from ._views import render_checks, render_report

    if options.json:
        report.output_secret_hits = json.dumps(report_json(report)).count(key)
        report.checks = build_checks(report)
        console.file.write(json.dumps(report_json(report), indent=2) + "\n")
    else:
        with console.capture() as capture:
            render_report(console, report)
        text = capture.get()
        report.output_secret_hits = text.count(key)
        report.checks = build_checks(report)
        console.file.write(text)
        console.print()
        console.print(render_checks(report.checks))
    console.file.flush()


def prometheus_url(host: str, port: int) -> str:
    """The ``/metrics`` address of the Prometheus server (IPv6 hosts bracketed)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/metrics"


def _announce(
    options: DemoOptions,
    seed: int,
    target: str,
    upstream: Any,
    telemetry: DemoTelemetry,
    stream: TextIO,
) -> None:
    """Print where everything is before the workload starts (so ``--forever`` is findable)."""
    from ._views import start_header

    port = telemetry.prometheus_port
    header = start_header(
        requested=options.requests,
        duration=options.duration,
        concurrency=options.concurrency,
        seed=seed,
        target=target,
        other_origin=upstream.other_origin_url if upstream is not None else None,
        otlp=options.otlp,
        prometheus_url=prometheus_url(options.prometheus_host, port) if port is not None else None,
    )
    print(header, file=stream, flush=True)


def run_demo(
    options: DemoOptions, *, stdout: TextIO, stderr: TextIO, secret: str | None = None
) -> int:
    """Run the demo; return the exit status. ``secret`` overrides the random demo API key."""
    _preflight(options)
    if options.otlp is not None and (reason := _unreachable(options.otlp)) is not None:
        # Not fatal: a collector may come up later, and the exporters retry.
        print(f"{PROG} demo: warning: --otlp {options.otlp} is unreachable ({reason})", file=stderr)
    from rich.console import Console

    from ._collect import metric_totals
    from ._report import DemoReport, LogTap
    from ._upstream import DemoUpstream
    from ._workload import Workload, make_session, plan

    key = secret or f"demo-{secrets.token_hex(16)}"
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(10**6)
    wide = os.environ.get("COLUMNS") is None and not stdout.isatty()
    console = Console(file=stdout, width=_PLAIN_WIDTH if wide else None, highlight=False)
    with ExitStack() as stack:
        upstream = stack.enter_context(DemoUpstream()) if options.target is None else None
        target = options.target or (upstream.url if upstream else "")
        telemetry = _start_telemetry(options, key)
        stack.callback(telemetry.shutdown)
        tap = LogTap((key,), tee=_open_log_file(options.log_file, stack))
        stack.enter_context(_logging_to(tap, telemetry.log_handler))
        session = make_session(
            target, key, telemetry.tracer_provider, telemetry.meter_provider, options.concurrency
        )
        workload = Workload(
            session,
            plan(seed, options.requests),
            concurrency=options.concurrency,
            duration=options.duration,
            secret=key,
        )
        with _stop_on_sigterm(workload.stop):
            # The handler is in place before the announcement: whoever reads it may stop us.
            announce_to = stderr if options.json else stdout
            _announce(options, seed, target, upstream, telemetry, announce_to)
            workload.start()
            try:
                interrupted = _drive(workload, telemetry.recorder, options, console, stderr)
            finally:
                workload.stop()
                result = workload.join()
                session.close()
        report = DemoReport(
            target=target,
            embedded=upstream is not None,
            seed=seed,
            concurrency=options.concurrency,
            requested=options.requests,
            duration_limit=options.duration,
            routes=telemetry.recorder.routes(),
            waterfall=telemetry.recorder.waterfall(),
            metrics=metric_totals(telemetry.metric_reader, (key,)),
            workload=result,
            log_lines=tap.lines,
            log_redacted_lines=tap.redacted_lines,
            log_secret_hits=tap.secret_hits,
            log_samples=tap.samples(_LOG_SAMPLES),
            spans_seen=telemetry.recorder.spans_seen,
            span_secret_hits=telemetry.recorder.secret_hits,
            other_origin=upstream.other_origin_url if upstream else None,
            otlp=options.otlp,
            prometheus_port=telemetry.prometheus_port,
            interrupted=interrupted,
            waits=telemetry.recorder.waits(),
            wait_view=telemetry.recorder.wait_view(),
        )
        _print_report(report, options, console, key)
    failed = [c for c in report.checks if not c.ok]
    if failed:
        print(f"{PROG} demo: error: {len(failed)} check(s) failed (see above)", file=stderr)
        return 1
    return 0


def run_upstream(host: str, port: int, other_port: int, *, stdout: TextIO) -> int:
    """Serve the demo upstream until interrupted (Ctrl-C or SIGTERM)."""
    from ._upstream import DemoUpstream

    try:
        upstream = DemoUpstream(host, port, other_port).start()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DemoError(
            f"cannot listen on {host}:{port}/{other_port} ({reason})", "upstream"
        ) from None
    stop = threading.Event()
    print(
        f"{PROG} upstream: job API on {upstream.url}, other origin on "
        f"{upstream.other_origin_url}; Ctrl-C to stop",
        file=stdout,
        flush=True,
    )
    try:
        with _stop_on_sigterm(stop.set):
            while not stop.wait(0.2):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        upstream.close()
    return 0
