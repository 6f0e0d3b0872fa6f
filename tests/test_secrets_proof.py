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
import gc
import io
import json
import logging
import pickle
import re
import socket
import struct
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import quote, quote_plus

import pytest
import requests
import structlog
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from requests import Response
from requests.auth import HTTPDigestAuth, HTTPProxyAuth
from requests.models import PreparedRequest
from requests.utils import requote_uri

from observable_session import ApiHTTPError, InvalidConfigError, Session
from observable_session.logs import RedactingFilter, configure_logging
from observable_session.redaction import mask
from tests.conftest import Reply, Upstream
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
# Found by this test against issue 11's decoder: the key holds "%00", the echo's JSON spells
# its NBSP "\u00a0", and one decoding round reads both. Replayed on every run.
@example(creds=Credentials("Bearer", ":\xa0%0", ":\xa0%00"))
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

# No shrinking: a leak is reported as first found (each failing example replays quickly from
# the example database), so a known leak costs seconds, not minutes, of the suite's time.
_PROOF_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
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
        _APP_LOG.warning("call failed: %s (%r)", body, exc)  # positional arguments
        _APP_STDLIB.error("call failed: %s %s %r", exc, body, headers, exc_info=exc)
        _APP_STDLIB.warning("call failed", extra={"reply_body": body, "reply_headers": headers})

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
        # What a debugging job runner prints: the raw bytes, and the headers it sent.
        _APP_LOG.debug("raw reply", content=response.content, history=response.history)
        _APP_STDLIB.debug("sent %r, got %r", response.request.headers, response.content)


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
    """``(sink, secret)`` for every secret seen in any reading of a sink, and every spelling.

    A drawn secret (kept only if ids, times and numbers cannot hold it) is looked for in the
    readings with those replaced; a fixed one with digits (``Zq-rot-00042-...``) as it is.
    """
    secrets, spellings = sorted(set(secrets)), sorted(set(spellings))
    leaks = []
    for name, text in sinks.items():
        raw = views(text)
        normalised = [_normalise(view) for view in raw]
        for s in secrets:
            readings = normalised if _normalise(s) == s else raw
            if any(s in reading for reading in readings):
                leaks.append((name, s))
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
            if where == "location" and spelling.form.startswith(("json", "html")):
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


@pytest.mark.parametrize(
    "form",
    FORMS[1:],
)
@settings(_PROOF_SETTINGS, max_examples=6)
@given(
    creds=credentials(),
    seed=st.integers(0, 2**32),
    p=st.sampled_from([0.05, 0.3, 0.7, 1.0]),
    padded=st.booleans(),
    plus=st.booleans(),
    target=st.sampled_from((*PARTS, "key")),
)
# The leaks found so far, replayed on every run (whatever the form drawn):
@example(
    creds=Credentials("Basic", "[/\\\\]", "[/\\\\]\xdbL\xf9\U0002b720 >\xb6\xbbf"),
    seed=1,
    p=0.3,
    padded=False,
    plus=False,
    target="basic",
)
@example(
    creds=Credentials(
        "Basic",
        "\U0002837f\xb6\U00012113\u9a8b\u0131.\u9401\xb0",
        "\U0002837f\xb6\U00012113\u9a8b\u0131.\u9401\xb0+\xb7\xe0\u0125v\U0002cb6c\u013eV",
    ),
    seed=64107,
    p=0.3,
    padded=True,
    plus=False,
    target="whole",
)
def test_every_spelling_of_an_echoed_credential_is_masked(
    world: World,
    echo: EchoServer,
    form: str,
    creds: Credentials,
    seed: int,
    p: float,
    padded: bool,
    plus: bool,
    target: str,
) -> None:
    """JSON escapes, HTML entities, percent-encoding, base64: echoed anywhere, never seen."""
    spelling = Spelling(form, seed, p, padded, plus)
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


# -- item 6: credentials the session sends that are not in auth_headers -------------------

