"""A telemetry set-up that fails never breaks a request, and is never silent."""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from structlog.testing import capture_logs

from observable_session import Session
from observable_session.telemetry import _instruments
from observable_session.telemetry import _semconv as sc
from tests.conftest import Reply, Upstream


class BrokenTracerProvider(TracerProvider):
    """A provider whose get_tracer raises, as a misconfigured SDK plug-in might."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer plug-in exploded")


class OldMeter:
    """A real SDK meter whose create_histogram has the pre-1.30 signature (no advisory)."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    def create_histogram(self, name: str, unit: str = "", description: str = "") -> Any:
        return self._meter.create_histogram(name, unit=unit, description=description)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._meter, name)


class OldMeterProvider(MeterProvider):
    """Hands out :class:`OldMeter`s."""

    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        return OldMeter(super().get_meter(*args, **kwargs))


def _warnings(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == event and e["log_level"] == "warning"]


def test_broken_provider_warns_once_and_requests_work(upstream: Upstream) -> None:
    """A raising provider: every request succeeds, one warning names the cause."""
    upstream.script("/ok", Reply(200))
    with capture_logs() as logs:
        with Session(base_url=upstream.url, tracer_provider=BrokenTracerProvider()) as s:
            assert [s.get("/ok").status_code for _ in range(3)] == [200, 200, 200]
    failed = _warnings(logs, sc.EVENT_TELEMETRY_FAILED)
    assert len(failed) == 1
    assert failed[0]["error_type"] == "RuntimeError"
    assert "tracer plug-in exploded" in failed[0]["cause"]


def test_old_sdk_meter_falls_back_to_default_buckets(upstream: Upstream) -> None:
    """A meter refusing explicit_bucket_boundaries_advisory still records, and says so once."""
    _instruments._ADVISORY_REFUSED.clear()
    upstream.script("/ok", Reply(200))
    reader = InMemoryMetricReader()
    with capture_logs() as logs:
        with Session(
            base_url=upstream.url,
            tracer_provider=TracerProvider(),
            meter_provider=OldMeterProvider(metric_readers=[reader]),
        ) as s:
            s.get("/ok")
            s.get("/ok")
    data = reader.get_metrics_data()
    assert data is not None
    names = {
        metric.name: metric
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    attempts = names[sc.METRIC_CLIENT_REQUEST_DURATION].data.data_points
    assert sum(point.count for point in attempts) == 2
    degraded = _warnings(logs, sc.EVENT_TELEMETRY_DEGRADED)
    assert len(degraded) == 1
    assert "explicit_bucket_boundaries_advisory" in degraded[0]["cause"]


def test_warning_goes_to_the_stdlib_logger_unconfigured(upstream: Upstream) -> None:
    """Unconfigured, the warning reaches stderr through the ``observable_session`` logger."""
    import subprocess
    import sys

    upstream.script("/ok", Reply(200))
    code = (
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "class Broken(TracerProvider):\n"
        "    def get_tracer(self, *a, **k): raise RuntimeError('tracer plug-in exploded')\n"
        "from observable_session import Session\n"
        f"s = Session(base_url={upstream.url!r}, tracer_provider=Broken())\n"
        "print(s.get('/ok').status_code, s.get('/ok').status_code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "200 200"
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(sc.EVENT_TELEMETRY_FAILED)
    assert "tracer plug-in exploded" in lines[0]


def test_a_raising_log_processor_never_breaks_a_request(upstream: Upstream) -> None:
    """An application's structlog processor that raises: the request works, one stdlib warning."""
    import subprocess
    import sys

    upstream.script("/flaky", Reply(503), Reply(200))
    code = (
        "import structlog\n"
        "def broken(logger, name, event): raise ValueError('processor exploded')\n"
        "structlog.configure(processors=[broken])\n"
        "from observable_session import Session\n"
        f"s = Session(base_url={upstream.url!r}, sleep=lambda seconds: None)\n"
        "print(s.get('/flaky').status_code, s.get('/flaky').status_code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "200 200"
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(sc.EVENT_LOGGING_FAILED), out.stderr
    assert "processor exploded" in lines[0]
