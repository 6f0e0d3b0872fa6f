"""The proof: no secret, in any of its forms, reaches any sink, whatever the fault.

Hypothesis draws credentials (printable unicode, regex metacharacters, quotes, percent signs,
4 to 200 characters, one a prefix of another) and runs each set through every fault against
real loopback servers, with urllib3 and requests logging at DEBUG. Every sink is collected:
structlog JSON lines (``configure_logging``), a plain stdlib handler guarded by
``RedactingFilter``, every finished span (name, attributes, events, status, links), every
metric point and exemplar, ``str``/``repr``/formatted traceback of every raised error, the
session's ``repr``, and the headers a cross-origin redirect target received.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import re
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import structlog
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from requests import Response
from requests.models import PreparedRequest
from requests.utils import requote_uri

from observable_session import Session
from observable_session.logs import RedactingFilter, configure_logging
from tests.echo_servers import FORMS, PARTS, PLACES, EchoServer, Spelling, encode, part_of, views

MAX_EXAMPLES = 200
SLOW_READ_TIMEOUT = 0.02  # seconds; the /slow route answers after 0.2 s
USERNAME = "u9"  # shorter than four characters: never registered, never masked


# -- loopback servers ------------------------------------------------------------------


@dataclass
class Recorder:
    """Headers received by the cross-origin redirect target, per request."""

    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    flaky: dict[str, int] = field(default_factory=dict)


def _handler(recorder: Recorder, other_origin: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = -1  # one write per response: no Nagle / delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any], **headers: str) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/ok" or path == "/landing":
                if path == "/landing":
                    with recorder.lock:
                        recorder.headers.append(dict(self.headers.items()))
                self._reply(200, {"ok": True})
            elif path == "/missing":
                self._reply(404, {"message": "no such job"})
            elif path == "/unavailable":
                self._reply(503, {"message": "try later"})
            elif path.startswith("/flaky/"):
                with recorder.lock:
                    seen = recorder.flaky.get(path, 0)
                    recorder.flaky[path] = seen + 1
                self._reply(503 if seen == 0 else 200, {"attempt": seen})
            elif path == "/echo":
                echoed = json.dumps(dict(self.headers.items()))
                self._reply(401, {"message": f"rejected credentials, headers were {echoed}"})
            elif path == "/redirect":
                self._reply(302, {}, Location=f"{other_origin()}/landing")
            elif path == "/reset":
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()
            elif path == "/slow":
                time.sleep(0.2)
                self._reply(200, {"late": True})
            else:
                self._reply(500, {"message": "unknown route"})

    return Handler


class _QuietServer(ThreadingHTTPServer):
    """A threaded server that keeps broken pipes (clients that timed out) to itself."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class World:
    """Servers and log buffers shared by every example."""

    main: str
    other: str
    refused: str
    recorder: Recorder
    structlog_lines: io.StringIO
    stdlib_lines: io.StringIO


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """Loopback servers, configure_logging(DEBUG, JSON) and a filtered stdlib handler."""
    recorder = Recorder()
    other = _serve(_handler(recorder, lambda: ""))
    other_url = f"http://127.0.0.1:{other.server_address[1]}"
    main = _serve(_handler(recorder, lambda: other_url))
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_structlog = structlog.get_config()
    structlog_lines, stdlib_lines = io.StringIO(), io.StringIO()
    configure_logging("DEBUG", json=True, stream=structlog_lines)
    plain = logging.StreamHandler(stdlib_lines)
    plain.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    plain.addFilter(RedactingFilter())
    root.addHandler(plain)
    for name in ("urllib3", "requests"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield World(
            f"http://127.0.0.1:{main.server_address[1]}",
            other_url,
            _refused_url(),
            recorder,
            structlog_lines,
            stdlib_lines,
        )
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_structlog)
        for server in (main, other):
            server.shutdown()
            server.server_close()


# -- one run through every fault ---------------------------------------------------------


