"""The demo: its views, its counts, its JSON, its secrecy, and its command line."""

from __future__ import annotations

import gzip
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from observable_session.__main__ import main
from observable_session._demo import DemoOptions, _run, parse_args
from observable_session._demo._collect import AttemptView, RetryView, WaterfallView
from observable_session._demo._views import render_waterfall

SECRET = "demo+s3cr3t/key=42.x"
SECRET_FORMS = (SECRET, quote(SECRET, safe=""), quote(SECRET))
ROW = re.compile(r"^\s*(?P<route>(?:GET|POST) \S+|all routes)\s+" + r"\s+".join([r"(\d+)"] * 5))


@dataclass
class Run:
    """What one demo run printed and logged."""

    code: int
    out: str
    err: str
    log_lines: list[str]

    def texts(self) -> list[str]:
        return [self.out, self.err, *self.log_lines]


def _run_demo(argv: list[str], log_path: Path, columns: int | None = None) -> Run:
    options = parse_args([*argv, "--log-file", str(log_path)])
    assert isinstance(options, DemoOptions)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        if columns is None:
            patch.delenv("COLUMNS", raising=False)  # the wide layout the parsers expect
        else:
            patch.setenv("COLUMNS", str(columns))
        code = _run.run_demo(options, stdout=out, stderr=err, secret=SECRET)
    lines = log_path.read_text(encoding="utf-8").splitlines()
    return Run(code, out.getvalue(), err.getvalue(), lines)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    log = tmp_path_factory.mktemp("text") / "demo.log"
    return _run_demo(["demo", "--requests", "40", "--concurrency", "4", "--seed", "7"], log)


@pytest.fixture(scope="module")
def json_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    log = tmp_path_factory.mktemp("json") / "demo.log"
    return _run_demo(["demo", "--requests", "30", "--seed", "11", "--json"], log)


@pytest.fixture(scope="module")
def document(json_run: Run) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(json_run.out)
    return parsed


