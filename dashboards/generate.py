"""Build the Grafana dashboards in this folder, and check them against a live Prometheus.

The JSON files next to this script are what Grafana loads (the compose stack mounts this
folder); this script is where they come from. ``tests/test_dashboards.py`` fails when they
drift apart, so edit the panels here and regenerate::

    python dashboards/generate.py            # rewrite the JSON files
    python dashboards/generate.py --check    # exit 1 if a JSON file is stale
    python dashboards/generate.py --query http://127.0.0.1:9090
                                             # run every panel query against a Prometheus

Every Prometheus name the dashboards use is in :data:`METRICS` and :data:`LABELS`, spelled as
Prometheus sees the library's OpenTelemetry instruments after the exporter's name translation
(``http.client.request.duration``, unit ``s`` -> ``http_client_request_duration_seconds``).
The tests check both tables against a real scrape of a real :class:`observable_session.Session`.

Standard library only, so that it runs anywhere Python does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: Grafana's latest classic dashboard schema version (``LATEST_VERSION`` in
#: ``apps/dashboard/pkg/migration/schemaversion/migrations.go``, the last one of the v1 API).
SCHEMA_VERSION = 42

#: Prometheus metric names (without ``_bucket``/``_sum``/``_count``/``_total`` for histograms).
METRICS: dict[str, str] = {
    # http.client.request.duration: histogram, s, one point per attempt
    "attempt_duration": "http_client_request_duration_seconds",
    # http.client.active_requests: up-down counter, {request}
    "active_requests": "http_client_active_requests",
    # observable_session.request.duration: histogram, s, one point per logical request
    "request_duration": "observable_session_request_duration_seconds",
    # observable_session.retries: counter, {retry}
    "retries": "observable_session_retries_total",
    # observable_session.retry.backoff: histogram, s
    "retry_backoff": "observable_session_retry_backoff_seconds",
    # observable_session.retry.denied: counter, {retry}
    "retries_denied": "observable_session_retry_denied_total",
    # observable_session.circuit_breaker.state: gauge, 0 closed / 1 half-open / 2 open
    "breaker_state": "observable_session_circuit_breaker_state",
    # observable_session.circuit_breaker.transitions: counter, {transition}
    "breaker_transitions": "observable_session_circuit_breaker_transitions_total",
    # observable_session.circuit_breaker.rejected: counter, {request}
    "breaker_rejected": "observable_session_circuit_breaker_rejected_total",
    # observable_session.wait.duration: histogram, s, one point per Session.wait
    "wait_duration": "observable_session_wait_duration_seconds",
    # observable_session.wait.polls: histogram, {poll}, one point per Session.wait
    "wait_polls": "observable_session_wait_polls",
}

#: Prometheus label names of the attributes the dashboards filter or group by.
LABELS: dict[str, str] = {
    "method": "http_request_method",
    "server": "server_address",
    "template": "url_template",
    "status": "http_response_status_code",
    "error": "error_type",
    "reason": "observable_session_retry_reason",
    "exhausted": "observable_session_retries_exhausted",
    "denied_by": "observable_session_retry_denied_by",
    "from_state": "observable_session_circuit_breaker_from_state",
    "to_state": "observable_session_circuit_breaker_to_state",
    "outcome": "observable_session_wait_outcome",
}

_ATTEMPTS = METRICS["attempt_duration"]
_LOGICAL = METRICS["request_duration"]
_BACKOFF = METRICS["retry_backoff"]
_RETRIES = METRICS["retries"]
_ACTIVE = METRICS["active_requests"]
_DENIED = METRICS["retries_denied"]
_BREAKER_STATE = METRICS["breaker_state"]
_TRANSITIONS = METRICS["breaker_transitions"]
_REJECTED = METRICS["breaker_rejected"]
_WAIT = METRICS["wait_duration"]

#: The label matchers every panel query applies: the dashboard's variables.
SELECTOR = (
    'job=~"$job", server_address=~"$server_address", '
    'url_template=~"$url_template", http_request_method=~"$http_request_method"'
)

PROMETHEUS = {"type": "prometheus", "uid": "${datasource}"}
LOKI = {"type": "loki", "uid": "${loki_datasource}"}
RATE = "$__rate_interval"
FAILED = 'error_type!=""'
EXHAUSTED = 'observable_session_retries_exhausted="true"'


#: The breaker's gauge and transitions are per server, not per route or method.
SERVER_SELECTOR = 'job=~"$job", server_address=~"$server_address"'


def _server_sel(*extra: str) -> str:
    return "{" + ", ".join((SERVER_SELECTOR, *extra)) + "}"


def _sel(*extra: str) -> str:
    return "{" + ", ".join((SELECTOR, *extra)) + "}"


def _rate(metric: str, *extra: str, window: str = RATE) -> str:
    return f"rate({metric}{_sel(*extra)}[{window}])"


def _quantile(q: str, histogram: str, by: str = "le", window: str = RATE) -> str:
    return f"histogram_quantile({q}, sum by ({by}) ({_rate(histogram + '_bucket', window=window)}))"


# Wait metrics carry only url_template and the outcome: filter them by job and route alone.
WAIT_SELECTOR = '{job=~"$job", url_template=~"$url_template"}'


def _wait_panels(y: int) -> list[dict[str, Any]]:
    """p50/p95 of Session.wait per route, and waits ending per outcome per route."""
    rate = f"rate({_WAIT}_bucket{WAIT_SELECTOR}[{RATE}])"
    quantiles = [
        _target(
            f"histogram_quantile({q}, sum by (le, url_template) ({rate}))",
            f"p{q[2:]} {{{{url_template}}}}",
            ref,
            exemplar=True,
        )
        for q, ref in (("0.50", "A"), ("0.95", "B"))
    ]
    outcomes = _target(
        f"sum by (url_template, observable_session_wait_outcome) "
        f"(rate({_WAIT}_count{WAIT_SELECTOR}[{RATE}]))",
        "{{url_template}} {{observable_session_wait_outcome}}",
    )
    return [
        _timeseries(
            "Wait time p50/p95 per route",
            "How long Session.wait takes from the first poll to the end, every poll and "
            "pause included (observable_session.wait.duration), per polled url_template.",
            quantiles,
            "s",
            (0, y, 12, 8),
        ),
        _timeseries(
            "Waits/s by outcome per route",
            "Waits ending per second per url_template and outcome: done (until matched), "
            "failed (fail_when matched), timeout (the deadline ran out), error (a poll failed).",
            [outcomes],
            "reqps",
            (12, y, 12, 8),
            stack=True,
        ),
    ]


def _error_ratio(by: str, window: str = RATE) -> str:
    count = _LOGICAL + "_count"
    failed = f"sum by ({by}) ({_rate(count, FAILED, window=window)})"
    total = f"sum by ({by}) ({_rate(count, window=window)})"
    # `or ... * 0` keeps a series at 0 for upstreams that had no failure at all.
    return f"({failed} or {total} * 0) / {total}"


def _amplification(by: str, window: str = RATE) -> str:
    attempts = f"sum by ({by}) ({_rate(_ATTEMPTS + '_count', window=window)})"
    logical = f"sum by ({by}) ({_rate(_LOGICAL + '_count', window=window)})"
    return f"{attempts} / {logical}"


# -- panel builders ----------------------------------------------------------------------


def _target(
    expr: str,
    legend: str = "__auto",
    ref: str = "A",
    *,
    exemplar: bool = False,
    instant: bool = False,
) -> dict[str, Any]:
    return {
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "exemplar": exemplar,
        "expr": expr,
        "format": "table" if instant else "time_series",
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
        "refId": ref,
    }


def _timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str,
    grid: tuple[int, int, int, int],
    *,
    stack: bool = False,
    max_value: float | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "color": {"mode": "palette-classic"},
        "custom": {
            "drawStyle": "line",
            "fillOpacity": 20 if stack else 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        },
        "min": 0,
        "unit": unit,
    }
    if max_value is not None:
        defaults["max"] = max_value
    return {
        "datasource": PROMETHEUS,
        "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": _grid(grid),
        "options": {
            "legend": {"calcs": ["mean", "max"], "displayMode": "table", "placement": "bottom"},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets,
        "title": title,
        "type": "timeseries",
    }


def _stat(
    title: str,
    description: str,
    target: dict[str, Any],
    unit: str,
    grid: tuple[int, int, int, int],
    thresholds: list[tuple[str, float | None]],
) -> dict[str, Any]:
    return {
        "datasource": PROMETHEUS,
        "description": description,
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "thresholds"},
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": color, "value": value} for color, value in thresholds],
                },
                "unit": unit,
            },
            "overrides": [],
        },
        "gridPos": _grid(grid),
        "options": {
            "colorMode": "background",
            "graphMode": "area",
            "justifyMode": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        },
        "targets": [target],
        "title": title,
        "type": "stat",
    }


def _row(title: str, y: int) -> dict[str, Any]:
    return {
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
        "panels": [],
        "title": title,
        "type": "row",
    }


def _grid(grid: tuple[int, int, int, int]) -> dict[str, int]:
    x, y, w, h = grid
    return {"h": h, "w": w, "x": x, "y": y}


def _column(name: str, unit: str, decimals: int | None = None) -> dict[str, Any]:
    properties: list[dict[str, Any]] = [{"id": "unit", "value": unit}]
    if decimals is not None:
        properties.append({"id": "decimals", "value": decimals})
    return {"matcher": {"id": "byName", "options": name}, "properties": properties}


# -- the dashboard -----------------------------------------------------------------------


def _latency_targets(histogram: str) -> list[dict[str, Any]]:
    return [
        _target(_quantile(q, histogram), f"p{q[2:]}", ref, exemplar=True)
        for q, ref in (("0.50", "A"), ("0.95", "B"), ("0.99", "C"))
    ]


def _endpoint_table(y: int) -> dict[str, Any]:
    by = "server_address, url_template"
    window = "$__range"
    count = _LOGICAL + "_count"
    targets = [
        _target(f"sum by ({by}) ({_rate(count, window=window)})", ref="A", instant=True),
        _target(_error_ratio(by, window), ref="B", instant=True),
        _target(
            f"sum by ({by}) (increase({count}{_sel(EXHAUSTED)}[{window}]))",
            ref="C",
            instant=True,
        ),
        _target(_quantile("0.95", _LOGICAL, f"{by}, le", window), ref="D", instant=True),
        _target(_amplification(by, window), ref="E", instant=True),
    ]
    names = {
        "Value #A": "Requests/s",
        "Value #B": "Error ratio",
        "Value #C": "Exhausted retries",
        "Value #D": "p95 latency",
        "Value #E": "Attempts per request",
        "server_address": "Upstream",
        "url_template": "url_template",
    }
    return {
        "datasource": PROMETHEUS,
        "description": (
            "Every url_template per upstream over the whole time range: logical request "
            "rate, share of logical requests that failed, requests that failed after "
            "exhausting their retries, p95 logical latency (all attempts and backoff "
            "included) and attempts per logical request. Sorted by error ratio; click a "
            "header to sort by latency instead. Empty url_template: calls made without a "
            "template."
        ),
        "fieldConfig": {
            "defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}}},
            "overrides": [
                _column("Requests/s", "reqps", 2),
                {
                    **_column("Error ratio", "percentunit", 1),
                    "properties": [
                        {"id": "unit", "value": "percentunit"},
                        {"id": "decimals", "value": 1},
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        {
                            "id": "thresholds",
                            "value": {
                                "mode": "absolute",
                                "steps": [
                                    {"color": "green", "value": None},
                                    {"color": "orange", "value": 0.01},
                                    {"color": "red", "value": 0.05},
                                ],
                            },
                        },
                    ],
                },
                _column("Exhausted retries", "short", 0),
                _column("p95 latency", "s", 3),
                _column("Attempts per request", "short", 2),
            ],
        },
        "gridPos": _grid((0, y, 24, 10)),
        "options": {
            "cellHeight": "sm",
            "footer": {"show": False},
            "showHeader": True,
            "sortBy": [{"desc": True, "displayName": "Error ratio"}],
        },
        "targets": targets,
        "title": "Slowest and most failing url_templates per upstream",
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "indexByName": {
                        "server_address": 0,
                        "url_template": 1,
                        "Value #A": 2,
                        "Value #B": 3,
                        "Value #C": 4,
                        "Value #D": 5,
                        "Value #E": 6,
                    },
                    "renameByName": names,
                },
            },
        ],
        "type": "table",
    }


def _logs_panel(y: int) -> dict[str, Any]:
    return {
        "datasource": LOKI,
        "description": (
            "The library's structlog events (observable_session.attempt.failed, "
            "observable_session.retry.scheduled, observable_session.retries.exhausted, ...) "
            "for the selected services, as shipped to Loki through the OpenTelemetry "
            "Collector. Loki's service_name label is the OpenTelemetry service.name, which "
            "is also Prometheus's job label when metrics go through the collector. Each "
            "line carries trace_id and span_id: expand it to jump to the trace in Tempo."
        ),
        "gridPos": _grid((0, y, 24, 12)),
        "options": {
            "dedupStrategy": "none",
            "enableLogDetails": True,
            "prettifyLogMessage": False,
            "showTime": True,
            "sortOrder": "Descending",
            "wrapLogMessage": True,
        },
        "targets": [
            {
                "datasource": LOKI,
                "editorMode": "code",
                "expr": '{service_name=~"$job"} |~ "observable_session"',
                "queryType": "range",
                "refId": "A",
            }
        ],
        "title": "Client logs (Loki)",
        "type": "logs",
    }


def _overload_panels(y: int) -> list[dict[str, Any]]:
    """Retry budget and circuit breaker: what the client holds back from a failing upstream."""
    return [
        _row("Overload protection: retry budget and circuit breaker", y),
        _timeseries(
            "Retries denied/s by reason",
            "Retries the retry policy wanted but did not make, per upstream and reason: "
            '"budget" (the retry budget, gRPC A6: retries stop while the tokens are at or '
            'below half), "circuit_open" (the circuit breaker is open), "retry_after" '
            '(Retry-After above retry_after_max with retry_after_exceeded="raise"). '
            "Sustained denials mean the upstream is failing and the client is protecting it.",
            [
                _target(
                    f"sum by (server_address, {LABELS['denied_by']}) ({_rate(_DENIED)})",
                    "{{server_address}} {{" + LABELS["denied_by"] + "}}",
                )
            ],
            "reqps",
            (0, y + 1, 6, 8),
            stack=True,
        ),
        _timeseries(
            "Circuit breaker state by upstream",
            "Worst circuit breaker state per upstream across the selected services: "
            "0 closed (calls flow), 1 half-open (one probe), 2 open (calls fail at once "
            "with CircuitOpenError, nothing is sent).",
            [
                _target(
                    f"max by (server_address) ({_BREAKER_STATE}{_server_sel()})",
                    "{{server_address}}",
                )
            ],
            "short",
            (6, y + 1, 6, 8),
            max_value=2,
        ),
        _timeseries(
            "Circuit breaker transitions",
            "State changes per upstream (closed -> open, open -> half_open, half_open -> "
            "closed or open) in each interval. Flapping between open and half_open means "
            "the probes keep failing.",
            [
                _target(
                    f"sum by (server_address, {LABELS['from_state']}, {LABELS['to_state']}) "
                    f"(increase({_TRANSITIONS}{_server_sel()}[{RATE}]))",
                    "{{server_address}} {{"
                    + LABELS["from_state"]
                    + "}} -> {{"
                    + LABELS["to_state"]
                    + "}}",
                )
            ],
            "short",
            (12, y + 1, 6, 8),
        ),
        _timeseries(
            "Calls rejected by an open breaker/s",
            "Logical requests that failed at once with CircuitOpenError because the "
            "upstream's circuit was open: load the upstream was spared. They also count "
            'in the error ratio (error_type="observable_session.errors.CircuitOpenError").',
            [
                _target(
                    f"sum by (server_address, url_template) ({_rate(_REJECTED)})",
                    "{{server_address}} {{url_template}}",
                )
            ],
            "reqps",
            (18, y + 1, 6, 8),
            stack=True,
        ),
    ]


def _panels() -> list[dict[str, Any]]:
    count = _LOGICAL + "_count"
    exhausted = EXHAUSTED
    panels: list[dict[str, Any]] = [
        _row("Logical requests: what the caller sees", 0),
        _stat(
            "Logical requests/s",
            "Logical requests per second (one per Session call, however many attempts "
            "it took), for the selected upstreams and url_templates.",
            _target(f"sum({_rate(count)})"),
            "reqps",
            (0, 1, 6, 4),
            [("blue", None)],
        ),
        _stat(
            "Error ratio",
            "Share of logical requests that ended in an error (HTTP 4xx/5xx after retries, "
            "or an exception such as a connection error or a timeout).",
            _target(_error_ratio("job")),
            "percentunit",
            (6, 1, 6, 4),
            [("green", None), ("orange", 0.01), ("red", 0.05)],
        ),
        _stat(
            "Retry amplification",
            "Attempts per logical request: 1.0 means no retries. Above 1 the upstream "
            "receives more traffic than the caller sends; watch it during an incident, "
            "since retries add load to a struggling upstream.",
            _target(_amplification("job")),
            "short",
            (12, 1, 6, 4),
            [("green", None), ("orange", 1.2), ("red", 2)],
        ),
        _stat(
            "Failed after exhausting retries",
            "Logical requests that failed after all their retries were spent, over the "
            'whole time range (observable_session_retries_exhausted="true"). These are '
            "the failures the caller actually saw despite retrying.",
            _target(f"sum(increase({count}{_sel(exhausted)}[$__range]))"),
            "short",
            (18, 1, 6, 4),
            [("green", None), ("red", 1)],
        ),
        _timeseries(
            "Logical requests/s by upstream",
            "Logical requests per second per upstream (server_address). A logical request "
            "is one Session call; its retries are not counted again here.",
            [_target(f"sum by (server_address) ({_rate(count)})", "{{server_address}}")],
            "reqps",
            (0, 5, 8, 8),
        ),
        _timeseries(
            "Error ratio by upstream",
            "Share of logical requests per upstream that ended in an error after retries "
            "(error_type set: the status code for HTTP errors, else the exception type).",
            [_target(_error_ratio("server_address"), "{{server_address}}")],
            "percentunit",
            (8, 5, 8, 8),
            max_value=1,
        ),
        _timeseries(
            "Failed after exhausting retries by url_template",
            "Logical requests per second that failed after every retry was spent, per "
            "upstream and url_template. Non-zero means retries no longer hide the fault.",
            [
                _target(
                    f"sum by (server_address, url_template) ({_rate(count, exhausted)})",
                    "{{server_address}} {{url_template}}",
                )
            ],
            "reqps",
            (16, 5, 8, 8),
        ),
        _timeseries(
            "Logical latency p50 / p95 / p99",
            "Latency of logical requests as the caller sees it: every attempt and every "
            "backoff sleep included. Exemplars (dots) link to the trace in Tempo.",
            _latency_targets(_LOGICAL),
            "s",
            (0, 13, 12, 8),
        ),
        _timeseries(
            "Attempt latency p50 / p95 / p99",
            "Latency of single HTTP attempts (http.client.request.duration), which is what "
            "the upstream itself delivers. A gap to the logical latency is time spent in "
            "retries and backoff. Exemplars (dots) link to the trace in Tempo.",
            _latency_targets(_ATTEMPTS),
            "s",
            (12, 13, 12, 8),
        ),
        _row("Attempts, retries and backoff: what the upstream sees", 21),
        _timeseries(
            "Attempts/s by status code",
            "HTTP attempts per second per upstream and response status code; 'none' is an "
            "attempt that got no response (connection refused, reset, timeout).",
            [
                _target(
                    "label_replace(sum by (server_address, http_response_status_code) ("
                    f'{_rate(_ATTEMPTS + "_count")}), "http_response_status_code", "none", '
                    '"http_response_status_code", "")',
                    "{{server_address}} {{http_response_status_code}}",
                )
            ],
            "reqps",
            (0, 22, 8, 8),
            stack=True,
        ),
        _timeseries(
            "Failed attempts/s by error_type",
            "Failed attempts per second by error_type: the status code for HTTP errors "
            '("503"), else the exception type ("requests.exceptions.ConnectionError", '
            '"requests.exceptions.ReadTimeout", ...).',
            [
                _target(
                    f"sum by (error_type) ({_rate(_ATTEMPTS + '_count', FAILED)})",
                    "{{error_type}}",
                )
            ],
            "reqps",
            (8, 22, 8, 8),
            stack=True,
        ),
        _timeseries(
            "Retries/s by reason",
            "Retries scheduled per second by reason: the status code that triggered them "
            '("503", "429") or the error type of the failed attempt.',
            [
                _target(
                    f"sum by (observable_session_retry_reason) ({_rate(_RETRIES)})",
                    "{{observable_session_retry_reason}}",
                )
            ],
            "reqps",
            (16, 22, 8, 8),
            stack=True,
        ),
        _timeseries(
            "Retry amplification by upstream",
            "Attempts per logical request per upstream (attempts/s divided by logical "
            "requests/s). 1.0 means no retries; 3.0 means every call needed three tries.",
            [_target(_amplification("server_address"), "{{server_address}}")],
            "short",
            (0, 30, 8, 8),
        ),
        _timeseries(
            "Time spent in backoff",
            "Seconds of backoff sleep per second of wall time, per upstream (sum of "
            "observable_session.retry.backoff): 0.5 means that, on average, half a caller "
            "thread is asleep waiting to retry. Retry-After waits are included.",
            [
                _target(
                    f"sum by (server_address) ({_rate(_BACKOFF + '_sum')})",
                    "{{server_address}}",
                )
            ],
            "s",
            (8, 30, 8, 8),
        ),
        _timeseries(
            "Share of request time spent in backoff",
            "Backoff seconds divided by logical-request seconds, per upstream: how much of "
            "the latency callers see is deliberate waiting rather than the upstream.",
            [
                _target(
                    f"sum by (server_address) ({_rate(_BACKOFF + '_sum')}) / "
                    f"sum by (server_address) ({_rate(_LOGICAL + '_sum')})",
                    "{{server_address}}",
                )
            ],
            "percentunit",
            (16, 30, 8, 8),
            max_value=1,
        ),
        _timeseries(
            "Active requests",
            "HTTP attempts in flight right now, per upstream (http.client.active_requests). "
            "A plateau at the connection-pool size means callers are queueing.",
            [_target(f"sum by (server_address) ({_ACTIVE}{_sel()})", "{{server_address}}")],
            "short",
            (0, 38, 24, 7),
        ),
        _row("Waits", 45),
        *_wait_panels(46),
        *_overload_panels(54),
        _row("Endpoints", 63),
        _endpoint_table(64),
        _row("Logs", 74),
        _logs_panel(75),
    ]
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return panels


def _query_variable(name: str, label: str, description: str, query: str) -> dict[str, Any]:
    return {
        "allValue": ".+" if name == "job" else ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": PROMETHEUS,
        "definition": query,
        "description": description,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": {
            "qryType": 1,
            "query": query,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


def _variables() -> list[dict[str, Any]]:
    count = _LOGICAL + "_count"
    return [
        {
            "current": {},
            "description": "Prometheus holding the library's metrics.",
            "label": "Prometheus",
            "name": "datasource",
            "options": [],
            "query": "prometheus",
            "refresh": 1,
            "regex": "",
            "type": "datasource",
        },
        {
            "current": {},
            "description": "Loki holding the library's logs.",
            "label": "Loki",
            "name": "loki_datasource",
            "options": [],
            "query": "loki",
            "refresh": 1,
            "regex": "",
            "type": "datasource",
        },
        _query_variable(
            "job",
            "Service (job)",
            "Prometheus job: the OpenTelemetry service.name when metrics come through the "
            "collector (Loki's service_name).",
            f"label_values({count}, job)",
        ),
        _query_variable(
            "server_address",
            "Upstream",
            "server.address of the upstream API.",
            f'label_values({count}{{job=~"$job"}}, server_address)',
        ),
        _query_variable(
            "url_template",
            "url_template",
            "url.template of the call, e.g. /jobs/{job_id}.",
            f'label_values({count}{{job=~"$job", server_address=~"$server_address"}}, '
            "url_template)",
        ),
        _query_variable(
            "http_request_method",
            "Method",
            "http.request.method of the call.",
            f'label_values({count}{{job=~"$job", server_address=~"$server_address"}}, '
            "http_request_method)",
        ),
    ]


def build_client_dashboard() -> dict[str, Any]:
    """The dashboard an on-call engineer opens when an upstream API misbehaves."""
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": (
            "Client-side view of upstream HTTP APIs called through observable_session: "
            "logical requests, attempts, retries, backoff and exhausted retries, with "
            "exemplars to Tempo and logs from Loki."
        ),
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": _panels(),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["observable-session", "http-client", "retries", "opentelemetry"],
        "templating": {"list": _variables()},
        "time": {"from": "now-30m", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": "observable-session: upstream APIs (client side)",
        "uid": "observable-session-client",
        "version": 1,
        "weekStart": "",
    }


#: File name in this folder -> builder.
DASHBOARDS = {"observable-session-client.json": build_client_dashboard}


def render(dashboard: dict[str, Any]) -> str:
    """The exact text written to disk: sorted keys, two-space indent, final newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# -- reading dashboards back: used by the tests and by --query ------------------------------


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def prometheus_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(panel title, expr)`` for every Prometheus target of every panel."""
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            datasource = target.get("datasource") or panel.get("datasource") or {}
            if datasource.get("type") == "prometheus":
                yield panel["title"], target["expr"]


def variable_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(variable name, label_values(...) query)`` for every Prometheus query variable."""
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["name"], variable["query"]["query"]