@dataclass
class Credentials:
    """One drawn set: the Authorization scheme, its secret, and the API key (longer)."""

    scheme: str
    short: str
    long: str

    def authorization(self) -> str:
        """The Authorization header value."""
        if self.scheme == "Basic":
            return "Basic " + base64.b64encode(f"{USERNAME}:{self.short}".encode()).decode()
        return f"{self.scheme} {self.short}"

    def secrets(self) -> list[str]:
        """Every value that must never be seen."""
        values = [self.short, self.long, self.authorization()]
        if self.scheme == "Basic":
            values += [f"{USERNAME}:{self.short}", self.authorization().split(" ", 1)[1]]
        return values


def _run_faults(world: World, creds: Credentials, counter: int) -> dict[str, str]:
    """Send every faulty request once; return each sink's text."""
    for buffer in (world.structlog_lines, world.stdlib_lines):
        buffer.seek(0)
        buffer.truncate()
    with world.recorder.lock:
        world.recorder.headers.clear()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    sinks: dict[str, str] = {}
    try:
        session = _session(world, creds, tracer_provider, meter_provider)
    except Exception as exc:  # a credential refused up front: its error is a sink too
        sinks["errors"] = _error_text(exc)
    else:
        sinks["errors"] = "\n".join(_exercise(world, session, creds, counter))
        sinks["session repr"] = repr(session)
        session.close()
    tracer_provider.shutdown()
    sinks["spans"] = _spans_text(spans.get_finished_spans())
    sinks["metrics"] = _metrics_text(reader)
    meter_provider.shutdown()
    sinks["structlog JSON"] = world.structlog_lines.getvalue()
    sinks["stdlib log"] = world.stdlib_lines.getvalue()
    with world.recorder.lock:
        sinks["redirect target headers"] = repr(world.recorder.headers)
    return sinks


def _exercise(world: World, session: Session, creds: Credentials, counter: int) -> list[str]:
    """Every fault once; the text of each error raised."""
    calls: list[Callable[[], Any]] = [
        lambda: session.get("/ok"),
        lambda: session.get("/missing"),
        lambda: session.get(f"/flaky/{counter}"),
        lambda: session.get("/unavailable"),
        lambda: session.get(f"{world.refused}/down"),
        lambda: session.get("/reset"),
        lambda: session.get("/slow", timeout=(2.0, SLOW_READ_TIMEOUT)),
        lambda: session.get("/redirect"),
        lambda: session.get("/echo"),
        lambda: session.get("/ok", params={"api_key": creds.long, "q": creds.short}),
        lambda: session.get(f"/ok?q={creds.short}&page=2"),
    ]
    errors = []
    for call in calls:
        try:
            call()
        except Exception as exc:
            errors.append(_error_text(exc))
    return errors


