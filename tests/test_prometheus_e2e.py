"""Every PromQL query of every dashboard returns data from a real Prometheus fed by the library.

The module starts Debian's ``prometheus`` on a free loopback port with a config of its own
(scrape every second, data in a temp dir), exposes the library's metrics with
``opentelemetry-exporter-prometheus`` from this process, drives a real
:class:`observable_session.Session` against a loopback upstream that misbehaves (503s, 429 and
503 with Retry-After, connection resets, a read timeout, a 404, a refused port), and then runs
every panel and variable query of every dashboard through Prometheus's HTTP API with the
variables set to "All".

Without a ``prometheus`` binary the tests skip, except in CI (``CI=true``), where they fail:
``.ci/run`` installs it with ``apt-get install -y prometheus``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, start_http_server

import observable_session
from observable_session._demo._telemetry import prometheus_reader

ROOT = Path(__file__).resolve().parent.parent
SCRAPE_JOB = "observable-session-e2e"
#: How long to wait for Prometheus to have scraped enough for every query to return data.
DATA_DEADLINE_S = 30.0


def _load_generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dashboards_generate", ROOT / "dashboards" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generate()
PANEL_QUERIES = [
    (f"{name}: {title}", expr)
    for name, builder in generate.DASHBOARDS.items()
    for title, expr in generate.prometheus_queries(builder())
]
VARIABLE_QUERIES = [
    (f"{name}: ${variable}", variable_query)
    for name, builder in generate.DASHBOARDS.items()
    for variable, variable_query in generate.variable_queries(builder())
]


def _prometheus_binary() -> str:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None
    )
    if found:
        return found
    reason = "prometheus is not installed (apt-get install -y prometheus)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must install it", pytrace=False)
    pytest.skip(reason)


# -- the misbehaving upstream ----------------------------------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    """A job API with one fault per path; per-path attempt counts make faults transient."""

    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one send per response (no Nagle stall)
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""

    def _attempt(self) -> int:
        with self.lock:
            self.seen[self.path] = self.seen.get(self.path, 0) + 1
            return self.seen[self.path]

    def _send(self, status: int, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"path": self.path, "status": status}).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends RST, so the client sees a connection reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def do_GET(self) -> None:
        """Serve one attempt; the first path segment picks the fault."""
        kind = self.path.split("/")[1]
        attempt = self._attempt()
        if kind == "flaky" and attempt == 1:
            self._send(503)
        elif kind == "throttled" and attempt == 1:
            self._send(429, {"Retry-After": "1"})
        elif kind == "maintenance":
            self._send(503, {"Retry-After": "2"})
        elif kind == "down":
            self._send(502)
        elif kind == "reset":
            self._reset()
        elif kind == "slow":
            time.sleep(0.3)
            self._send(200)
        elif kind == "missing":
            self._send(404)
        else:
            self._send(200)

    def do_POST(self) -> None:
        """Create a job."""
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self._send(201)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """Base URL of the misbehaving upstream."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _refused_base_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more


# -- Prometheus --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("prometheus did not become ready")


def _wait_first_scrape(url: str, deadline_s: float = 20.0) -> None:
    # Service discovery hands new targets to the scrape loop only every 5 s: until the
    # first scrape, traffic would land in the first sample and rate() would see no increase.
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if generate.query(url, f'up{{job="{SCRAPE_JOB}"}} == 1'):
            return
        time.sleep(0.2)
    raise TimeoutError("prometheus did not scrape the test process")


