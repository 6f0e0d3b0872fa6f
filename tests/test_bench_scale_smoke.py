"""Smoke test for the scale benchmark: it runs end to end and prints every target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"


def test_small_run_prints_every_target() -> None:
    """A run with 300 sessions prints the create+close, build, RSS and mask lines."""
    run = subprocess.run(
        [sys.executable, str(BENCH), "--sessions", "300", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    for start in ("create+close, 1 other", "create+close, 300 other", "building 300", "RSS:"):
        assert any(line.startswith(start) for line in lines), run.stdout
    assert sum("target <=" in line for line in lines) == 6, run.stdout
    # Two create+close, two build, two RSS and four mask verdicts, counted on the last line.
    assert re.fullmatch(r"scale targets: \d+ of 10 met(, \d+ OVER)?", lines[-1]), lines[-1]
