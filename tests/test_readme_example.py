"""The README's orchestrator example runs verbatim against ``observable-session upstream``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def orchestrator_example() -> str:
    """The first python block after "An orchestrator in ten lines", exactly as written."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index("An orchestrator in ten lines") :]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match is not None, "the README lost its orchestrator example"
    return match.group(1)


@pytest.fixture
def upstream_url() -> Iterator[str]:
    """``observable-session upstream`` in its own process, on free ports."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "observable_session",
            "upstream",
            "--port",
            "0",
            "--other-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"job API on (http://\S+),", line)
        assert match is not None, line
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_example_is_short_and_uses_wait() -> None:
    """About ten lines of code, and the polling is ``wait()``, not a sleep loop."""
    code = [line for line in orchestrator_example().splitlines() if line.strip()]
    assert len(code) <= 12
    assert any("api.wait(" in line for line in code)
    assert not any("time.sleep" in line for line in code)


def test_example_runs_verbatim_against_the_upstream(upstream_url: str, tmp_path: Path) -> None:
    """Submit, wait for DONE, fetch the result: exit 0 and the result printed."""
    script = tmp_path / "orchestrator.py"
    script.write_text(orchestrator_example(), encoding="utf-8")
    env = {**os.environ, "JOBS_API_URL": f"{upstream_url}/api/v1"}
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'counts'" in done.stdout
