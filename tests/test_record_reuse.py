"""The recorder reuses the logical span's attributes for attempts to the same target.

Checked where reuse could go wrong: a retry (``http.request.resend_count`` must appear on
the retry only, and never leak into the logical span or the next call), and a redirect that
leaves the origin and comes back (every attempt's span, duration point and in-flight series
must name the server that attempt went to).
"""

from __future__ import annotations

from observable_session import Session
from observable_session.telemetry import _semconv as sc

from .conftest import Otel, Reply, Upstream


def _session(upstream: Upstream, otel: Otel) -> Session:
    return Session(base_url=upstream.url, backoff_factor=0, **otel.providers())


def test_retry_resend_count_stays_on_the_retry(upstream: Upstream, otel: Otel) -> None:
    upstream.script("/f", Reply(503), Reply(200))
    with _session(upstream, otel) as s:
        s.get("/f")
        s.get("/f")
    attempts = sorted(otel.spans("CLIENT"), key=lambda span: span.start_time or 0)
    resend = [a.attributes.get(sc.HTTP_REQUEST_RESEND_COUNT) for a in attempts]
    assert resend == [None, 1, None]
    for logical in otel.spans("INTERNAL"):
        assert sc.HTTP_REQUEST_RESEND_COUNT not in (logical.attributes or {})
    start_keys = (sc.HTTP_REQUEST_METHOD, sc.SERVER_ADDRESS, sc.SERVER_PORT, sc.URL_FULL)
    logical = otel.spans("INTERNAL")[0].attributes or {}
    for attempt in attempts:
        attrs = attempt.attributes or {}
        assert [attrs[k] for k in start_keys] == [logical[k] for k in start_keys]


def test_attempts_name_their_own_server_across_origins(
    upstream: Upstream, other_upstream: Upstream, otel: Otel
) -> None:
    # Back to the very URL the call started with: the attempt the recorder reuses for.
    upstream.script("/a", Reply(302, headers={"Location": other_upstream.url + "/b"}), Reply(200))
    other_upstream.script("/b", Reply(302, headers={"Location": upstream.url + "/a"}))
    with _session(upstream, otel) as s:
        s.get("/a")
    attempts = sorted(otel.spans("CLIENT"), key=lambda span: span.start_time or 0)
    ports = [(a.attributes or {})[sc.SERVER_PORT] for a in attempts]
    assert ports == [upstream.port, other_upstream.port, upstream.port]
    assert [(a.attributes or {})[sc.URL_FULL].rsplit("/", 1)[1] for a in attempts] == list("aba")
    points = otel.points(sc.METRIC_CLIENT_REQUEST_DURATION)
    by_port: dict[int, int] = {}
    for point in points:
        port = point.attributes[sc.SERVER_PORT]
        by_port[port] = by_port.get(port, 0) + point.count
    assert by_port == {upstream.port: 2, other_upstream.port: 1}
    active = otel.points(sc.METRIC_CLIENT_ACTIVE_REQUESTS)
    assert {p.attributes[sc.SERVER_PORT] for p in active} == {upstream.port, other_upstream.port}
    assert all(p.value == 0 for p in active)
