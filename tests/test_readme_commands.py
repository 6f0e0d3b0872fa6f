"""The README's first-screen commands are the ones CI runs, verbatim and first."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def first_screen_commands() -> list[str]:
    """The command lines (not comments) of the README's first ``bash`` block."""
    match = re.search(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    assert match is not None
    return [
        line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")
    ]


def ci_lines() -> list[str]:
    return [line.strip() for line in CI.splitlines()]


def test_the_readme_shows_two_commands() -> None:
    """Command 1 sets up and runs the demo, command 2 installs [dev] and runs the tests."""
    one, two = first_screen_commands()
    assert one.startswith("python3 -m venv .venv && ") and "observable_session demo" in one
    assert "'.[dev]'" in two and two.endswith("-m pytest -q")


def test_ci_runs_the_readme_commands_verbatim() -> None:
    """Each first-screen command is a line of .ci/run, character for character."""
    lines = ci_lines()
    for command in first_screen_commands():
        assert command in lines, command


def test_ci_runs_them_first_on_stock_pip() -> None:
    """Nothing before them upgrades pip or installs into .venv, and lint comes after."""
    lines = ci_lines()
    one, two = first_screen_commands()
    before = lines[: lines.index(one)]
    assert not any(".venv/bin/" in line or "pip install" in line for line in before)
    assert lines.index(one) < lines.index(two) < lines.index(".venv/bin/ruff check .")
    assert not any("--upgrade pip" in line for line in lines)


def test_the_commands_use_the_pinned_set() -> None:
    """Both installs are constrained by the tested set, which pins every OpenTelemetry package."""
    for command in first_screen_commands():
        assert "-c constraints/dev.txt" in command
    pins = (ROOT / "constraints" / "dev.txt").read_text(encoding="utf-8").splitlines()
    otel = [line for line in pins if line.startswith("opentelemetry-")]
    assert otel and all(re.fullmatch(r"[a-z0-9-]+==\S+", line) for line in otel)


def test_ci_runs_the_floors_and_the_requests_suite() -> None:
    """CI installs the lowest allowed versions and calls requests' suite when it exists."""
    assert "--resolution lowest-direct" in CI
    assert "if [ -f .ci/requests-suite ]; then" in CI and "bash .ci/requests-suite" in CI
