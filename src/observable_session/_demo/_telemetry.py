"""The demo's OpenTelemetry SDK: providers, readers and exporters, built from the options.

Always: a tracer provider feeding the in-memory ``SpanRecorder`` (the views) and a meter
provider with an in-memory reader (the cross-checks). With ``--otlp``: traces, metrics and logs
over OTLP/HTTP as well. With ``--prometheus-port``: a Prometheus reader and its ``/metrics``
server. This module imports the ``[demo]`` extra at the top and is itself imported lazily.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from .._version import __version__
from ..otel_logs import redacting_log_handler
from ._collect import SpanRecorder

__all__ = [
    "DEMO_SERVICE_NAME",
    "DemoTelemetry",
    "otlp_endpoint",
    "prometheus_reader",
    "setup_telemetry",
]

DEMO_SERVICE_NAME = "observable-session-demo"
#: How often metrics are pushed over OTLP.
OTLP_METRIC_INTERVAL_MS = 5_000
#: Upper bound for one OTLP export, so an absent collector cannot hold the demo's exit for long.
OTLP_TIMEOUT_S = 5.0


def otlp_endpoint(base: str, signal: str) -> str:
    """``http://host:4318`` + ``traces`` -> ``http://host:4318/v1/traces``."""
    return f"{base.rstrip('/')}/v1/{signal}"


def prometheus_reader(registry: Any) -> MetricReader:
    """A ``PrometheusMetricReader`` whose collector sits in ``registry`` (not the global one).

    ``registry=`` exists from opentelemetry-exporter-prometheus 0.63b0 on; older readers
    always register with prometheus_client's global ``REGISTRY``, so move the collector.
    """
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import REGISTRY

    try:
        return PrometheusMetricReader(registry=registry)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        reader = PrometheusMetricReader()
        collector = reader._collector  # type: ignore[attr-defined,unused-ignore]
        REGISTRY.unregister(collector)
        registry.register(collector)
        # Its shutdown() would unregister from the global REGISTRY again (a KeyError now).
        reader.shutdown = lambda *args, **kwargs: registry.unregister(collector)  # type: ignore[method-assign]
        return reader


def _resource() -> Resource:
    """The demo's resource; ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` win if set."""
    detected = Resource.create({"service.version": __version__})
    name = str(detected.attributes.get(SERVICE_NAME, ""))
    if not os.environ.get("OTEL_SERVICE_NAME") and name.startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: DEMO_SERVICE_NAME}))
    return detected


def _unreachable(url: str, timeout: float) -> bool:
    """Whether nothing accepts a TCP connection at ``url``'s host and port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return False
    except OSError:
        return True


@contextmanager
def _exporters_silenced() -> Iterator[None]:
    """No exporter warnings or tracebacks: the demo has said once that OTLP is unreachable."""
    otel = logging.getLogger("opentelemetry")
    saved = otel.level
    otel.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        otel.setLevel(saved)


@dataclass
class DemoTelemetry:
    """The providers and where their data goes; ``shutdown()`` flushes and stops all of it."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    recorder: SpanRecorder
    metric_reader: InMemoryMetricReader
    logger_provider: Any = None
    log_handler: logging.Handler | None = None
    prometheus_port: int | None = None
    otlp: str | None = None
    otlp_exporters: list[Any] = field(default_factory=list)
    _prometheus_server: Any = None
    _shutdown_lock: threading.Lock = field(default_factory=threading.Lock)

    def shutdown(self) -> None:
        """Flush every exporter and stop the Prometheus server, once."""
        with self._shutdown_lock:
            if self.log_handler is not None:
                logging.getLogger().removeHandler(self.log_handler)
                self.log_handler = None
            # With the collector still away, a final flush would only retry with backoff
            # until the export timeout (seconds at exit): stop the OTLP exporters first,
            # so the flush fails at once, and quietly.
            gone = self.otlp is not None and _unreachable(self.otlp, 0.5)
            with _exporters_silenced() if gone else nullcontext():
                if gone:
                    for exporter in self.otlp_exporters:
                        with suppress(Exception):
                            exporter.shutdown()
                self.tracer_provider.shutdown()
                self.meter_provider.shutdown()
                if self.logger_provider is not None:
                    self.logger_provider.shutdown()
                    self.logger_provider = None
            if self._prometheus_server is not None:
                self._prometheus_server.shutdown()
                self._prometheus_server.server_close()
                self._prometheus_server = None


def setup_telemetry(
    *,
    secrets: Sequence[str],
    otlp: str | None,
    prometheus_port: int | None,
    prometheus_addr: str = "127.0.0.1",
) -> DemoTelemetry:
    """Build the SDK for one demo run (never touching the global providers)."""
    resource = _resource()
    recorder = SpanRecorder(secrets)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(recorder))
    memory_reader = InMemoryMetricReader()
    readers: list[MetricReader] = [memory_reader]
    prometheus_server: Any = None
    bound_port: int | None = None
    if prometheus_port is not None:
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry()
        readers.append(prometheus_reader(registry))
        prometheus_server, _ = start_http_server(prometheus_port, prometheus_addr, registry)
        bound_port = int(prometheus_server.server_port)
    logger_provider: Any = None
    log_handler: logging.Handler | None = None
    otlp_exporters: list[Any] = []
    if otlp is not None:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        otlp_exporters = [
            OTLPSpanExporter(endpoint=otlp_endpoint(otlp, "traces"), timeout=OTLP_TIMEOUT_S),
            OTLPMetricExporter(endpoint=otlp_endpoint(otlp, "metrics"), timeout=OTLP_TIMEOUT_S),
            OTLPLogExporter(endpoint=otlp_endpoint(otlp, "logs"), timeout=OTLP_TIMEOUT_S),
        ]
        spans, metrics, logs = otlp_exporters
        tracer_provider.add_span_processor(BatchSpanProcessor(spans))
        readers.append(
            PeriodicExportingMetricReader(metrics, export_interval_millis=OTLP_METRIC_INTERVAL_MS)
        )
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs))
        # The supported path (opentelemetry-instrumentation-logging's handler), masked.
        log_handler = redacting_log_handler(logger_provider)
    meter_provider = MeterProvider(metric_readers=readers, resource=resource)
    return DemoTelemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        recorder=recorder,
        metric_reader=memory_reader,
        logger_provider=logger_provider,
        log_handler=log_handler,
        prometheus_port=bound_port,
        otlp=otlp,
        otlp_exporters=otlp_exporters,
        _prometheus_server=prometheus_server,
    )
