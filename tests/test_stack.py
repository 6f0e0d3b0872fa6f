"""The compose stack: a valid compose file whose every mount exists and every config parses.

There is no Docker engine here, so nothing is started: Debian's ``docker-compose config``
validates the file when it is installed, ``promtool`` checks the Prometheus config, and the
rest are structural checks on the parsed YAML (ports on loopback, pinned images,
healthchecks, and the wiring between collector, Prometheus, Tempo, Loki and Grafana).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "stack"
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
CONFIG_FILES = sorted(
    [*STACK.rglob("*.yaml"), *STACK.rglob("*.yml"), *(ROOT / "dashboards").glob("*.json")]
)
COLLECTOR = yaml.safe_load((STACK / "otel-collector.yaml").read_text())
PROMETHEUS = yaml.safe_load((STACK / "prometheus.yaml").read_text())
DATASOURCES = {
    ds["name"]: ds
    for ds in yaml.safe_load(
        (STACK / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text()
    )["datasources"]
}


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount."""
    pairs = []
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        if host.startswith("."):
            pairs.append((host, container))
    return pairs


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _has_compose_plugin() -> bool:
    """Whether ``docker compose`` is a command (Docker's CLI can lack the compose plugin)."""
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
    )
    return probe.returncode == 0


def test_docker_compose_accepts_the_file() -> None:
    """docker-compose (Debian's v1, or the v2 plugin) validates and resolves the file."""
    if shutil.which("docker-compose"):
        command = ["docker-compose", "-f", "docker-compose.yml", "config", "-q"]
    elif shutil.which("docker") and _has_compose_plugin():
        command = ["docker", "compose", "-f", "docker-compose.yml", "config", "-q"]
    elif os.environ.get("CI"):
        pytest.fail("CI: neither docker-compose nor docker's compose plugin is installed")
    elif shutil.which("docker"):
        pytest.skip("docker is installed without its compose plugin (`docker compose` fails)")
    else:
        pytest.skip("neither docker-compose nor docker is installed")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_stack_has_every_service() -> None:
    """Collector, Prometheus, Tempo, Loki, Grafana and the demo are all there."""
    assert set(SERVICES) == {"collector", "prometheus", "tempo", "loki", "grafana", "demo"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_is_pinned(name: str) -> None:
    """Pulled images carry an exact version tag; only the built demo image is local."""
    service = SERVICES[name]
    if "build" in service:
        assert service["image"].endswith(":local")
        return
    assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", service["image"]), service["image"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_ports_are_bound_to_loopback(name: str) -> None:
    """Every published port listens on 127.0.0.1 only."""
    for port in SERVICES[name].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), port


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_a_healthcheck(name: str) -> None:
    """Every service says how to tell it is healthy, in exec form."""
    test = SERVICES[name]["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_mounted_files_exist(name: str) -> None:
    """Every bind-mounted path exists in the repository."""
    for host, _ in _mounts(SERVICES[name]):
        assert (ROOT / host).exists(), host


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_mounts_are_read_only(name: str) -> None:
    """Containers cannot write into the repository."""
    for volume in SERVICES[name].get("volumes", []):
        if volume.startswith("."):
            assert volume.endswith(":ro"), volume


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[str(p.relative_to(ROOT)) for p in CONFIG_FILES])
def test_config_parses(path: Path) -> None:
    """Every YAML and JSON config the stack mounts parses to a mapping."""
    text = path.read_text(encoding="utf-8")
    parsed = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    assert isinstance(parsed, dict)


