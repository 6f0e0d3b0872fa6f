"""The CI-sized soak: ``benchmarks/soak.py --quick`` run once as a subprocess, then judged."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context

from observable_session.telemetry import _semconv as sc

SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"
sys.path.insert(0, str(SOAK.parent))

from soak import AuditExporter, LogAudit  # noqa: E402

PHASES = ("clean", "faults")
CHECKS = (
    "ended exactly once",
    "response or typed exception",
    "none outlived its deadline",
    "attempts: spans == server + refused == duration count",
    "refused attempts: client count == spans to refused port",
    "logical: spans == requests == duration count",
    "retries counter == attempts - logical",
    "each logical span's attempts == its attempt spans",
    "every span ended",
    "no secret in spans, metrics, logs, exceptions",
    "auth headers on every attempt to the origin",
    "http.client.active_requests back to 0",
    "fds: no socket outside the pool",
    "pool bounded, fds back to start after close",
    "huge error bodies (stream=True): peak RSS",
    "RSS growth after warm-up",
)


@pytest.fixture(scope="module")
def soak() -> subprocess.CompletedProcess[str]:
    """One quick soak run (both phases), shared by the tests below."""
    return subprocess.run(
        [sys.executable, str(SOAK), "--quick"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _phase(output: str, name: str) -> str:
    match = re.search(rf"^phase {name}:\n(.*?)(?:\n\n|\Z)", output, re.S | re.M)
    assert match, f"phase {name} missing from:\n{output}"
    return match.group(1)


@pytest.mark.timeout(120)
def test_quick_soak_exits_zero(soak: subprocess.CompletedProcess[str]) -> None:
    """The quick soak exits 0 and says it passed."""
    assert soak.returncode == 0, soak.stdout + soak.stderr
    assert "SOAK PASSED" in soak.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("phase", PHASES)
def test_quick_soak_prints_every_check_passed(
    soak: subprocess.CompletedProcess[str], phase: str
) -> None:
    """Each phase prints every check, each one PASS."""
    block = _phase(soak.stdout, phase)
    lines = re.findall(r"^\s+\[(PASS|FAIL)\] (.+?) \| ", block, re.M)
    assert {name: verdict for verdict, name in lines} == dict.fromkeys(CHECKS, "PASS"), block


@pytest.mark.timeout(120)
def test_quick_soak_injects_every_fault(soak: subprocess.CompletedProcess[str]) -> None:
    """The faults phase serves every server-side fault and sends some requests to a refused port."""
    block = _phase(soak.stdout, "faults")
    served = dict(
        re.findall(r"(\w+) (\d+)", block.split("server faults served: ")[1].split(";")[0])
    )
    kinds = ("429", "5xx", "close_mid_body", "delay", "garbage", "reset", "stall")
    kinds += ("drip_headers", "drip_body", "huge_5xx")
    assert all(int(served.get(k, 0)) > 0 for k in (*kinds, "truncated_chunked")), served
    refused = re.search(r"refused \(client-side, not seen by the server\): (\d+) requests", block)
    assert refused and int(refused.group(1)) > 0


@pytest.mark.timeout(120)
def test_quick_soak_reports_throughput_latency_and_ratio(
    soak: subprocess.CompletedProcess[str],
) -> None:
    """Each phase prints throughput and p50/p99, and the run prints the faults/clean ratio."""
    for phase in PHASES:
        assert re.search(
            r"throughput \d+ logical req/s; latency p50 [\d.]+ ms, p99 [\d.]+ ms",
            _phase(soak.stdout, phase),
        )
    assert re.search(
        r"faults vs clean: throughput x[\d.]+ .* p50 x[\d.]+ .* p99 x[\d.]+", soak.stdout
    )


def _audited() -> tuple[TracerProvider, AuditExporter]:
    exporter = AuditExporter("s3cr3t", refused_port=1)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_audit_finds_a_secret_in_a_span_event() -> None:
    """The span audit counts a span whose event carries the secret (the check can fail)."""
    provider, exporter = _audited()
    span = provider.get_tracer("t").start_span("GET", kind=SpanKind.INTERNAL)
    span.add_event("exception", {"exception.message": "Bearer s3cr3t"})
    span.set_attribute(sc.ATTEMPTS, 0)
    span.end()
    assert exporter.secret_hits == 1


def test_audit_finds_a_logical_span_whose_attempt_count_is_wrong() -> None:
    """A logical span claiming two attempts with one attempt span is a mismatch."""
    provider, exporter = _audited()
    tracer = provider.get_tracer("t")
    logical = tracer.start_span("GET", kind=SpanKind.INTERNAL)
    tracer.start_span("GET", set_span_in_context(logical), kind=SpanKind.CLIENT).end()
    logical.set_attribute(sc.ATTEMPTS, 2)
    logical.end()
    assert (exporter.attempt_spans, exporter.logical_spans, exporter.child_mismatches) == (1, 1, 1)


def test_log_audit_counts_drops_and_finds_a_secret() -> None:
    """The log audit counts each event, drops it, and counts one carrying the secret."""
    audit = LogAudit("s3cr3t")
    with pytest.raises(structlog.DropEvent):
        audit(None, "warning", {"event": "x", "header": "Bearer s3cr3t"})
    assert (audit.events["x"], audit.secret_hits) == (1, 1)
