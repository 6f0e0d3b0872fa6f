"""The Grafana dashboards: in sync with their generator, well formed, built on real names.

The names test drives a real :class:`observable_session.Session` through a loopback upstream
(a 503 then 200, a 404, a 503 that never ends) with ``opentelemetry-exporter-prometheus``
reading its metrics, parses the exposition text, and checks every metric and label name a
dashboard query uses against what the library really exported.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import observable_session
from observable_session._demo._telemetry import prometheus_reader

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "dashboards"


def _load_generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dashboards_generate", DASHBOARD_DIR / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generate()
DASHBOARDS = {name: json.loads((DASHBOARD_DIR / name).read_text()) for name in generate.DASHBOARDS}
QUERIES = [
    (f"{name}: {title}", expr)
    for name, dashboard in DASHBOARDS.items()
    for title, expr in generate.prometheus_queries(dashboard)
]
QUERY_IDS = [title for title, _ in QUERIES]
PANELS = [
    (name, panel)
    for name, dashboard in DASHBOARDS.items()
    for panel in generate.iter_panels(dashboard)
    if panel["type"] != "row"
]
#: Labels Prometheus adds at scrape time or PromQL makes up: not the library's to export.
SCRAPE_LABELS = {"job", "instance", "le"}
#: Grafana's own variables.
BUILTIN_VARIABLES = {"__rate_interval", "__range", "__interval", "__all"}


# -- parsing PromQL just enough ------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(?!\s*\()")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_KEYWORDS |= {"and", "or", "unless", "offset", "atan2", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (not functions, labels, keywords or strings)."""
    bare = _STRING.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = _GROUPING.sub("", bare)
    return {name for name in _IDENTIFIER.findall(bare) if name.lower() not in _KEYWORDS}


def selector_labels(expr: str) -> dict[str, set[str]]:
    """Label names in the matchers of each ``metric{...}`` selector."""
    found: dict[str, set[str]] = {}
    for metric, matchers in _SELECTOR.findall(expr):
        names = re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", _STRING.sub('""', matchers))
        found.setdefault(metric, set()).update(names)
    return found


def grouping_labels(expr: str) -> set[str]:
    """Label names in ``by (...)``, ``without (...)``, ``on (...)`` and the like."""
    return {
        label.strip()
        for group in _GROUPING.findall(_STRING.sub('""', expr))
        for label in group.split(",")
        if label.strip()
    }


# -- what the library really exports ------------------------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    """/flaky/N: 503 once, then 200; /missing: 404; /down: always 503; else 200."""

    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one send per response (no Nagle stall)
    seen: set[str] = set()
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""

    def do_GET(self) -> None:
        """Answer by the first path segment."""
        kind = self.path.split("/")[1]
        with self.lock:
            first = self.path not in self.seen
            self.seen.add(self.path)
        status = {"missing": 404, "down": 503}.get(kind, 503 if kind == "flaky" and first else 200)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Sample name -> label names, from a real Session's metrics in Prometheus text format."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[prometheus_reader(registry)])
    session = observable_session.Session(
        base_url=f"http://127.0.0.1:{server.server_port}",
        meter_provider=provider,
        sleep=lambda seconds: None,
        backoff_factor=0.01,
    )
    # A second session whose breaker opens on /down: denied retries, transitions, rejections.
    guarded = observable_session.Session(
        base_url=f"http://127.0.0.1:{server.server_port}",
        meter_provider=provider,
        sleep=lambda seconds: None,
        circuit_breaker=observable_session.CircuitBreaker(minimum_throughput=4),
    )
    try:
        for path in ("/jobs/{job_id}", "/flaky/{job_id}", "/missing/{job_id}", "/down/{job_id}"):
            with contextlib.suppress(observable_session.RequestsApiError):
                session.get(path, path_params={"job_id": "42"})
        for _ in range(4):
            with contextlib.suppress(observable_session.RequestsApiError):
                guarded.get("/down/{job_id}", path_params={"job_id": "7"})
        session.wait("/jobs/{job_id}", path_params={"job_id": "7"}, until=lambda r: True)
        text = generate_latest(registry).decode()
    finally:
        session.close()
        guarded.close()
        provider.shutdown()
        server.shutdown()
        server.server_close()
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


@pytest.mark.parametrize("metric", sorted(generate.METRICS.values()))
def test_metric_table_matches_what_the_library_exports(
    exported: dict[str, set[str]], metric: str
) -> None:
    """Each name in generate.METRICS is a metric the library exports, as Prometheus names it."""
    assert metric in exported or f"{metric}_count" in exported, sorted(exported)


