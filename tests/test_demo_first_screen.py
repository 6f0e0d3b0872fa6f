"""The demo as a new user meets it: where to look is printed first, a dead collector is quiet."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from observable_session._demo._run import prometheus_url

DEMO = [sys.executable, "-m", "observable_session", "demo"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_prometheus_url_brackets_ipv6() -> None:
    """An IPv6 listen address is bracketed in the printed URL."""
    assert prometheus_url("::1", 9464) == "http://[::1]:9464/metrics"
    assert prometheus_url("127.0.0.1", 9464) == "http://127.0.0.1:9464/metrics"


def test_forever_prints_where_to_look_before_running() -> None:
    """--forever --prometheus-port 0: header, upstream and the real /metrics URL come first."""
    proc = subprocess.Popen(
        [*DEMO, "--forever", "--prometheus-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("Prometheus" in ln for ln in lines):
            line = proc.stdout.readline()  # arrives while the run goes on: it was flushed
            if not line:
                break
            lines.append(line.rstrip("\n"))
        assert lines[0].startswith("observable-session demo: requests until interrupted")
        assert re.fullmatch(r"Upstream: http://127\.0\.0\.1:\d+ \(embedded.*", lines[1])
        match = re.fullmatch(r"Prometheus metrics: (http://127\.0\.0\.1:(\d+)/metrics)", lines[-1])
        assert match is not None and int(match.group(2)) != 0, lines
        assert proc.poll() is None, "the run is still going"
        with urllib.request.urlopen(match.group(1), timeout=10) as response:
            assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # pragma: no cover - leave nothing behind
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


def test_json_keeps_stdout_json_and_puts_the_header_on_stderr() -> None:
    """With --json the header goes to stderr, so stdout stays one JSON document."""
    import json

    out = subprocess.run(
        [*DEMO, "--requests", "8", "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    json.loads(out.stdout)
    assert out.stderr.startswith("observable-session demo: 8 requests")


@pytest.mark.timeout(60)
def test_unreachable_otlp_is_one_warning_and_no_stall() -> None:
    """A dead --otlp endpoint: one warning line, no exporter noise, no long flush at exit."""
    endpoint = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    out = subprocess.run(
        [*DEMO, "--requests", "10", "--otlp", endpoint],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [
        f"observable-session demo: warning: --otlp {endpoint} is unreachable (Connection refused)"
    ]
    # The exporters' retry-with-backoff flush took ~7 s here; a run of 10 requests takes ~1 s.
    assert elapsed < 5.0, elapsed