@pytest.fixture(scope="module")
def metrics_endpoint() -> Iterator[tuple[MeterProvider, int]]:
    """A MeterProvider whose reader Prometheus can scrape, and the port it serves on."""
    registry = CollectorRegistry()
    reader = prometheus_reader(registry)
    provider = MeterProvider(metric_readers=[reader])
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield provider, server.server_port
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    provider.shutdown()


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, metrics_endpoint: tuple[MeterProvider, int]
) -> Iterator[str]:
    """Base URL of a real Prometheus scraping the test process every second."""
    binary = _prometheus_binary()
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: {SCRAPE_JOB}\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_endpoint[1]}']\n",
        encoding="utf-8",
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(url, process)
        _wait_first_scrape(url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the workload -------------------------------------------------------------------------------


def _calls(session: Any, refused: Any) -> list[Callable[[], Any]]:
    """One round of calls; each path is new per round so transient faults recur."""

    def round_calls(n: int) -> list[Callable[[], Any]]:
        job = {"job_id": f"{n}"}
        calls: list[Callable[[], Any]] = [
            lambda: session.get("/jobs/{job_id}", path_params=job),
            lambda: session.post("/jobs", json={"n": n}, url_template="/jobs"),
            lambda: session.get("/flaky/{job_id}", path_params=job),
            lambda: session.get("/throttled/{job_id}", path_params=job),
            lambda: session.get("/maintenance", url_template="/maintenance"),
            lambda: session.get("/down/{job_id}", path_params=job),
            lambda: session.get("/reset/{job_id}", path_params=job),
            lambda: session.get("/missing/{job_id}", path_params=job),
            lambda: refused.get("/health", url_template="/health"),
            lambda: session.wait("/jobs/{job_id}", path_params=job, until=lambda r: True),
        ]
        if n < 2:  # real waiting: keep it to two rounds
            calls.append(lambda: session.get("/slow/{job_id}", path_params=job, timeout=0.1))
            calls.append(lambda: session.wait("/missing/{job_id}", path_params=job, until=bool))
        return calls

    return [call for n in range(12) for call in round_calls(n)]


def _overload_calls(budgeted: Any, guarded: Any) -> list[Callable[[], Any]]:
    """Calls that spend a retry budget and open a circuit breaker, spread over the rounds."""
    calls: list[Callable[[], Any]] = []
    for n in range(12):
        job = {"job_id": f"o{n}"}
        calls.append(lambda job=job: budgeted.get("/down/{job_id}", path_params=job))
        calls.append(lambda: guarded.get("/health", url_template="/health"))
    return calls


@pytest.fixture(scope="module")
def scraped(prometheus: str, metrics_endpoint: tuple[MeterProvider, int], upstream: str) -> str:
    """Prometheus's URL once a faulty workload has run through a Session and been scraped."""
    provider, _ = metrics_endpoint
    options = {
        "meter_provider": provider,
        "tracer_provider": TracerProvider(),
        "sleep": lambda seconds: None,
        "backoff_factor": 0.05,
        "retries_total": 2,
        "retries_connect": 1,
        "timeout": 2.0,
    }
    # Retries for every kind of fault, however many there are: no budget on this one.
    session = observable_session.Session(base_url=upstream, retry_budget=None, **options)
    refused = observable_session.Session(base_url=_refused_base_url(), **options)
    # The overload panels: a session on the default retry budget that keeps calling a dead
    # route (denied retries), and one whose circuit breaker opens on a refused port (state,
    # transitions, rejected calls); the long break keeps it open while Prometheus scrapes.
    budgeted = observable_session.Session(base_url=upstream, **options)
    breaker = observable_session.CircuitBreaker(minimum_throughput=3, break_duration=600.0)
    guarded = observable_session.Session(
        base_url=_refused_base_url(), circuit_breaker=breaker, **options
    )
    calls = _calls(session, refused) + _overload_calls(budgeted, guarded)
    # Spread the calls over a few scrapes so that rate() sees them increase.
    pace = 3.0 / len(calls)
    for call in calls:
        with contextlib.suppress(observable_session.RequestsApiError):
            call()
        time.sleep(pace)
    _wait_for_data(prometheus)
    for each in (session, refused, budgeted, guarded):
        each.close()
    return prometheus


def _has_finite_value(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in result)


def _wait_for_data(url: str) -> None:
    """Poll until every panel query has a finite value (or the deadline passes)."""
    end = time.monotonic() + DATA_DEADLINE_S
    while time.monotonic() < end:
        if all(
            _has_finite_value(generate.query(url, generate.substitute(e))) for _, e in PANEL_QUERIES
        ):
            return
        time.sleep(0.5)


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("panel", "expr"), PANEL_QUERIES, ids=[p for p, _ in PANEL_QUERIES])
def test_panel_query_returns_data(scraped: str, panel: str, expr: str) -> None:
    """The panel's query parses and returns at least one finite sample."""
    result = generate.query(scraped, generate.substitute(expr))
    assert result, f"no data for {panel}: {generate.substitute(expr)}"
    assert _has_finite_value(result), f"only NaN for {panel}: {result}"