@pytest.mark.parametrize("label", sorted(generate.LABELS.values()))
def test_label_table_matches_what_the_library_exports(
    exported: dict[str, set[str]], label: str
) -> None:
    """Each name in generate.LABELS is a label on at least one exported metric."""
    assert any(label in labels for labels in exported.values())


@pytest.mark.parametrize(("panel", "expr"), QUERIES, ids=QUERY_IDS)
def test_query_uses_only_exported_metrics(
    exported: dict[str, set[str]], panel: str, expr: str
) -> None:
    """Every metric name in the panel's query is one the library exports."""
    names = metric_names(expr)
    assert names, f"no metric found in {expr}"
    assert names <= set(exported), f"{panel}: {sorted(names - set(exported))}"


@pytest.mark.parametrize(("panel", "expr"), QUERIES, ids=QUERY_IDS)
def test_query_matches_only_labels_its_metric_has(
    exported: dict[str, set[str]], panel: str, expr: str
) -> None:
    """Each label matcher names a label the selected metric really carries."""
    for metric, labels in selector_labels(expr).items():
        missing = labels - exported.get(metric, set()) - SCRAPE_LABELS
        assert not missing, f"{panel}: {metric} has no {sorted(missing)}"


@pytest.mark.parametrize(("panel", "expr"), QUERIES, ids=QUERY_IDS)
def test_query_groups_only_by_exported_labels(
    exported: dict[str, set[str]], panel: str, expr: str
) -> None:
    """Each by(...) label is carried by every metric of the query."""
    for label in grouping_labels(expr) - SCRAPE_LABELS:
        for metric in metric_names(expr):
            assert label in exported[metric], f"{panel}: {metric} has no {label}"


# -- the JSON itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(generate.DASHBOARDS))
def test_json_is_what_the_generator_writes(name: str) -> None:
    """The committed JSON is byte for byte what dashboards/generate.py produces."""
    expected = generate.render(generate.DASHBOARDS[name]())
    assert (DASHBOARD_DIR / name).read_text(encoding="utf-8") == expected, (
        "stale dashboard: run python dashboards/generate.py"
    )


def test_every_json_file_has_a_generator() -> None:
    """No hand-written JSON hides next to the generated ones."""
    assert {p.name for p in DASHBOARD_DIR.glob("*.json")} == set(generate.DASHBOARDS)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_schema_version_is_grafanas_latest(name: str) -> None:
    """Dashboards use Grafana's current classic schemaVersion (42)."""
    assert DASHBOARDS[name]["schemaVersion"] == 42


def test_uid_is_stable() -> None:
    """The client dashboard keeps its uid, so links and bookmarks survive regeneration."""
    assert DASHBOARDS["observable-session-client.json"]["uid"] == "observable-session-client"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_uid_is_a_valid_grafana_uid(name: str) -> None:
    """The uid fits Grafana's limit of 40 URL-safe characters."""
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", DASHBOARDS[name]["uid"])


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=[p["title"] for _, p in PANELS])
def test_panel_has_a_description(name: str, panel: dict[str, Any]) -> None:
    """Every panel says what it shows and how to read it."""
    assert len(panel.get("description", "")) > 40


def _datasource_refs(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                yield value
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_no_datasource_uid_is_hard_coded(name: str) -> None:
    """Every datasource reference is a dashboard variable (or Grafana's built-in one)."""
    for ref in _datasource_refs(DASHBOARDS[name]):
        assert ref["uid"] in {"${datasource}", "${loki_datasource}", "-- Grafana --"}, ref


@pytest.mark.parametrize(("panel", "expr"), QUERIES, ids=QUERY_IDS)
def test_range_windows_follow_grafana(panel: str, expr: str) -> None:
    """Every range window is $__rate_interval (or $__range for whole-range totals)."""
    windows = re.findall(r"\[([^\]]*)\]", expr)
    assert set(windows) <= {"$__rate_interval", "$__range"}, f"{panel}: {windows}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_required_variables_exist(name: str) -> None:
    """Datasource, job, server_address, url_template and http_request_method are variables."""
    names = {v["name"] for v in DASHBOARDS[name]["templating"]["list"]}
    assert {"datasource", "job", "server_address", "url_template", "http_request_method"} <= names


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_variable_used_is_defined(name: str) -> None:
    """No query refers to a variable the dashboard does not define."""
    dashboard = DASHBOARDS[name]
    defined = {v["name"] for v in dashboard["templating"]["list"]} | BUILTIN_VARIABLES
    text = json.dumps([p.get("targets", []) for p in generate.iter_panels(dashboard)])
    text += json.dumps(dashboard["templating"]["list"])
    used = set(re.findall(r"\$\{?(\w+)", text))
    assert used <= defined, sorted(used - defined)


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=[p["title"] for _, p in PANELS])
def test_latency_panels_carry_exemplars(name: str, panel: dict[str, Any]) -> None:
    """Time series of histogram quantiles ask Prometheus for exemplars (links to Tempo)."""
    if panel["type"] != "timeseries":
        return
    for target in panel["targets"]:
        if "histogram_quantile" in target["expr"]:
            assert target["exemplar"] is True


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panel_ids_are_unique(name: str) -> None:
    """Grafana needs one id per panel."""
    ids = [p["id"] for p in generate.iter_panels(DASHBOARDS[name])]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=[p["title"] for _, p in PANELS])