_LATIN1 = st.one_of(
    st.sampled_from(_TRICKY),
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.characters(min_codepoint=0xA1, max_codepoint=0xFF),
)
# RFC 6265 cookie-octet; netrc tokens (no blanks, quotes, comment or escape characters).
_COOKIE = st.sampled_from([chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\'])
_NETRC = st.sampled_from([chr(c) for c in range(0x21, 0x7F) if chr(c) not in "\"'#\\"])
_HEADER_SECRET = st.text(_LATIN1, min_size=6, max_size=80).filter(lambda s: s == s.strip())

#: Where a credential sits, and which header of the request the echo server spells back.
CREDENTIAL_PLACES = {
    "Session(headers=) X-API-Key": "X-API-Key",
    "session.headers Authorization": "Authorization",
    "session.headers X-Auth-Token": "X-Auth-Token",
    "call headers= X-API-Key": "X-API-Key",
    "session.auth Basic": "Authorization",
    "auth= Basic": "Authorization",
    "auth= Digest": "digest",
    "netrc": "Authorization",
    "proxy userinfo": "Proxy-Authorization",
    "cookie jar": "Cookie",
    "Set-Cookie": "Cookie",
    "call URL userinfo": "Authorization",
    "auth= HTTPProxyAuth": "Proxy-Authorization",
    "auth= callable setting X-Auth-Token": "X-Auth-Token",
}


def _secret_for(place: str) -> st.SearchStrategy[str]:
    """Credentials whose characters ``place`` can carry."""
    if "ookie" in place:
        return st.text(_COOKIE, min_size=6, max_size=80)
    if place == "netrc":
        return st.text(_NETRC, min_size=6, max_size=80)
    return _HEADER_SECRET


def _wire_value(place: str, secret: str) -> str:
    """The header value that carries ``secret`` from ``place``."""
    if place == "session.headers Authorization":
        return f"Bearer {secret}"
    if place in ("Session(headers=) X-API-Key", "call headers= X-API-Key"):
        return secret
    if place in ("session.headers X-Auth-Token", "auth= callable setting X-Auth-Token"):
        return secret
    if "ookie" in place:
        return f"sid={secret}"
    if place == "auth= Digest":
        return secret
    pair = f"{USERNAME}:{secret}".encode("latin-1")
    return "Basic " + base64.b64encode(pair).decode()


@contextlib.contextmanager
def _netrc(place: str, secret: str) -> Iterator[None]:
    """A netrc file for 127.0.0.1 while the block runs (only for the netrc place)."""
    if place != "netrc":
        yield
        return
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "netrc")
        with open(path, "w", encoding="latin-1") as f:
            f.write(f"machine 127.0.0.1\nlogin {USERNAME}\npassword {secret}\n")
        saved = os.environ.get("NETRC")
        os.environ["NETRC"] = path
        try:
            yield
        finally:
            if saved is None:
                del os.environ["NETRC"]
            else:
                os.environ["NETRC"] = saved


def _placed_session(echo: EchoServer, cap: Capture, place: str, secret: str) -> Session:
    base = echo.url
    kwargs: dict[str, Any] = {}
    if place == "Session(headers=) X-API-Key":
        kwargs["headers"] = {"X-API-Key": secret}
    session = _quiet_session(base, cap, **kwargs)
    if place == "session.headers Authorization":
        session.headers["Authorization"] = f"Bearer {secret}"
    elif place == "session.headers X-Auth-Token":
        session.headers["X-Auth-Token"] = secret
    elif place == "session.auth Basic":
        session.auth = (USERNAME, secret)
    elif place == "proxy userinfo":
        proxy = f"http://{USERNAME}:{quote(secret, safe='')}@127.0.0.1:{echo.port}"
        session.proxies = {"http": proxy}
    elif place == "cookie jar":
        session.cookies.set("sid", secret)
    return session


def _call_kwargs(place: str, secret: str) -> dict[str, Any]:
    if place == "call headers= X-API-Key":
        return {"headers": {"X-API-Key": secret}}
    if place == "auth= Basic":
        return {"auth": (USERNAME, secret)}
    if place == "auth= Digest":
        return {"auth": HTTPDigestAuth(USERNAME, secret)}
    if place == "auth= HTTPProxyAuth":
        return {"auth": HTTPProxyAuth(USERNAME, secret)}
    if place == "auth= callable setting X-Auth-Token":

        def sign(request: PreparedRequest) -> PreparedRequest:
            request.headers["X-Auth-Token"] = secret
            return request

        return {"auth": sign}
    return {}


def _echo_placed(
    world: World, echo: EchoServer, place: str, secret: str, spelling: Spelling, part: str
) -> dict[str, str]:
    header = CREDENTIAL_PLACES[place]
    echo.state.digest_password = secret
    echo.state.cookie = secret
    with _netrc(place, secret), capture(world) as cap:
        session = _placed_session(echo, cap, place, secret)
        kwargs = _call_kwargs(place, secret)
        if place == "Set-Cookie":
            session.get("/login")  # logging it is test_a_cookie_set_by_the_server_is_masked...
        url = "/echo"
        if place == "call URL userinfo":
            url = f"http://{USERNAME}:{quote(secret, safe='')}@127.0.0.1:{echo.port}/echo"
        for where in ("json", "jsonraw", "html", "text", "header"):
            params = _echo_params(header, part, where, spelling)
            cap.call(lambda p=params: session.get(url, params=p, **kwargs))
        cap.sinks["session repr"] = repr(session)
        session.close()
    return cap.sinks


@pytest.mark.parametrize("place", sorted(CREDENTIAL_PLACES))
@settings(_PROOF_SETTINGS, max_examples=5)
@given(data=st.data(), spelling=spellings(FORMS[:-1]), part=st.sampled_from(PARTS))
def test_a_credential_from_every_place_is_masked_when_echoed(
    world: World, echo: EchoServer, place: str, data: st.DataObject, spelling: Spelling, part: str
) -> None:
    """Seed-style headers, session.auth, auth=, Digest, netrc, proxy userinfo, cookies."""
    secret = data.draw(_secret_for(place), label="secret")
    wire = _wire_value(place, secret)
    if not wire.startswith(("Basic ", "Bearer ")):
        part = "whole"  # no scheme: a part after a blank would be a fragment of the secret
    elif not wire.startswith("Basic ") and part in ("basic", "password"):
        part = "cred"
    value = secret if place == "auth= Digest" else part_of(wire, part)
    secrets = secret_values(wire) | {secret, value}
    echoed = {encode(value, spelling), encode(value, spelling, ascii_only=True)}
    echoed = {e for e in echoed if len(e) >= 8}
    baseline = _echo_baseline(world, echo)
    assume(_usable(secrets, baseline) and all(e not in baseline for e in echoed))
    sinks = _echo_placed(world, echo, place, secret, spelling, part)
    leaks = find_leaks(sinks, secrets, echoed)
    assert leaks == [], f"{place}: {secret!r} {spelling!r} {part} leaked: {leaks[:5]}"


# -- item 4: mask before you cut -------------------------------------------------------------

_KEY_CHARS = st.sampled_from("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_~+/")


@settings(_PROOF_SETTINGS, max_examples=14)
@given(
    tail=st.text(_KEY_CHARS, min_size=14, max_size=60),
    where=st.sampled_from(["json", "jsonraw", "html", "text"]),
    spelling=spellings(["plain", "plain", "json", "percent"]),
    data=st.data(),
)
def test_a_key_straddling_the_message_limit_leaves_no_prefix(
    world: World,
    echo: EchoServer,
    tail: str,
    where: str,
    spelling: Spelling,
    data: st.DataObject,
) -> None:
    """An echo longer than the message limit, the key across the cut: no part of it shows."""
    key = "Zq" + tail
    # Where the key starts in the server's text: after the pad, "rejected X-API-Key: ", and
    # for HTML the page's opening tags. The cut may be on the detail (1000) or on the whole
    # message (the detail then starts some 100-150 characters in): cover both.
    start = len("rejected X-API-Key: ") + (len("<html><body><p>") if where == "html" else 0)
    width = len(encode(key, spelling))
    pad = data.draw(st.integers(1000 - start - width - 250, 1000 - start - 1), label="pad")
    assume(pad >= 0)
    params = {"h": "X-API-Key", "where": where, "pad": str(pad), **spelling.query()}
    with capture(world) as cap:
        session = _quiet_session(echo.url, cap, auth_headers={"X-API-Key": key})
        cap.call(lambda: session.get("/echo", params=params))
        session.close()
    prefixes = {key[:n] for n in range(6, len(key) + 1)}
    leaks = find_leaks(cap.sinks, prefixes)
    worst = sorted(leaks, key=lambda leak: -len(leak[1]))[:3]
    assert leaks == [], f"pad={pad} {where} {spelling!r}: {worst}"


# -- several sessions alive at once ----------------------------------------------------------


@pytest.fixture(scope="module")
def crowd(echo: EchoServer) -> Iterator[list[tuple[Session, str]]]:
    """A hundred and twenty live sessions, each with its own key: the orchestrator's load."""
    sessions = []
    for i in range(120):
        key = f"Zq-crowd-{i:03d}-" + base64.urlsafe_b64encode(struct.pack(">Q", i * 7919)).decode()
        sessions.append((Session(base_url=echo.url, auth_headers={"X-API-Key": key}), key))
    yield sessions
    for session, _ in sessions:
        session.close()


@settings(_PROOF_SETTINGS, max_examples=6)
@given(
    many=st.lists(credentials(), min_size=2, max_size=4),
    pick=st.integers(0, 119),
    overlap=st.booleans(),
)
def test_several_live_sessions_keep_every_credential_masked(
    world: World,
    echo: EchoServer,
    crowd: list[tuple[Session, str]],
    many: list[Credentials],
    pick: int,
    overlap: bool,
) -> None:
    """Sessions side by side (and a twin closed early): each one's echo is masked."""
    if overlap:  # one session's key is the start of another session's credentials
        second = many[1]
        many[1] = Credentials(second.scheme, many[0].long, many[0].long + second.long)
    secrets = secret_values(*(v for c in many for v in (c.authorization(), c.long)))
    assume(_usable(secrets, _echo_baseline(world, echo)))
    crowd_session, crowd_key = crowd[pick]
    with capture(world) as cap:
        sessions = [
            _quiet_session(
                echo.url,
                cap,
                auth_headers={"Authorization": c.authorization(), "X-API-Key": c.long},
            )
            for c in many
        ]
        # A twin with the first session's credentials, closed before anything is sent: the
        # first session's values must not be forgotten with it.
        twin = _quiet_session(echo.url, cap, auth_headers=dict(sessions[0].auth_headers))
        twin.close()
        for where in ("json", "jsonraw", "text"):
            for session in sessions:
                for header in ("Authorization", "X-API-Key"):
                    params = _echo_params(header, "whole", where, Spelling())
                    cap.call(lambda s=session, p=params: s.get("/echo", params=p))
        crowd_params = _echo_params("X-API-Key", "whole", "json", Spelling())
        cap.call(lambda: crowd_session.get("/echo", params=crowd_params))
        cap.sinks["session reprs"] = "\n".join(repr(s) for s in sessions)
        for session in sessions:
            session.close()
    leaks = find_leaks(cap.sinks, secrets | {crowd_key})
    assert leaks == [], f"{many!r} leaked: {leaks[:5]}"


# -- items 1 and 2: rotation from another thread, and rotated-out values ----------------------


def _rotated_value(i: int) -> str:
    return f"Zq-rot-{i:05d}-" + base64.urlsafe_b64encode(struct.pack(">QQ", i, i * 104729)).decode()


_ROTATED: Final = re.compile(r"Zq-rot-\d{5}-[\w=-]{24}")


def find_marked_leaks(sinks: Mapping[str, str], values: Iterable[str]) -> list[tuple[str, str]]:
    """``find_leaks`` for many ``_rotated_value`` values at once: one scan per reading."""
    wanted = set(values)
    leaks = set()
    for name, text in sinks.items():
        for reading in views(text):
            leaks |= {(name, v) for v in _ROTATED.findall(reading) if v in wanted}
    return sorted(leaks)


@pytest.mark.parametrize(
    "how", ["assign", "delete then assign", "replace mapping", "session.headers (seed style)"]
)
def test_rotation_from_another_thread_never_sends_an_unmasked_value(
    world: World, echo: EchoServer, how: str
) -> None:
    """A value is masked before any request can send it: 8 callers, a rotator every 1 ms."""
    sent = [_rotated_value(0)]
    stop = threading.Event()
    with capture(world) as cap:
        if how.startswith("session.headers"):
            session = _quiet_session(echo.url, cap, headers={"X-API-Key": sent[0]})
        else:
            session = _quiet_session(echo.url, cap, auth_headers={"X-API-Key": sent[0]})
        lock = threading.Lock()

        def rotate() -> None:
            for i in range(1, 5000):
                if stop.is_set():
                    return
                value = _rotated_value(i)
                sent.append(value)  # known to the check before the session can send it
                if how == "assign":
                    session.auth_headers["X-API-Key"] = value
                elif how == "delete then assign":
                    del session.auth_headers["X-API-Key"]
                    session.auth_headers["X-API-Key"] = value
                elif how == "replace mapping":
                    session.auth_headers = {"X-API-Key": value}
                else:
                    session.headers["X-API-Key"] = value
                stop.wait(0.001)

        def call() -> None:
            params = _echo_params("X-API-Key", "whole", "json", Spelling())
            for _ in range(25):
                try:
                    session.get("/echo", params=params)
                except Exception as exc:
                    with lock:
                        cap.handle(exc, ours=True)

        rotator = threading.Thread(target=rotate)
        callers = [threading.Thread(target=call) for _ in range(8)]
        rotator.start()
        for t in callers:
            t.start()
        for t in callers:
            t.join()
        stop.set()
        rotator.join()
        session.close()
    assert len(sent) > 20  # the rotator really raced the callers
    leaks = find_marked_leaks(cap.sinks, sent)
    assert leaks == [], f"{len(leaks)} leaks after {len(sent)} rotations: {leaks[:3]}"


@pytest.mark.parametrize("how", ["assign", "replace mapping"])
def test_the_first_value_stays_masked_after_hundreds_of_rotations(
    world: World, echo: EchoServer, how: str
) -> None:
    """Every value the session has sent stays masked while it lives, however many rotations."""
    first = _rotated_value(0)
    params = _echo_params("X-API-Key", "whole", "text", Spelling())
    with capture(world) as cap:
        session = _quiet_session(
            echo.url, cap, auth_headers={"X-API-Key": first}, raise_for_status=False
        )
        early = session.get("/echo", params=params)  # the server's words, kept by the job
        for i in range(1, 300):
            if how == "assign":
                session.auth_headers["X-API-Key"] = _rotated_value(i)
            else:
                session.auth_headers = {"X-API-Key": _rotated_value(i)}
        cap.log_response(early)
        cap.handle(RuntimeError("job 7 failed: " + early.text), ours=False)
        cap.sinks["mask()"] = mask(early.text)
        session.close()
    assert first in early.text  # the echo really carried it
    assert find_leaks(cap.sinks, [first]) == []


# -- item 3: after close, and after collection -------------------------------------------


def test_the_readme_pattern_masks_an_error_handled_after_the_block(
    world: World, echo: EchoServer
) -> None:
    """``with Session(...) as api:`` and the error handled after the block: still masked."""
    key = _rotated_value(90001)
    params = _echo_params("X-API-Key", "whole", "text", Spelling())
    with capture(world) as cap:
        try:
            with _quiet_session(echo.url, cap, auth_headers={"X-API-Key": key}) as api:
                api.get("/echo", params=params)
        except ApiHTTPError as exc:
            cap.handle(exc, ours=True)
            assert exc.response is not None and key in exc.response.text
            try:
                raise RuntimeError(f"job failed: {exc.response.text}") from exc
            except RuntimeError as app_error:
                cap.handle(app_error, ours=False)
                _APP_LOG.exception("job failed")
                _APP_STDLIB.exception("job failed")
            cap.sinks["mask()"] = mask(exc.response.text)
    assert find_leaks(cap.sinks, [key]) == []


def test_a_collected_sessions_values_stay_masked(world: World, echo: EchoServer) -> None:
    """A session dropped without close: what it sent stays masked after collection."""
    key = _rotated_value(90002)
    params = _echo_params("X-API-Key", "whole", "jsonraw", Spelling())

    def job() -> tuple[Response, weakref.ref[Session]]:
        session = Session(base_url=echo.url, auth_headers={"X-API-Key": key})
        return session.get("/echo", params=params, raise_for_status=False), weakref.ref(session)

    response, ref = job()
    gc.collect()
    assert ref() is None and key in response.text
    with capture(world) as cap:
        cap.log_response(response)
        cap.sinks["mask()"] = mask(response.text)
    assert find_leaks(cap.sinks, [key]) == []


# -- item 6: credential headers follow the origin rule -------------------------------------

#: Credential headers set the seed's way (or the requests way), and how to set them.
ORIGIN_PLACES = ("Session(headers=) X-API-Key", "session.headers Authorization", "session.auth")
#: Where the first hop (or the call itself) goes instead of the base origin.
DESTINATIONS = ("redirect: other port", "redirect: host alias", "absolute URL of another origin")


def _origin_session(place: str, upstream: Upstream, key: str) -> Session:
    kwargs: dict[str, Any] = {}
    if place == "Session(headers=) X-API-Key":
        kwargs["headers"] = {"X-API-Key": key}
    session = Session(base_url=upstream.url, retries_total=0, sleep=lambda s: None, **kwargs)
    if place == "session.headers Authorization":
        session.headers["Authorization"] = f"Bearer {key}"
    elif place == "session.auth":
        session.auth = (USERNAME, key)
    return session


def _carries(headers: Mapping[str, str], key: str) -> list[str]:
    """The names of the headers that carry ``key`` (as sent, or in Basic's base64)."""
    basic = base64.b64encode(f"{USERNAME}:{key}".encode()).decode()
    return [name for name, value in headers.items() if key in value or basic in value]


@pytest.mark.parametrize("destination", DESTINATIONS)
@pytest.mark.parametrize("place", ORIGIN_PLACES)
def test_credential_headers_are_sent_only_to_the_base_origin(
    upstream: Upstream, other_upstream: Upstream, place: str, destination: str
) -> None:
    """Seed-style credential headers and session.auth never reach another origin."""
    key = _rotated_value(70001)
    alias = f"http://localhost:{upstream.port}"
    target = {
        "redirect: other port": f"{other_upstream.url}/landing",
        "redirect: host alias": f"{alias}/landing",
    }.get(destination, "")
    upstream.script("/start", Reply(302, b"", {"Location": target}))
    session = _origin_session(place, upstream, key)
    if target:
        session.get("/start")
        first = [s for s in upstream.seen if s.path == "/start"]
        assert first and _carries(first[0].headers, key)  # the base origin did get it
    else:
        session.get(f"{other_upstream.url}/landing")
    session.close()
    landed = [s for s in (*upstream.seen, *other_upstream.seen) if s.path == "/landing"]
    assert len(landed) == 1
    assert _carries(landed[0].headers, key) == []


def test_call_headers_with_a_sensitive_name_are_stripped_on_a_cross_origin_redirect(
    upstream: Upstream, other_upstream: Upstream
) -> None:
    """A call's ``headers={"X-API-Key": ...}`` follows the same rule across a redirect."""
    key = _rotated_value(70002)
    upstream.script("/start", Reply(302, b"", {"Location": f"{other_upstream.url}/landing"}))
    session = Session(base_url=upstream.url, retries_total=0, sleep=lambda s: None)
    session.get("/start", headers={"X-API-Key": key})
    session.close()
    assert _carries(upstream.seen[0].headers, key) == ["X-API-Key"]
    assert _carries(other_upstream.seen[0].headers, key) == []


@pytest.mark.parametrize("how", ["constructor", "setter"])
def test_userinfo_in_base_url_is_never_shown(echo: EchoServer, how: str) -> None:
    """A ``base_url`` with userinfo: refused without quoting it, or masked in ``repr``."""
    key = _rotated_value(70003)
    url = f"http://{USERNAME}:{key}@127.0.0.1:{echo.port}/api"
    session = Session(base_url=echo.url) if how == "setter" else None
    try:
        if session is None:
            session = Session(base_url=url)
        else:
            session.base_url = url
    except InvalidConfigError as exc:
        text = _error_text(exc)
    else:
        text = repr(session)
    finally:
        if session is not None:
            session.close()
    assert key not in text


def test_a_header_value_http_client_cannot_encode_is_masked_in_the_error(
    world: World, echo: EchoServer
) -> None:
    """A non-latin-1 key in ``session.headers``: the error raised never shows it."""
    key = "Zq-\u20ac-" + _rotated_value(70004)
    with capture(world) as cap:
        session = _quiet_session(echo.url, cap, headers={"X-API-Key": key})
        cap.call(lambda: session.get("/echo", params={"h": "X-API-Key"}))
        session.close()
    assert cap.errors  # http.client refuses the value; the session raises
    assert find_leaks(cap.sinks, secret_values(key)) == []


def test_a_cookie_set_by_the_server_is_masked_once_it_is_in_the_jar(
    world: World, echo: EchoServer
) -> None:
    """A ``Set-Cookie`` token is in the jar from that reply on: logging the reply masks it."""
    value = _rotated_value(70005)
    echo.state.cookie = value
    with capture(world) as cap:
        session = _quiet_session(echo.url, cap)
        cap.call(lambda: session.get("/login"))
        assert session.cookies.get("sid") == value
        session.close()
    assert find_leaks(cap.sinks, [value]) == []


def test_an_error_handled_after_the_block_stays_masked_while_other_jobs_finish(
    world: World, echo: EchoServer
) -> None:
    """The README pattern in an orchestrator: 300 other jobs' sessions close meanwhile."""
    key = _rotated_value(90003)
    params = _echo_params("X-API-Key", "whole", "text", Spelling())
    failure: ApiHTTPError | None = None
    try:
        with Session(base_url=echo.url, auth_headers={"X-API-Key": key}, retries_total=0) as api:
            api.get("/echo", params=params)
    except ApiHTTPError as exc:
        failure = exc
    assert failure is not None and failure.response is not None
    for i in range(300):  # the jobs that ran alongside finish first
        Session(base_url=echo.url, auth_headers={"X-API-Key": _rotated_value(80000 + i)}).close()
    with capture(world) as cap:
        cap.handle(failure, ours=False)
        cap.sinks["mask()"] = mask(failure.response.text)
    assert find_leaks(cap.sinks, [key]) == []


#: Credentials that requests or http.client refuse on the way out: their error quotes them.
REFUSED = {
    "session.headers value with a leading blank": ("headers", " "),
    "session.headers value ending in LF": ("headers", "\n"),
    "call headers= value ending in CR": ("call", "\r"),
    "session.auth password outside latin-1": ("auth", "\u20ac"),
    "proxy userinfo with a bad port": ("proxy", ""),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_credential_refused_on_the_way_out_is_masked_in_the_error(
    world: World, echo: EchoServer, case: str
) -> None:
    """requests and http.client quote a header value or URL they refuse: never ours."""
    where, odd = REFUSED[case]
    key = _rotated_value(70100 + sorted(REFUSED).index(case))
    kwargs: dict[str, Any] = {}
    with capture(world) as cap:
        session = _quiet_session(echo.url, cap)
        if where == "headers":
            session.headers["X-API-Key"] = odd + key if odd == " " else key + odd
        elif where == "call":
            kwargs["headers"] = {"Authorization": f"Bearer {key}{odd}"}
        elif where == "auth":
            session.auth = (USERNAME, key + odd)
        else:
            session.proxies = {"http": f"http://{USERNAME}:{key}@127.0.0.1:port"}
        cap.call(lambda: session.get("/echo", **kwargs))
        session.close()
    assert cap.errors  # refused: the session raised
    assert find_leaks(cap.sinks, secret_values(key)) == []


def test_a_live_sessions_value_outlives_a_twin_that_closed_long_ago(
    world: World, echo: EchoServer
) -> None:
    """Two sessions share a key; one closes and its grace runs out: the other's stays masked."""
    key = _rotated_value(90004)
    params = _echo_params("X-API-Key", "whole", "text", Spelling())
    with capture(world) as cap:
        live = _quiet_session(echo.url, cap, auth_headers={"X-API-Key": key})
        Session(base_url=echo.url, auth_headers={"X-API-Key": key}).close()
        for i in range(300):  # enough closed sessions to push the twin out of any grace pool
            Session(
                base_url=echo.url, auth_headers={"X-API-Key": _rotated_value(81000 + i)}
            ).close()
        cap.call(lambda: live.get("/echo", params=params))
        live.close()
    assert cap.errors and find_leaks(cap.sinks, [key]) == []


@settings(_PROOF_SETTINGS, max_examples=6)
@given(creds=credentials(), spelling=spellings(["plain", "percent", "b64", "b64url"]))
def test_a_wait_on_a_poll_url_that_echoes_the_key_masks_it(
    world: World, echo: EchoServer, creds: Credentials, spelling: Spelling
) -> None:
    """``Session.wait`` on an Operation-Location holding the key: its error and span mask it."""
    secrets = secret_values(creds.long)
    echoed = {e for e in (encode(creds.long, spelling, ascii_only=True),) if len(e) >= 8}
    baseline = _echo_baseline(world, echo)
    assume(_usable(secrets, baseline) and all(e not in baseline for e in echoed))
    params = _echo_params("X-API-Key", "whole", "operation", spelling)
    with capture(world) as cap:
        session = _quiet_session(echo.url, cap, auth_headers={"X-API-Key": creds.long})
        accepted = session.post("/echo", params=params)
        cap.call(lambda: session.wait(accepted, until=lambda r: False, fail_when=lambda r: True))
        session.close()
    assert cap.errors  # fail_when ended the wait with WaitFailed
    leaks = find_leaks(cap.sinks, secrets, echoed)
    assert leaks == [], f"{creds!r} {spelling!r} leaked: {leaks[:5]}"


def test_a_request_prepared_outside_the_session_is_masked_when_sent(
    world: World, echo: EchoServer
) -> None:
    """``session.send(Request(..., headers={"X-API-Key": k}).prepare())``: k is masked too."""
    key = _rotated_value(70200)
    url = f"{echo.url}/echo?h=X-API-Key&where=text"
    with capture(world) as cap:
        session = _quiet_session(echo.url, cap)
        prepared = requests.Request("GET", url, headers={"X-API-Key": key}).prepare()
        response = session.send(prepared)
        assert key in response.text  # the server got it and said it back
        cap.log_response(response)
        session.close()
    assert find_leaks(cap.sinks, [key]) == []


def test_an_unpickled_session_masks_its_credentials(world: World, echo: EchoServer) -> None:
    """A session rebuilt by pickle registers its credentials again before sending them."""
    key = _rotated_value(70201)
    params = _echo_params("X-API-Key", "whole", "text", Spelling())
    original = Session(base_url=echo.url, auth_headers={"X-API-Key": key}, retries_total=0)
    blob = pickle.dumps(original)
    original.close()
    for i in range(300):  # the original's grace is long over
        Session(base_url=echo.url, auth_headers={"X-API-Key": _rotated_value(82000 + i)}).close()
    with capture(world) as cap:
        rebuilt = pickle.loads(blob)
        cap.call(lambda: rebuilt.get("/echo", params=params))
        rebuilt.close()
    assert cap.errors and find_leaks(cap.sinks, [key]) == []


@pytest.mark.parametrize("literal", ["\\\\", "%41", "&amp;"])
@pytest.mark.parametrize("where", ["html", "text"])
def test_a_key_with_a_literal_escape_sequence_is_masked_when_partly_escaped(
    world: World, echo: EchoServer, literal: str, where: str
) -> None:
    """``Zq…%41…/…`` echoed as ``Zq…%41…&#47;…`` (HTML) or ``…%2F…`` is still the key."""
    key = f"Zq-k3y{literal}w9/T2x-{where}"
    escaped = key.replace("/", "&#47;" if where == "html" else "%2F")
    with capture(world) as cap:
        session = _quiet_session(echo.url, cap, auth_headers={"X-API-Key": key})
        cap.handle(RuntimeError(f"upstream said: {escaped}"), ours=False)
        cap.sinks["mask()"] = mask(f"upstream said: {escaped}")
        session.close()
    assert find_leaks(cap.sinks, [key], [escaped]) == []