def _session(
    world: World, creds: Credentials, tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> Session:
    return Session(
        base_url=world.main,
        auth_headers={"Authorization": creds.authorization(), "X-API-Key": creds.long},
        auth_origins=[world.refused],
        retries_total=2,
        retries_connect=1,
        backoff_factor=0,
        timeout=(2.0, 2.0),
        sleep=lambda s: None,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )


def _error_text(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


def _spans_text(spans: tuple[ReadableSpan, ...]) -> str:
    parts = []
    for span in spans:
        parts.append(span.to_json())
        parts.append(repr((span.name, dict(span.attributes or {}), span.status.description)))
        parts += [repr((e.name, dict(e.attributes or {}))) for e in span.events]
        parts += [repr(dict(link.attributes or {})) for link in span.links]
    return "\n".join(parts)


def _metrics_text(reader: InMemoryMetricReader) -> str:
    data = reader.get_metrics_data()
    if data is None:
        return ""
    parts = [data.to_json()]
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    parts.append(repr(dict(point.attributes or {})))
                    for exemplar in getattr(point, "exemplars", None) or ():
                        parts.append(repr(dict(exemplar.filtered_attributes or {})))
    return "\n".join(parts)


# -- what counts as a leak ---------------------------------------------------------------


def _url_spellings(value: str) -> set[str]:
    spellings = {quote(value, safe=""), quote_plus(value), requote_uri(value)}
    try:
        prepared = PreparedRequest()
        prepared.prepare_url("http://h/?q=" + value, None)
        spellings.add((prepared.url or "").split("?q=", 1)[1])
    except Exception:  # requests refuses it: no URL spelling to look for
        pass
    return spellings


def leak_forms(secret: str) -> set[str]:
    """Every spelling of ``secret`` a sink could show (written apart from the redactor)."""
    forms: set[str] = set()
    values = {secret, secret.strip()}
    # Sent as UTF-8 when outside latin-1, echoed back by a server reading latin-1.
    values |= {v.encode("utf-8", "surrogatepass").decode("latin-1") for v in values}
    for value in values:
        if len(value) < 4:
            continue
        spellings = {value} | _url_spellings(value)
        for spelling in spellings:
            forms |= {spelling, json.dumps(spelling)[1:-1], repr(spelling)[1:-1]}
            forms.add(json.dumps(json.dumps(spelling)[1:-1])[1:-1])
            for encoding in ("utf-8", "latin-1"):
                with contextlib.suppress(UnicodeEncodeError):
                    forms.add(repr(spelling.encode(encoding))[2:-1])
    return {form for form in forms if len(form) >= 4}


# Text that changes from run to run: ids, timestamps, durations, addresses, ports.
_DYNAMIC = re.compile(
    r"\b[0-9a-f]{16}\b|\b[0-9a-f]{32}\b|\b0x[0-9a-f]+\b"
    r"|\b\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d)?"
    r"|(?<![%\w])\d+(?:\.\d+)?(?:e-?\d+)?\b"
)


def _normalise(text: str) -> str:
    return _DYNAMIC.sub("#", text)


@dataclass
class Baseline:
    """Everything the sinks show for a harmless credential: the library's own words."""

    text: str = ""


BASELINE = Baseline()


def _baseline(world: World) -> str:
    if not BASELINE.text:
        creds = Credentials("Bearer", "Zq-benign-Xw", "Zq-benign-Xw-longer")
        BASELINE.text = _normalise("\n".join(_run_faults(world, creds, counter=-1).values()))
    return BASELINE.text


# -- the strategy --------------------------------------------------------------------------

_TRICKY = list(".*+?^$()[]{}|\\'\"%&=#;:/@ ~`,<>!")
_CHARS = st.one_of(
    st.sampled_from(_TRICKY),
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.characters(min_codepoint=0xA1, max_codepoint=0xFF),
    st.characters(categories=["L", "N", "P", "S", "Zs"]),
)
_SECRETS = st.text(_CHARS, min_size=4, max_size=100)
_SUFFIXES = st.text(_CHARS, min_size=1, max_size=100)


@st.composite
def credentials(draw: st.DrawFn) -> Credentials:
    """A scheme, a secret, and a longer secret that starts with it."""
    short = draw(_SECRETS)
    long = short + draw(_SUFFIXES)
    scheme = draw(st.sampled_from(["Bearer", "Token", "Basic"]))
    return Credentials(scheme, short, long[:200])


_COUNTER = iter(range(10**9))


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(creds=credentials())
def test_no_secret_reaches_any_sink(world: World, creds: Credentials) -> None:
    """Across every fault, no form of any credential appears in any sink."""
    baseline = _baseline(world)
    forms = {form for secret in creds.secrets() for form in leak_forms(secret)}
    # A credential that is part of the library's own vocabulary (or of run-to-run noise)
    # could not be told apart from it: such draws say nothing about leaks.
    assume(all(_normalise(form) == form and form not in baseline for form in forms))
    sinks = {
        name: _normalise(text) for name, text in _run_faults(world, creds, next(_COUNTER)).items()
    }
    leaks = [(name, form) for name, text in sinks.items() for form in sorted(forms) if form in text]
    assert leaks == [], f"{creds!r} leaked: {leaks[:5]}"


# == Issue 11: every spelling, every place, several sessions, races, after close ==========
#
# Each scenario below runs inside ``capture``: a fresh SDK and the shared log buffers, every
# error the session raises recorded (str, repr, formatted traceback) and handled as an
# application would (logged with structlog and stdlib logging, with what the server said).
# ``find_leaks`` then reads every sink through ``views`` (JSON, HTML and percent spellings
# undone) and looks for each secret, and for each exact spelling the server produced.


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    """An echo server that spells back what it received (also a proxy and a Digest realm)."""
    server = EchoServer()
    yield server
    server.close()


_APP_LOG = structlog.get_logger("app.jobs")
_APP_STDLIB = logging.getLogger("app.jobs")


@dataclass
class Capture:
    """One scenario's sinks: a fresh SDK, the shared log buffers, every error raised."""

    world: World
    spans: InMemorySpanExporter
    tracer_provider: TracerProvider
    reader: InMemoryMetricReader
    meter_provider: MeterProvider
    errors: list[str] = field(default_factory=list)
    sinks: dict[str, str] = field(default_factory=dict)

    def providers(self) -> dict[str, Any]:
        """Keyword arguments that point a Session at this capture's SDK."""
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    def call(self, send: Callable[[], Response]) -> Response | None:
        """Make one call; an error it raises is recorded and handled like an application."""
        try:
            response = send()
        except Exception as exc:
            self.handle(exc, ours=True)
            return None
        self.log_response(response)
        return response

    def handle(self, exc: BaseException, *, ours: bool) -> None:
        """Record ``exc`` (if the session raised it) and log it as a job runner would."""
        if ours:
            self.errors.append(_error_text(exc))
        response = getattr(exc, "response", None)
        body = response.text if response is not None else ""
        headers = dict(response.headers) if response is not None else {}
        _APP_LOG.error("call failed", error=str(exc), body=body, headers=headers, exc_info=exc)
        _APP_STDLIB.error("call failed: %s %s %r", exc, body, headers, exc_info=exc)

    def log_response(self, response: Response) -> None:
        """Log a response as a job runner would: status, final URL, headers, body."""
        hops = [r.url for r in response.history]
        _APP_LOG.info(
            "reply",
            status=response.status_code,
            url=response.url,
            hops=hops,
            headers=dict(response.headers),
            body=response.text,
        )
        _APP_STDLIB.info("reply %s %s %s %s", response.url, hops, response.text, response.headers)


@contextlib.contextmanager
def capture(world: World) -> Iterator[Capture]:
    """A scenario's sinks, filled in ``Capture.sinks`` when the block ends."""
    for buffer in (world.structlog_lines, world.stdlib_lines):
        buffer.seek(0)
        buffer.truncate()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    cap = Capture(world, spans, tracer_provider, reader, meter_provider)
    try:
        yield cap
    finally:
        tracer_provider.shutdown()
        cap.sinks["errors"] = "\n".join(cap.errors)
        cap.sinks["spans"] = _spans_text(spans.get_finished_spans())
        cap.sinks["metrics"] = _metrics_text(reader)
        meter_provider.shutdown()
        cap.sinks["structlog JSON"] = world.structlog_lines.getvalue()
        cap.sinks["stdlib log"] = world.stdlib_lines.getvalue()


def _readings(text: str) -> list[str]:
    return [_normalise(view) for view in views(text)]


def find_leaks(
    sinks: Mapping[str, str], secrets: Iterable[str], spellings: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """``(sink, secret)`` for every secret seen in any reading of a sink, and every spelling."""
    secrets, spellings = sorted(set(secrets)), sorted(set(spellings))
    leaks = []
    for name, text in sinks.items():
        readings = _readings(text)
        leaks += [(name, s) for s in secrets if any(s in reading for reading in readings)]
        leaks += [(name, s) for s in spellings if s in text]
    return leaks


def secret_values(*values: str) -> set[str]:
    """Each value, stripped, after its scheme, Basic's ``user:pass`` and password, as sent."""
    out: set[str] = set()
    for value in values:
        for part in ("whole", "cred", "basic", "password"):
            got = part_of(value, part)
            out |= {got, got.strip()}
    wire = {v.encode("utf-8").decode("latin-1") for v in out}
    return {v for v in out | wire if len(v) >= 4}


@dataclass
class EchoBaseline:
    """Every reading of the sinks of a harmless run: the library's and the servers' words."""

    readings: str = ""


ECHO_BASELINE = EchoBaseline()


def _echo_baseline(world: World, echo: EchoServer) -> str:
    if not ECHO_BASELINE.readings:
        creds = Credentials("Basic", "Zq-benign-Xw", "Zq-benign-Xw-longer")
        texts = []
        for spelling in (Spelling(form) for form in FORMS):
            sinks = _echo_everywhere(world, echo, creds, spelling, "Authorization", "basic")
            texts += [r for text in sinks.values() for r in _readings(text)]
        ECHO_BASELINE.readings = "\n".join(texts)
    return ECHO_BASELINE.readings


def _usable(secrets: Iterable[str], baseline: str) -> bool:
    """Whether every secret can be told apart from the library's own words and noise."""
    return all(_normalise(s) == s and s not in baseline for s in secrets)


def _quiet_session(url: str, cap: Capture, **kwargs: Any) -> Session:
    return Session(
        base_url=url,
        retries_total=0,
        backoff_factor=0,
        timeout=(2.0, 2.0),
        sleep=lambda s: None,
        **cap.providers(),
        **kwargs,
    )


def _echo_params(header: str, part: str, where: str, spelling: Spelling) -> dict[str, str]:
    return {"h": header, "part": part, "where": where, **spelling.query()}


# -- item 5: every spelling, in every body and header ---------------------------------------


def _echo_everywhere(
    world: World,
    echo: EchoServer,
    creds: Credentials,
    spelling: Spelling,
    header: str,
    part: str,
) -> dict[str, str]:
    with capture(world) as cap:
        auth = {"Authorization": creds.authorization(), "X-API-Key": creds.long}
        session = _quiet_session(echo.url, cap, auth_headers=auth)
        for where in PLACES:
            if where == "location" and spelling.form in ("json", "html"):
                continue  # not a URL: requests would requote it into percent-encoding
            params = _echo_params(header, part, where, spelling)
            cap.call(lambda params=params: session.get("/echo", params=params))
        cap.sinks["session repr"] = repr(session)
        session.close()
    return cap.sinks


@st.composite
def spellings(draw: st.DrawFn, forms: Sequence[str] = FORMS[1:]) -> Spelling:
    """A spelling the echo server applies: form, which characters, hex case, padding."""
    return Spelling(
        draw(st.sampled_from(forms)),
        draw(st.integers(0, 2**32)),
        draw(st.sampled_from([0.05, 0.3, 0.7, 1.0])),
        draw(st.booleans()),
        draw(st.booleans()),
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(creds=credentials(), spelling=spellings(), target=st.sampled_from((*PARTS, "key")))
def test_every_spelling_of_an_echoed_credential_is_masked(
    world: World, echo: EchoServer, creds: Credentials, spelling: Spelling, target: str
) -> None:
    """JSON escapes, HTML entities, percent-encoding, base64: echoed anywhere, never seen."""
    header, part = ("X-API-Key", "whole") if target == "key" else ("Authorization", target)
    if part in ("basic", "password"):
        creds = Credentials("Basic", creds.short, creds.long)
    value = part_of(creds.long if header == "X-API-Key" else creds.authorization(), part)
    secrets = secret_values(creds.authorization(), creds.long) | {value}
    echoed = {encode(value, spelling), encode(value, spelling, ascii_only=True)}
    echoed = {e for e in echoed if len(e) >= 8} | {e.rstrip("=") for e in echoed if len(e) >= 9}
    assume(_usable(secrets, _echo_baseline(world, echo)))
    assume(all(e not in _echo_baseline(world, echo) for e in echoed))
    sinks = _echo_everywhere(world, echo, creds, spelling, header, part)
    leaks = find_leaks(sinks, secrets, echoed)
    assert leaks == [], f"{creds!r} {spelling!r} {part} leaked: {leaks[:5]}"