def test_promtool_accepts_the_prometheus_config() -> None:
    """promtool (from Debian's prometheus package) checks the scrape config."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install -y prometheus)")
    result = subprocess.run(
        [promtool, "check", "config", str(STACK / "prometheus.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_collector_pipelines_use_defined_components() -> None:
    """Each pipeline's receivers, processors and exporters are defined; extensions too."""
    service = COLLECTOR["service"]
    assert set(service["extensions"]) <= set(COLLECTOR["extensions"])
    for pipeline in service["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(kind, [])) <= set(COLLECTOR[kind]), (kind, pipeline)


def test_collector_routes_each_signal() -> None:
    """Metrics go to the Prometheus exporter, traces to Tempo, logs to Loki."""
    pipelines = COLLECTOR["service"]["pipelines"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert pipelines["traces"]["exporters"] == ["otlp/tempo"]
    assert pipelines["logs"]["exporters"] == ["otlphttp/loki"]


def test_collector_exposes_exemplars_and_resource_labels() -> None:
    """OpenMetrics output (the only one with exemplars) and service_name etc. as labels."""
    exporter = COLLECTOR["exporters"]["prometheus"]
    assert exporter["enable_open_metrics"] is True
    assert exporter["resource_to_telemetry_conversion"]["enabled"] is True


def test_collector_sends_to_tempo_and_loki_services() -> None:
    """Exporters name compose services on the ports Tempo and Loki listen on."""
    tempo = yaml.safe_load((STACK / "tempo.yaml").read_text())
    loki = yaml.safe_load((STACK / "loki.yaml").read_text())
    tempo_grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert COLLECTOR["exporters"]["otlp/tempo"]["endpoint"] == f"tempo:{_port(tempo_grpc)}"
    loki_port = loki["server"]["http_listen_port"]
    assert COLLECTOR["exporters"]["otlphttp/loki"]["endpoint"] == f"http://loki:{loki_port}/otlp"


def test_loki_accepts_otlp() -> None:
    """OTLP ingestion needs tsdb with schema v13 and structured metadata."""
    loki = yaml.safe_load((STACK / "loki.yaml").read_text())
    schema = loki["schema_config"]["configs"][-1]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")
    assert loki["limits_config"]["allow_structured_metadata"] is True


def test_prometheus_scrapes_the_collector_exporter() -> None:
    """Prometheus scrapes the collector's exporter port and keeps the job it sets."""
    exporter_port = _port(COLLECTOR["exporters"]["prometheus"]["endpoint"])
    job = next(j for j in PROMETHEUS["scrape_configs"] if j["job_name"] == "otel-collector")
    assert job["static_configs"][0]["targets"] == [f"collector:{exporter_port}"]
    assert job["honor_labels"] is True


def test_prometheus_stores_exemplars() -> None:
    """Prometheus runs with exemplar storage, or the exemplar links would have nothing."""
    assert "--enable-feature=exemplar-storage" in SERVICES["prometheus"]["command"]


def test_grafana_rate_interval_floor_is_the_scrape_interval() -> None:
    """The Prometheus datasource's timeInterval equals the scrape interval."""
    interval = PROMETHEUS["global"]["scrape_interval"]
    assert DATASOURCES["Prometheus"]["jsonData"]["timeInterval"] == interval


def test_exemplars_link_to_tempo() -> None:
    """Prometheus exemplars' trace_id opens the trace in the Tempo datasource."""
    (link,) = DATASOURCES["Prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert link["name"] == "trace_id"
    assert link["datasourceUid"] == DATASOURCES["Tempo"]["uid"]


def test_traces_link_to_loki_logs() -> None:
    """A Tempo span opens its logs in Loki, matched by service and trace id."""
    logs = DATASOURCES["Tempo"]["jsonData"]["tracesToLogsV2"]
    assert logs["datasourceUid"] == DATASOURCES["Loki"]["uid"]
    assert logs["filterByTraceID"] is True
    assert {"key": "service.name", "value": "service_name"} in logs["tags"]


def test_trace_to_metrics_queries_use_the_library_metrics() -> None:
    """Tempo's span-to-metrics queries name metrics the dashboards use (checked by a scrape)."""
    dashboard = (ROOT / "dashboards" / "observable-session-client.json").read_text()
    for query in DATASOURCES["Tempo"]["jsonData"]["tracesToMetrics"]["queries"]:
        name = re.search(r"\b([a-z_]+)\{\$\$__tags\}", query["query"])
        assert name is not None and name.group(1) in dashboard, query


def test_logs_link_back_to_traces() -> None:
    """Loki's trace_id structured metadata links to the Tempo datasource."""
    (field,) = DATASOURCES["Loki"]["jsonData"]["derivedFields"]
    assert field["datasourceUid"] == DATASOURCES["Tempo"]["uid"]
    assert field["matcherType"] == "label" and field["matcherRegex"] == "trace_id"


def test_datasources_point_at_compose_services() -> None:
    """Each datasource URL names a service of the stack on its published port."""
    for datasource in DATASOURCES.values():
        match = re.fullmatch(r"http://(\w+):(\d+)", datasource["url"])
        assert match is not None, datasource["url"]
        host, port = match.groups()
        assert f"127.0.0.1:{port}:{port}" in SERVICES[host]["ports"]


def test_grafana_loads_the_dashboards_folder() -> None:
    """The dashboard provider reads the folder the repository's dashboards/ is mounted at."""
    providers = yaml.safe_load(
        (STACK / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml").read_text()
    )["providers"]
    mounts = dict(_mounts(SERVICES["grafana"]))
    assert [p["options"]["path"] for p in providers] == [mounts["./dashboards"]]


def test_grafana_home_is_the_client_dashboard() -> None:
    """Grafana opens on the client dashboard, which exists in dashboards/."""
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    mounts = {container: host for host, container in _mounts(SERVICES["grafana"])}
    folder, name = home.rsplit("/", 1)
    assert (ROOT / mounts[folder] / name).is_file()


def test_grafana_allows_anonymous_viewers() -> None:
    """A local stack needs no login to look, and anonymous users cannot edit."""
    environment = SERVICES["grafana"]["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_demo_runs_the_workload_against_the_collector() -> None:
    """The demo service runs the library's demo forever, exporting OTLP to the collector."""
    demo = SERVICES["demo"]
    http_port = _port(COLLECTOR["receivers"]["otlp"]["protocols"]["http"]["endpoint"])
    assert demo["command"] == [
        "python", "-m", "observable_session", "demo", "--forever",
        "--otlp", f"http://collector:{http_port}",
    ]  # fmt: skip
    assert demo["depends_on"]["collector"]["condition"] == "service_healthy"


def test_demo_image_installs_the_demo_extra() -> None:
    """The demo's Dockerfile installs this repository with the [demo] extra."""
    dockerfile = ROOT / SERVICES["demo"]["build"]["dockerfile"]
    assert SERVICES["demo"]["build"]["context"] == "."
    assert 'pip install ".[demo]"' in dockerfile.read_text()


def test_demo_build_sends_only_what_it_copies() -> None:
    """The Dockerfile's own ignore file keeps .venv and .git out of the build context."""
    dockerfile = ROOT / SERVICES["demo"]["build"]["dockerfile"]
    text = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text()
    ignore = [line for line in text.splitlines() if line and not line.startswith("#")]
    copied = re.findall(r"^COPY (.+) \S+$", dockerfile.read_text(), flags=re.MULTILINE)
    assert ignore[0] == "*"
    for sources in copied:
        for source in sources.split():
            assert f"!{source}" in ignore or f"!{source}/" in ignore, source


def _fake_docker_without_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a ``docker`` CLI on PATH, which fails ``docker compose ...`` like one without the
    plugin does (``unknown shorthand flag: 'f'``)."""
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho \"unknown shorthand flag: 'f' in -f\" >&2\nexit 125\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))


def test_compose_check_skips_without_the_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker's CLI without a compose plugin: the compose check skips, saying why."""
    _fake_docker_without_compose(tmp_path, monkeypatch)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="without its compose plugin"):
        test_docker_compose_accepts_the_file()


def test_compose_check_fails_without_the_plugin_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under CI the same machine is a failure: .ci/run must install docker-compose."""
    _fake_docker_without_compose(tmp_path, monkeypatch)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="compose"):
        test_docker_compose_accepts_the_file()
