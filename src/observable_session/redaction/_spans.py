"""An OpenTelemetry span exporter wrapper that masks every span before it leaves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from ._names import REDACTED
from ._redactor import Redactor
from ._registry import DEFAULT_REDACTOR

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.util.types import Attributes

__all__ = ["RedactingSpanExporter"]


#: Attributes that hold a URL: masked as URLs (userinfo, sensitive query values).
_URL_ATTRIBUTES: Final = frozenset({"url.full", "http.url", "url.original", "http.target"})


class RedactingSpanExporter:
    """Wraps an OpenTelemetry SDK span exporter and scrubs every span before export.

    Attributes (by key and value, URLs as URLs), event names and attributes
    (``exception.message``, ``exception.stacktrace``...), link attributes, the span name and
    the status description are masked: defence in depth for spans from any instrumentation.
    Pass it to a span processor:
    ``BatchSpanProcessor(RedactingSpanExporter(OTLPSpanExporter()))``. The SDK is imported
    only when spans are exported, so it stays an optional dependency.
    """

    __slots__ = ("_exporter", "_redactor")

    def __init__(self, exporter: SpanExporter, redactor: Redactor | None = None) -> None:
        self._exporter = exporter
        self._redactor = DEFAULT_REDACTOR if redactor is None else redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export masked copies of ``spans`` with the wrapped exporter."""
        return self._exporter.export([self.redact_span(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self._exporter.force_flush(timeout_millis)

    def redact_span(self, span: ReadableSpan) -> ReadableSpan:
        """A masked copy of ``span``; the original is left as it was."""
        from opentelemetry.sdk.trace import Event
        from opentelemetry.sdk.trace import ReadableSpan as Span
        from opentelemetry.trace import Link, Status

        mask_text = self._redactor.mask
        status = span.status
        if status.description:
            status = Status(status.status_code, mask_text(status.description))
        return Span(
            name=mask_text(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self.redact_attributes(span.attributes),
            events=[
                Event(mask_text(e.name), self.redact_attributes(e.attributes), e.timestamp)
                for e in span.events
            ],
            links=[
                Link(link.context, self.redact_attributes(link.attributes)) for link in span.links
            ],
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def redact_attributes(self, attributes: Attributes) -> dict[str, Any]:
        """A masked copy of OpenTelemetry ``attributes`` (scalars and sequences)."""
        redactor = self._redactor
        out: dict[str, Any] = {}
        for key, value in (attributes or {}).items():
            if redactor.is_sensitive_name(key):
                out[key] = REDACTED
            elif isinstance(value, str):
                out[key] = (
                    redactor.mask_url(value) if key in _URL_ATTRIBUTES else redactor.mask(value)
                )
            elif isinstance(value, (list, tuple)):
                out[key] = tuple(redactor.mask(v) if isinstance(v, str) else v for v in value)
            else:
                out[key] = value
        return out