def _waterfall_lines(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Waterfall of one"))
    end = lines.index("", start)
    return lines[start:end]


# -- the terminal views --------------------------------------------------------------------


def test_text_run_exits_zero(text_run: Run) -> None:
    """A default-style run succeeds and all its self-checks pass."""
    assert text_run.code == 0, text_run.err
    assert "✗" not in text_run.out
    assert text_run.out.count("✓") >= 5


def test_waterfall_shows_every_attempt_of_a_retried_request(text_run: Run) -> None:
    """The waterfall has one row per attempt, as many as its title says, with a status each."""
    lines = _waterfall_lines(text_run.out)
    attempts = int(re.search(r"after (\d+) attempts", lines[0])[1])  # type: ignore[index]
    rows = [line for line in lines if re.match(r"^  attempt \d+ ", line)]
    assert attempts >= 2
    assert [int(row.split()[1]) for row in rows] == list(range(1, attempts + 1))
    assert all(re.search(r"ms  (\d{3}|[A-Za-z]+)", row) for row in rows)


def test_waterfall_shows_the_waits_between_attempts(text_run: Run) -> None:
    """Between consecutive attempts there is a row for the backoff (or redirect) gap."""
    lines = _waterfall_lines(text_run.out)
    rows = [line for line in lines if re.match(r"^  attempt \d+ ", line)]
    gaps = [line for line in lines if re.match(r"^    (backoff|Retry-After|redirect|gap)", line)]
    assert len(gaps) == len(rows) - 1
    assert any("backoff" in gap or "Retry-After" in gap for gap in gaps)


def test_waterfall_attempts_start_later_and_later(text_run: Run) -> None:
    """Each attempt's bar starts to the right of the previous one's (a time axis)."""
    lines = _waterfall_lines(text_run.out)
    starts = [line.index("█") for line in lines if re.match(r"^  attempt \d+ ", line)]
    assert starts == sorted(starts) and starts[0] < starts[-1]


def test_waterfall_is_drawn_to_scale() -> None:
    """Bars and gaps start and end at columns proportional to their timestamps."""
    view = WaterfallView(
        name="GET /jobs/{job_id}",
        trace_id="0" * 32,
        duration_s=0.2,
        status_code=200,
        error_type=None,
        attempts=(
            AttemptView("attempt 1", 0.0, 0.02, 503, "503", None, "h:1", True),
            AttemptView("attempt 2", 0.1, 0.2, 200, None, 1, "h:1", False),
        ),
        retries=(RetryView(0.02, "503", 0.05, False, 1),),
    )
    from rich.console import Console

    console = Console(file=io.StringIO(), width=130)
    with console.capture() as capture:
        console.print(render_waterfall(view, 130))
    lines = capture.get().splitlines()
    first = next(line for line in lines if line.startswith("  attempt 1"))
    second = next(line for line in lines if line.startswith("  attempt 2"))
    gap = next(line for line in lines if line.startswith("    backoff"))
    bar_width = 72  # the widest bar, at this console width; 0.2 s over 72 columns
    label = 30
    assert first.index("█") == label and first.rindex("█") == label + round(0.02 / 0.2 * 72) - 1
    assert second.index("█") == label + round(0.1 / 0.2 * bar_width)
    assert gap.index("·") == label + round(0.02 / 0.2 * bar_width)
    assert gap.rindex("·") == label + round(0.1 / 0.2 * bar_width) - 1


def test_summary_table_counts_add_up(text_run: Run) -> None:
    """On every row of the table, attempts = requests + retries + redirect hops."""
    rows = [m for m in map(ROW.match, text_run.out.splitlines()) if m]
    assert len(rows) >= 8  # seven routes and the total
    for row in rows:
        requests, attempts, retries, redirects, _ = (int(v) for v in row.groups()[1:])
        assert attempts == requests + retries + redirects, row.group(0)


def test_summary_table_total_is_the_sum_of_the_routes(text_run: Run) -> None:
    """The 'all routes' row sums the route rows, column by column."""
    rows = [m for m in map(ROW.match, text_run.out.splitlines()) if m]
    routes = [[int(v) for v in m.groups()[1:]] for m in rows if m["route"] != "all routes"]
    total = next([int(v) for v in m.groups()[1:]] for m in rows if m["route"] == "all routes")
    assert total == [sum(column) for column in zip(*routes, strict=True)]
    polls = re.search(r"Waited for \d+ jobs .*?: (\d+) polls", text_run.out)
    assert total[0] == 40 + (int(polls.group(1)) if polls else 0)  # waits' polls on top


def test_narrow_plain_output_fits_80_columns(tmp_path: Path) -> None:
    """Without a terminal and with COLUMNS=80, every line but the JSON log lines fits."""
    run = _run_demo(["demo", "--requests", "20", "--seed", "3"], tmp_path / "n.log", columns=80)
    lines = [line for line in run.out.splitlines() if not line.startswith("{")]
    assert run.code == 0, run.err
    assert max(len(line) for line in lines) <= 80
    assert "Per route, latency and reasons" in run.out


def test_output_shows_json_log_lines_with_the_key_redacted(text_run: Run) -> None:
    """The log section prints JSON lines, among them the deliberately logged headers."""
    shown = [line for line in text_run.out.splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in shown]
    assert len(records) >= 3
    ready = next(r for r in records if r["event"] == "demo.session.ready")
    assert ready["headers"]["X-API-Key"] == "REDACTED"
    assert any("REDACTED" in r.get("body", "") for r in records)


def test_no_secret_in_any_output_of_a_text_run(text_run: Run) -> None:
    """Neither stdout, stderr nor any JSON log line contains the key in any form."""
    for text in text_run.texts():
        for form in SECRET_FORMS:
            assert form not in text


def test_every_log_line_is_json_and_some_show_redacted(text_run: Run) -> None:
    """The log file holds one JSON object per line; the echoed key shows as REDACTED."""
    records = [json.loads(line) for line in text_run.log_lines]
    assert len(records) > 10
    assert sum("REDACTED" in line for line in text_run.log_lines) >= 2
    assert {"demo.upstream.error_body", "observable_session.retry.scheduled"} <= {
        r["event"] for r in records
    }


# -- --json ---------------------------------------------------------------------------------


def test_json_output_is_one_document(json_run: Run, document: dict[str, Any]) -> None:
    """--json prints a single JSON document and nothing else on stdout."""
    assert json_run.code == 0, json_run.err
    assert json_run.out.strip().startswith("{") and json_run.out.strip().endswith("}")
    assert document["ok"] is True
    assert document["requested"] == 30 and document["seed"] == 11


def test_json_route_counts_add_up(document: dict[str, Any]) -> None:
    """Per route: attempts = requests + retries + redirects; reasons and types sum up."""
    for route in [*document["routes"], document["totals"]]:
        assert route["attempts"] == route["requests"] + route["retries"] + route["redirects"]
        assert route["retries"] == sum(route["retries_by_reason"].values())
        assert route["errors"] == sum(route["errors_by_type"].values())


def test_json_totals_match_routes_metrics_and_workload(document: dict[str, Any]) -> None:
    """Totals equal the sum of the routes, the metric points, and what the workload saw."""
    totals, routes = document["totals"], document["routes"]
    for key in ("requests", "attempts", "retries", "redirects", "errors"):
        assert totals[key] == sum(r[key] for r in routes)
    assert document["metrics"]["attempt_points"] == totals["attempts"]
    planned = 30 + document["waits"]["polls"]  # the polls of the jobs it waited for on top
    assert document["metrics"]["request_points"] == totals["requests"] == planned
    assert document["metrics"]["retries"] == totals["retries"]
    assert document["workload"]["issued"] == planned
    assert document["workload"]["failed"] == totals["errors"]
    assert document["workload"]["failures_by_type"] == totals["errors_by_type"]


def test_json_waterfall_is_consistent(document: dict[str, Any]) -> None:
    """The waterfall's attempts are ordered, inside the logical span, and waited >= backoff."""
    waterfall = document["waterfall"]
    attempts, retries = waterfall["attempts"], waterfall["retries"]
    assert len(attempts) >= 2 and len(retries) >= 1
    ends = [a["start_ms"] + a["duration_ms"] for a in attempts]
    assert max(ends) <= waterfall["duration_ms"] + 0.001
    for retry in retries:
        before = attempts[retry["resend_count"] - 1]
        after = attempts[retry["resend_count"]]
        waited = after["start_ms"] - (before["start_ms"] + before["duration_ms"])
        assert waited >= retry["backoff_ms"] * 0.95


def test_no_secret_in_any_output_of_a_json_run(json_run: Run, document: dict[str, Any]) -> None:
    """The JSON document and the log lines never contain the key; the demo counted zero."""
    for text in json_run.texts():
        for form in SECRET_FORMS:
            assert form not in text
    assert set(document["secret_occurrences"].values()) == {0}


# -- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["demo", "--requests", "0"], "--requests"),
        (["demo", "--requests", "many"], "--requests"),
        (["demo", "--concurrency", "0"], "--concurrency"),
        (["demo", "--concurrency", "1000"], "--concurrency"),
        (["demo", "--duration", "-1"], "--duration"),
        (["demo", "--duration", "5", "--forever"], "--forever"),
        (["demo", "--requests", "5", "--duration", "1"], "--duration"),
        (["demo", "--target", "ftp://example.test"], "--target"),
        (["demo", "--target", "http://u:p@127.0.0.1:1"], "--target"),
        (["demo", "--otlp", "collector:4318"], "--otlp"),
        (["demo", "--prometheus-port", "70000"], "--prometheus-port"),
        (["demo", "--seed", "x"], "--seed"),
        (["demo", "--no-such-option"], "--no-such-option"),
        (["no-such-command"], "no-such-command"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad command line exits 2 with one line on stderr naming the culprit."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and names in lines[0], captured.err


def test_unreachable_target_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A --target nobody listens on ends the demo before it starts, with a clear line."""
    port = _free_port()
    assert main(["demo", "--target", f"http://127.0.0.1:{port}"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0] and str(port) in lines[0]


def test_missing_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the [demo] extra the demo says which package to install."""
    monkeypatch.setitem(sys.modules, "rich", None)
    assert main(["demo", "--requests", "1"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'observable-session[demo]'" in err and "rich" in err


def test_unwritable_log_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --log-file that cannot be written is a clear one-line error."""
    assert main(["demo", "--requests", "1", "--log-file", str(tmp_path / "no" / "x.log")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--log-file" in lines[0]


def test_busy_prometheus_port_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --prometheus-port already in use is a clear one-line error."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--requests", "1", "--prometheus-port", str(port)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"--prometheus-port {port}" in lines[0]


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command, the help text goes to stderr and the exit status is 2."""
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err


def test_duration_bounds_the_run(tmp_path: Path) -> None:
    """--duration runs for about that long rather than for a number of requests."""
    run = _run_demo(["demo", "--duration", "0.6", "--json", "--seed", "5"], tmp_path / "d.log")
    document = json.loads(run.out)
    assert run.code == 0, run.err
    assert document["requested"] is None
    assert 0.6 <= document["elapsed_s"] < 3.0
    assert document["totals"]["requests"] == document["workload"]["issued"] > 0


def test_python_m_runs_the_demo_as_a_subprocess() -> None:
    """`python -m observable_session demo --json` exits 0 and prints a parseable document."""
    proc = subprocess.run(
        [sys.executable, "-m", "observable_session", "demo", "--requests", "14", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    planned = 14 + document["waits"]["polls"]  # the polls of the jobs it waited for on top
    assert document["ok"] is True and document["totals"]["requests"] == planned


@pytest.fixture
def upstream_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    port, other = _free_port(), _free_port()
    argv = [sys.executable, "-m", "observable_session", "upstream"]
    argv += ["--port", str(port), "--other-port", str(other)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # the "listening" line
    yield proc, f"http://127.0.0.1:{port}"
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def test_target_runs_the_workload_against_a_separate_upstream(
    upstream_process: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    """--target drives the same workload at the `upstream` command's server."""
    proc, url = upstream_process
    run = _run_demo(["demo", "--target", url, "--requests", "14", "--json"], tmp_path / "t.log")
    document = json.loads(run.out)
    assert run.code == 0, run.err
    assert document["target"] == url and document["embedded_upstream"] is False
    planned = 14 + document["waits"]["polls"]
    assert document["totals"]["requests"] == planned and document["totals"]["retries"] > 0
    proc.terminate()
    assert proc.wait(timeout=10) == 0


# -- exporters --------------------------------------------------------------------------------


class _OtlpSink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and keeps their (decompressed) bodies by path."""

    wbufsize = -1
    protocol_version = "HTTP/1.1"
    received: dict[str, list[bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.setdefault(self.path, []).append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_sink() -> Iterator[tuple[str, dict[str, list[bytes]]]]:
    received: dict[str, list[bytes]] = {}
    handler = type("Sink", (_OtlpSink,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_otlp_exports_traces_metrics_and_logs_without_the_key(
    otlp_sink: tuple[str, dict[str, list[bytes]]], tmp_path: Path
) -> None:
    """--otlp sends all three signals over OTLP/HTTP, and no payload carries the key."""
    url, received = otlp_sink
    run = _run_demo(["demo", "--requests", "14", "--otlp", url, "--json"], tmp_path / "o.log")
    assert run.code == 0, run.err
    assert {"/v1/traces", "/v1/metrics", "/v1/logs"} <= set(received)
    payloads = b"".join(b"".join(bodies) for bodies in received.values())
    assert b"observable_session" in payloads
    assert b"REDACTED" in b"".join(received["/v1/logs"])
    for form in SECRET_FORMS:
        assert form.encode() not in payloads


def test_prometheus_port_serves_the_contract_metrics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--prometheus-port serves /metrics with the library's metric names while running."""
    port = _free_port()
    argv = ["demo", "--duration", "1.5", "--prometheus-port", str(port), "--json"]
    result: list[Run] = []
    worker = threading.Thread(target=lambda: result.append(_run_demo(argv, tmp_path / "p.log")))
    worker.start()
    scraped = ""
    deadline = time.monotonic() + 10
    wanted = ("observable_session_retries_total", 'url_template="/jobs/{job_id}"')
    # Scrape until every series asserted below is there: a loaded machine may scrape early.
    while not all(w in scraped for w in wanted) and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                scraped = resp.read().decode()
        except OSError:
            continue
    worker.join(timeout=30)
    assert result and result[0].code == 0
    assert "http_client_request_duration_seconds_bucket" in scraped
    assert "observable_session_request_duration_seconds_count" in scraped
    assert 'url_template="/jobs/{job_id}"' in scraped
    assert SECRET not in scraped