def test_panel_fits_the_grid(name: str, panel: dict[str, Any]) -> None:
    """Panels stay inside Grafana's 24-column grid."""
    grid = panel["gridPos"]
    assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24


# -- what the issue asks the client dashboard to show ---------------------------------------

_CLIENT = DASHBOARDS["observable-session-client.json"]
_CLIENT_EXPRS = [expr for _, expr in generate.prometheus_queries(_CLIENT)]
_LOGICAL = "observable_session_request_duration_seconds"
_ATTEMPT = "http_client_request_duration_seconds"
REQUIRED = {
    "logical requests per second": rf"^sum by \(server_address\) \(rate\({_LOGICAL}_count",
    "error ratio": r'error_type!=""',
    "logical latency quantiles": rf"histogram_quantile\(0\.99, .*{_LOGICAL}_bucket",
    "attempt latency quantiles": rf"histogram_quantile\(0\.99, .*{_ATTEMPT}_bucket",
    "attempts by status code": rf"by \([^)]*http_response_status_code[^)]*\) \(rate\({_ATTEMPT}_",
    "attempts by error_type": rf"by \(error_type\) \(rate\({_ATTEMPT}_count",
    "retries by reason": r"by \(observable_session_retry_reason\) \(rate\(observable_session_retr",
    "retry amplification": rf"{_ATTEMPT}_count.*\) / sum by .*{_LOGICAL}_count",
    "time in backoff": r"rate\(observable_session_retry_backoff_seconds_sum",
    "failed after exhausting retries": (
        rf'{_LOGICAL}_count\{{[^}}]*observable_session_retries_exhausted="true"'
    ),
    "active requests": r"http_client_active_requests\{",
    "retries denied by reason": (
        r"by \(server_address, observable_session_retry_denied_by\) \(rate\("
        r"observable_session_retry_denied_total"
    ),
    "breaker state per upstream": (
        r"max by \(server_address\) \(observable_session_circuit_breaker_state\{"
    ),
    "breaker transitions": r"circuit_breaker_from_state, .*circuit_breaker_to_state\) \(increase\(",
    "calls rejected by the breaker": r"rate\(observable_session_circuit_breaker_rejected_total",
    "wait time quantiles": (
        r"histogram_quantile\(0\.95, sum by \(le, url_template\) "
        r"\(rate\(observable_session_wait_duration_seconds_bucket"
    ),
    "waits by outcome": (
        r"by \(url_template, observable_session_wait_outcome\) "
        r"\(rate\(observable_session_wait_duration_seconds_count"
    ),
}


@pytest.mark.parametrize("what", sorted(REQUIRED))
def test_client_dashboard_shows(what: str) -> None:
    """The client dashboard has a query for each thing the issue lists."""
    assert any(re.search(REQUIRED[what], expr) for expr in _CLIENT_EXPRS)


def test_client_dashboard_has_an_endpoint_table() -> None:
    """A table ranks url_templates per upstream by latency and failures."""
    tables = [p for p in generate.iter_panels(_CLIENT) if p["type"] == "table"]
    exprs = " ".join(t["expr"] for p in tables for t in p["targets"])
    assert "by (server_address, url_template" in exprs and "histogram_quantile" in exprs


def test_client_dashboard_has_a_loki_logs_panel() -> None:
    """A logs panel queries Loki for the selected services."""
    logs = [p for p in generate.iter_panels(_CLIENT) if p["type"] == "logs"]
    assert logs and logs[0]["targets"][0]["datasource"]["type"] == "loki"
    assert "$job" in logs[0]["targets"][0]["expr"]


# -- the PromQL helpers above, on known input ------------------------------------------------


def test_metric_names_skips_functions_labels_and_strings() -> None:
    """metric_names() finds the metrics and nothing else."""
    expr = (
        'label_replace(sum by (le, a) (rate(x_bucket{b=~"$c", d="e"}[5m])), "f", "g", "h", "")'
        " / on (a) group_left y_total * 2"
    )
    assert metric_names(expr) == {"x_bucket", "y_total"}
