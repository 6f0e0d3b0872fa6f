"""Smoke test for the overhead benchmark: it runs end to end and prints its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_overhead.py"


def _nginx() -> str | None:
    sys.path.insert(0, str(BENCH.parent))
    try:
        from bench_overhead import find_nginx
    finally:
        sys.path.remove(str(BENCH.parent))
    return find_nginx()


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    """One ``--quick`` run of the benchmark (nginx required; CI must have it)."""
    if _nginx() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed; .ci/run must install it (apt-get install nginx)")
        pytest.skip("nginx is not installed (apt-get install nginx); the benchmark needs it")
    return subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_quick_run_exits_zero(quick_run: subprocess.CompletedProcess[str]) -> None:
    """Without --strict the benchmark exits 0 whatever the ratios."""
    assert quick_run.returncode == 0, quick_run.stderr[-3000:]


def test_quick_run_prints_every_variant_with_ratios(
    quick_run: subprocess.CompletedProcess[str],
) -> None:
    """The table has a row per variant, each with a ratio for both modes."""
    rows = [line for line in quick_run.stdout.splitlines() if line.count("x ") >= 2]
    labels = [
        "requests.Session (baseline)",
        "Session, no SDK",
        "Session, SDK",
        "requests.Session + otel-instrumentation-requests, SDK",
    ]
    for label in labels:
        assert any(row.startswith(label) for row in rows), quick_run.stdout
    assert any(row.startswith("requests.Session (baseline)") and "1.00x" in row for row in rows)


def test_quick_run_prints_a_verdict_per_target(
    quick_run: subprocess.CompletedProcess[str],
) -> None:
    """Every target gets a PASS or FAIL line."""
    verdicts = [
        line for line in quick_run.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))
    ]
    assert len(verdicts) == 10, quick_run.stdout


def test_quick_run_prints_no_machine_path(quick_run: subprocess.CompletedProcess[str]) -> None:
    """The output names the package relative to the repository, never an absolute path."""
    root = str(BENCH.parents[1])
    assert root not in quick_run.stdout
    assert "observable_session from ./src/observable_session (this repository)" in quick_run.stdout
