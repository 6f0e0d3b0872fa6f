"""Smoke test for ``benchmarks/bench_ab.py``: it runs against a copy of this tree and reports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_ab.py"


def test_ab_run_prints_both_ratios(tmp_path: Path) -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed (apt-get install nginx); the benchmark needs it")
    shutil.copytree(ROOT / "src" / "observable_session", tmp_path / "os_before")
    out = subprocess.run(
        [sys.executable, str(BENCH), "--before", str(tmp_path), "--rounds", "1", "--batch", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCH.parent,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "after / before: wall" in out.stdout
    assert out.stdout.count("vs requests:") == 3


def test_ab_refuses_a_directory_without_the_snapshot(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--before", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=BENCH.parent,
    )
    assert out.returncode == 2
    assert "os_before/__init__.py" in out.stderr
