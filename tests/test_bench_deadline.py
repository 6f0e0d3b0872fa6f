"""Smoke test for benchmarks/bench_deadline.py: it runs and prints a ratio per variant."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_deadline.py"


def test_quick_run_prints_every_variant_with_ratios() -> None:
    """--quick exits 0 and prints wall and CPU ratios for the three variants."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        from bench_overhead import find_nginx
    finally:
        sys.path.remove(str(BENCH.parent))
    if find_nginx() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed; .ci/run must install it")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    labels = (
        "no deadline (watched pools, as shipped)",
        "no deadline, plain urllib3 pools",
        "deadline=30 s",
    )
    for label in labels:
        assert re.search(rf"{re.escape(label)}\s+[\d.]+\s+[\d.]+x\s+[\d.]+\s+[\d.]+x", run.stdout)