#: What the tests and --query put in for Grafana's variables.
DEFAULT_SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__range": "5m",
    "$__interval": "15s",
}


def substitute(expr: str, window: dict[str, str] | None = None) -> str:
    """``expr`` as Grafana would send it with every variable set to "All"."""
    for name, value in (window or DEFAULT_SUBSTITUTIONS).items():
        expr = expr.replace(name, value)
    expr = expr.replace('"$job"', '".+"')
    return re.sub(r"\$\{?[A-Za-z_]\w*\}?", ".*", expr)


def _promql_get(base_url: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    url = f"{base_url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def query(base_url: str, expr: str) -> list[dict[str, Any]]:
    """Run an instant query; raises on a PromQL error, returns the result vector."""
    body = _promql_get(base_url, "/api/v1/query", {"query": expr})
    if body.get("status") != "success":
        raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]["result"]  # type: ignore[no-any-return]


def label_values(base_url: str, variable_query: str) -> list[str]:
    """Evaluate a Grafana ``label_values(selector, label)`` variable query."""
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", substitute(variable_query))
    if match is None:
        raise ValueError(f"not a label_values() query: {variable_query}")
    selector, label = match.groups()
    body = _promql_get(base_url, f"/api/v1/label/{label}/values", {"match[]": selector})
    return body["data"]  # type: ignore[no-any-return]


def check_against(base_url: str) -> list[str]:
    """Every panel and variable query of every dashboard run against ``base_url``.

    Returns a line per query that failed or came back empty (an empty list: all good).
    """
    problems = []
    for name, builder in DASHBOARDS.items():
        dashboard = builder()
        for title, expr in prometheus_queries(dashboard):
            try:
                if not query(base_url, substitute(expr)):
                    problems.append(f"{name}: {title}: no data: {expr}")
            except Exception as exc:  # report every query, not just the first
                problems.append(f"{name}: {title}: {exc}: {expr}")
        for variable, variable_query in variable_queries(dashboard):
            if not label_values(base_url, variable_query):
                problems.append(f"{name}: variable {variable}: no values: {variable_query}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, check they are current (--check), or query a Prometheus."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a JSON file is stale")
    parser.add_argument("--query", metavar="PROMETHEUS_URL", help="run every panel query")
    args = parser.parse_args(argv)
    if args.query:
        problems = check_against(args.query)
        print("\n".join(problems) or "every panel and variable query returned data")
        return 1 if problems else 0
    stale = []
    for name, builder in DASHBOARDS.items():
        path, text = HERE / name, render(builder())
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run python dashboards/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
