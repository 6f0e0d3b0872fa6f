"""The Prometheus rules in stack/rules: promtool accepts them, their unit tests pass, and the
compose stack's Prometheus loads them.

Without ``promtool`` (Debian's ``prometheus`` package) the promtool tests skip, except in CI
(``CI=true``), where they fail, as the other Prometheus tests do.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "stack"
RULES = STACK / "rules" / "observable-session.rules.yaml"
RULE_TESTS = STACK / "rules" / "observable-session.test.yaml"


def _load_generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dashboards_generate", ROOT / "dashboards" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    reason = "promtool is not installed (apt-get install -y prometheus)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must install it", pytrace=False)
    pytest.skip(reason)


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    """promtool check rules accepts the rule file."""
    done = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    """promtool test rules runs every alert's and recording rule's unit tests green."""
    done = subprocess.run(
        [_promtool(), "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULE_TESTS.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test() -> None:
    """Each alert is evaluated by name in the unit tests, firing at least once."""
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    assert alerts == fired


def test_the_issue_asks_for_these_alerts() -> None:
    """Retry amplification for 10 minutes, budget denials, breaker open, burn rate."""
    by_name = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
    amplification = by_name["ObservableSessionRetryAmplificationHigh"]
    assert amplification["for"] == "10m" and "> 1.5" in amplification["expr"]
    assert 'denied_by="budget"' in by_name["ObservableSessionRetriesDeniedByBudget"]["expr"]
    assert "circuit_breaker_state" in by_name["ObservableSessionCircuitOpen"]["expr"]
    fast = by_name["ObservableSessionErrorBudgetBurnFast"]["expr"]
    assert "ratio_rate1h" in fast and "ratio_rate5m" in fast and "14.4 * 0.005" in fast


def test_rules_use_only_metrics_the_library_exports() -> None:
    """Every metric and label in a rule is one of the dashboards' (tested) Prometheus names."""
    generate = _load_generate()
    known = set(generate.METRICS.values())
    labels = set(generate.LABELS.values())
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    for rule in _rules():
        for name in re.findall(r"(?<![:\w])(?:observable_session|http_client)_\w+", rule["expr"]):
            base = re.sub(r"_(count|sum|bucket)$", "", name)
            assert base in known or name in labels, f"{rule.get('record') or rule['alert']}: {name}"
        for name in re.findall(r"\bjob_server:\w+:\w+", rule["expr"]):
            assert name in recorded, name


def test_prometheus_config_loads_the_rules_and_not_the_tests() -> None:
    """stack/prometheus.yaml's rule_files glob matches the rule file, not its unit tests."""
    config = yaml.safe_load((STACK / "prometheus.yaml").read_text(encoding="utf-8"))
    matched = {
        Path(path).resolve()
        for pattern in config["rule_files"]
        for path in glob.glob(str(STACK / pattern))
    }
    assert matched == {RULES.resolve()}


def test_compose_mounts_the_rules_next_to_the_config() -> None:
    """docker-compose mounts stack/rules where the config's relative rule_files points."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    volumes = compose["services"]["prometheus"]["volumes"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in volumes)
    config_dir = Path(mounts["./stack/prometheus.yaml"]).parent
    assert Path(mounts["./stack/rules"]) == config_dir / "rules"