@pytest.mark.parametrize(
    ("variable", "expr"), VARIABLE_QUERIES, ids=[v for v, _ in VARIABLE_QUERIES]
)
def test_variable_query_returns_values(scraped: str, variable: str, expr: str) -> None:
    """The variable's label_values() query returns at least one value."""
    assert generate.label_values(scraped, expr), f"no values for {variable}: {expr}"


def test_job_variable_lists_the_scrape_job(scraped: str) -> None:
    """The job variable offers the job Prometheus scraped the library under."""
    for builder in generate.DASHBOARDS.values():
        job_query = dict(generate.variable_queries(builder()))["job"]
        assert SCRAPE_JOB in generate.label_values(scraped, job_query)


def test_workload_retried_for_every_kind_of_fault(scraped: str) -> None:
    """Retries were recorded for 503, 429 and a connection error, so every panel saw faults."""
    result = generate.query(
        scraped, "sum by (observable_session_retry_reason) (observable_session_retries_total)"
    )
    reasons = {sample["metric"].get("observable_session_retry_reason") for sample in result}
    assert {"503", "429", "502"} <= reasons
    assert any(reason and reason.startswith("requests.exceptions.") for reason in reasons)


def test_workload_exhausted_retries(scraped: str) -> None:
    """Some logical requests failed after exhausting their retries."""
    result = generate.query(
        scraped,
        'sum(observable_session_request_duration_seconds_count{observable_session_retries_exhausted="true"})',
    )
    assert result and float(result[0]["value"][1]) > 0


def test_failed_requests_keep_their_upstream(scraped: str) -> None:
    """Failed logical requests carry server_address, so per-upstream panels count them."""
    result = generate.query(
        scraped, 'observable_session_request_duration_seconds_count{server_address=""}'
    )
    assert result == [], [sample["metric"] for sample in result]


def test_budget_denied_retries_reached_prometheus(scraped: str) -> None:
    """The default retry budget denied retries to the dead route, by reason "budget"."""
    result = generate.query(
        scraped,
        'sum(observable_session_retry_denied_total{observable_session_retry_denied_by="budget"})',
    )
    assert result and float(result[0]["value"][1]) > 0


def test_open_breaker_reached_prometheus(scraped: str) -> None:
    """The breaker's gauge reads 2 (open) and the rejected calls were counted."""
    state = generate.query(scraped, "max(observable_session_circuit_breaker_state)")
    assert state and float(state[0]["value"][1]) == 2
    rejected = generate.query(scraped, "sum(observable_session_circuit_breaker_rejected_total)")
    assert rejected and float(rejected[0]["value"][1]) > 0
    failed = generate.query(
        scraped,
        "sum(observable_session_request_duration_seconds_count"
        '{error_type="observable_session.errors.CircuitOpenError"})',
    )
    assert failed and float(failed[0]["value"][1]) > 0


def test_waits_reach_prometheus_by_route_and_outcome(scraped: str) -> None:
    """Session.wait's duration histogram arrives per url_template and outcome."""
    result = generate.query(
        scraped,
        "sum by (url_template, observable_session_wait_outcome) "
        "(observable_session_wait_duration_seconds_count)",
    )
    seen = {
        (r["metric"].get("url_template"), r["metric"].get("observable_session_wait_outcome"))
        for r in result
    }
    assert ("/jobs/{job_id}", "done") in seen
    assert ("/missing/{job_id}", "error") in seen
