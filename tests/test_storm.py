"""The storm benchmark's --quick run: the overload targets hold for a fleet of 20 sessions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

STORM = Path(__file__).resolve().parents[1] / "benchmarks" / "storm.py"


@pytest.fixture(scope="module")
def storm() -> dict[str, Any]:
    """One ``storm.py --quick --json`` run (20 sessions, both outages, three fleets)."""
    done = subprocess.run(
        [sys.executable, str(STORM), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout, done.stderr
    results: dict[str, Any] = json.loads(done.stdout)
    results["returncode"] = done.returncode
    return results


def fleet(storm: dict[str, Any], label: str) -> dict[str, Any]:
    """The figures of one fleet configuration."""
    return next(f for f in storm["fleets"] if f["fleet"] == label)


def test_every_target_holds(storm: dict[str, Any]) -> None:
    """The script's own checks all pass, and it exits 0."""
    failed = [name for name, held, _ in storm["checks"] if not held]
    assert failed == [] and storm["returncode"] == 0


def test_at_least_twenty_sessions(storm: dict[str, Any]) -> None:
    """The fleet is at least 20 threads, each with its own session."""
    assert storm["settings"]["threads"] >= 20


def test_default_budget_cuts_amplification(storm: dict[str, Any]) -> None:
    """503 outage: <= 1.2 attempts per logical request with the budget, ~3 without."""
    with_budget = fleet(storm, "default (budget)")["phases"][0]
    without = fleet(storm, "retry_budget=None")["phases"][0]
    assert with_budget["attempts_per_logical"] <= 1.2
    assert without["attempts_per_logical"] >= 2.5


def test_denied_retries_say_budget(storm: dict[str, Any]) -> None:
    """Calls whose retry the budget denied carry retry_denied="budget"."""
    outcomes = fleet(storm, "default (budget)")["phases"][0]["outcomes"]
    assert outcomes.get("retry_denied=budget", 0) > 0


def test_breaker_stops_load_on_a_dead_upstream(storm: dict[str, Any]) -> None:
    """Once every breaker is open, the dead upstream gets < 10% of its healthy load."""
    for phase in fleet(storm, "default + breaker")["phases"]:
        assert phase["after_open"]["load_vs_healthy"] <= 0.1
        assert phase["outcomes"].get("CircuitOpenError", 0) > 0


def test_breaker_fleet_recovers_within_break_duration(storm: dict[str, Any]) -> None:
    """Every session succeeds again within break_duration + 1 s of the upstream's recovery."""
    limit = storm["settings"]["break_duration"] + 1.0
    for phase in fleet(storm, "default + breaker")["phases"]:
        assert phase["recovery_s"] is not None and phase["recovery_s"] <= limit


def test_nothing_lost_every_error_typed(storm: dict[str, Any]) -> None:
    """Every logical request came back: a response or a RequestsApiError."""
    for result in storm["fleets"]:
        assert result["lost"] == 0 and result["untyped"] == 0
        assert result["started"] > 0


def test_isolated_failures_keep_their_retries(storm: dict[str, Any]) -> None:
    """One call in twenty failing once: every one of them was retried (and succeeded)."""
    poller = storm["poller"]
    assert poller["failed_calls"] > 0
    assert poller["retries"] == poller["failed_calls"]
