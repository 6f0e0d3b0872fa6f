"""Attacks on the merged whole: the secrets guarantee where features meet.

Each test crosses two features (the header cache and rotation from another thread, the
lazy index and an immediate echo, Session.wait and the origin rule, errors after close()
and the grace period, redirects to another port), against real loopback servers.
"""

from __future__ import annotations

import io
import logging
import pickle
import threading
import time
import traceback
import uuid
from collections.abc import Iterator

import pytest
import requests
import structlog

from observable_session import RequestsApiError, Session, WaitFailed, WaitTimeout
from observable_session.logs import configure_logging
from observable_session.redaction import DEFAULT_REDACTOR
from tests.conftest import Echo, Otel, Reply, Upstream
from tests.echo_servers import EchoServer, views


def _key() -> str:
    return f"sk-live-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"


def _sinks(exc: BaseException) -> str:
    """Every text an error is seen as: str, repr, args, pickle, traceback, chained causes."""
    parts = [str(exc), repr(exc), repr(exc.args)]
    parts.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    parts.append(repr(pickle.dumps(exc)))
    request = getattr(exc, "request", None)
    if request is not None:
        parts.append(repr(getattr(request, "headers", None)))
        parts.append(str(getattr(request, "url", "")))
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        parts.append(repr(cause))
    return "\n".join(parts)


def test_session_header_rotated_from_another_thread_is_masked(upstream: Upstream) -> None:
    """A sensitive session.headers value rotated while the cached headers are reused."""
    upstream.script("/echo", Echo(401))
    keys: list[str] = [_key()]
    stop = threading.Event()
    api = Session(base_url=upstream.url)
    api.headers["X-API-Key"] = keys[0]

    def rotate() -> None:
        for _ in range(200):
            if stop.is_set():
                return
            key = _key()
            keys.append(key)
            api.headers["X-API-Key"] = key

    rotator = threading.Thread(target=rotate)
    rotator.start()
    texts = []
    try:
        for _ in range(40):
            with pytest.raises(RequestsApiError) as info:
                api.get("/echo")
            texts.append(_sinks(info.value))
    finally:
        stop.set()
        rotator.join()
        api.close()
    blob = "\n".join(texts)
    assert [k for k in keys if k in blob] == []


def test_value_echoed_from_another_thread_before_any_search_is_masked() -> None:
    """Lazy filing: a value registered, then masked at once in another thread."""
    for _ in range(50):
        key = _key()
        owners = [Session() for _ in range(3)]
        seen: list[str] = []
        ready = threading.Event()

        def echo(key: str = key, ready: threading.Event = ready, seen: list[str] = seen) -> None:
            ready.wait()
            seen.append(DEFAULT_REDACTOR.mask(f"rejected {key}"))

        worker = threading.Thread(target=echo)
        worker.start()
        owners[0].auth_headers = {"X-API-Key": key}
        ready.set()
        worker.join()
        for owner in owners:
            owner.close()
        assert key not in seen[0]


def test_error_after_close_and_after_the_grace_period_stays_masked(upstream: Upstream) -> None:
    """The error raised in the block, looked at after close() and after the grace is over."""
    upstream.script("/echo", Echo(401))
    key = _key()
    with Session(base_url=upstream.url, auth_headers={"X-API-Key": key}) as api:
        with pytest.raises(RequestsApiError) as info:
            api.get("/echo")
    exc = info.value
    assert key not in _sinks(exc)
    DEFAULT_REDACTOR.expire(now=time.monotonic() + 3600)
    assert key not in _sinks(exc)
    # the masked copy stays masked; the response keeps the real request (as requests does)
    assert key not in repr(exc.request.headers)


def test_closed_session_reused_after_the_grace_period_masks_again(upstream: Upstream) -> None:
    """close(), the grace runs out, the session sends again with the same cached headers."""
    upstream.script("/echo", Echo(401))
    key = _key()
    api = Session(base_url=upstream.url)
    api.headers["X-API-Key"] = key
    with pytest.raises(RequestsApiError):
        api.get("/echo")
    api.close()
    DEFAULT_REDACTOR.expire(now=time.monotonic() + 3600)
    with pytest.raises(RequestsApiError) as info:
        api.get("/echo")
    api.close()
    assert key not in _sinks(info.value)


def test_wait_polling_another_origin_sends_no_session_credential(
    upstream: Upstream, other_upstream: Upstream
) -> None:
    """A Location on another origin: the seed-style session.headers key is not sent there."""
    key = _key()
    upstream.script("/jobs", Reply(202, {}, {"Location": f"{other_upstream.url}/status"}))
    other_upstream.script("/status", Reply(200, {"done": True}))
    with Session(base_url=upstream.url) as api:
        api.headers["X-API-Key"] = key
        api.headers["Authorization"] = f"Bearer {key}"
        submitted = api.post("/jobs")
        api.wait(submitted, until=lambda r: r.json().get("done"), interval=0.0)
    assert other_upstream.hits("/status") >= 1
    assert all(key not in repr(seen.headers) for seen in other_upstream.seen)


@pytest.mark.parametrize("base", [True, False])
def test_redirect_to_another_port_strips_auth_and_session_headers(
    upstream: Upstream, other_upstream: Upstream, base: bool
) -> None:
    """auth= and session.headers credentials never follow a redirect to another port."""
    key, password = _key(), _key()
    upstream.script("/go", Reply(302, b"", {"Location": f"{other_upstream.url}/landing"}))
    other_upstream.script("/landing", Reply(200, b"ok"))
    api = Session(base_url=upstream.url) if base else Session()
    url = "/go" if base else f"{upstream.url}/go"
    with api:
        api.headers["X-API-Key"] = key
        resp = api.get(url, auth=("user", password))
        assert resp.status_code == 200
    other = repr([s.headers for s in other_upstream.seen])
    assert other_upstream.hits("/landing") == 1
    assert key not in other and "Authorization" not in other


@pytest.mark.parametrize("base", [True, False])
def test_next_sent_by_hand_strips_credentials(
    upstream: Upstream, other_upstream: Upstream, base: bool
) -> None:
    """allow_redirects=False, then resp.next sent manually to another port."""
    key = _key()
    upstream.script("/go", Reply(302, b"", {"Location": f"{other_upstream.url}/landing"}))
    other_upstream.script("/landing", Echo(401))
    api = Session(base_url=upstream.url) if base else Session()
    url = "/go" if base else f"{upstream.url}/go"
    with api:
        api.headers["X-API-Key"] = key
        api.auth_headers = {"X-Service": key + "x"}
        resp = api.get(url, allow_redirects=False)
        assert resp.next is not None
        try:
            api.send(resp.next)
        except RequestsApiError as exc:
            assert key not in _sinks(exc)
    other = repr([s.headers for s in other_upstream.seen])
    assert other_upstream.hits("/landing") == 1
    assert key not in other


def test_requests_session_redirect_reference(upstream: Upstream, other_upstream: Upstream) -> None:
    """Reference: plain requests strips Authorization to another port too (sanity)."""
    upstream.script("/go", Reply(302, b"", {"Location": f"{other_upstream.url}/landing"}))
    with requests.Session() as plain:
        plain.get(f"{upstream.url}/go", auth=("u", "p"))
    assert "Authorization" not in other_upstream.seen[-1].headers


def test_wait_errors_carry_a_masked_request(upstream: Upstream) -> None:
    """WaitFailed / WaitTimeout: ``.request`` is the masked copy, as every error's is."""
    key = _key()
    upstream.script("/status", Reply(200, {"state": "failed"}))
    with Session(base_url=upstream.url, sleep=lambda _s: None) as api:
        api.headers["X-API-Key"] = key
        api.auth_headers = {"X-Service": key + "svc"}
        with pytest.raises(WaitFailed) as failed:
            api.wait("/status", until=lambda r: False, fail_when=lambda r: True, interval=0.0)
        with pytest.raises(WaitTimeout) as timed_out:
            api.wait("/status", until=lambda r: False, interval=0.0, deadline=0.05)
    DEFAULT_REDACTOR.expire(now=time.monotonic() + 3600)
    for exc in (failed.value, timed_out.value):
        assert exc.response is not None
        assert key not in _sinks(exc)
        assert exc.request is not exc.response.request


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    """The spelling echo server of ``tests/echo_servers.py``."""
    server = EchoServer()
    yield server
    server.close()


def _sdk_texts(otel: Otel) -> str:
    out = []
    for span in otel.spans():
        out.append(span.name)
        out.append(repr(dict(span.attributes or {})))
        out.append(repr(span.status.description))
        for event in span.events:
            out.append(event.name + repr(dict(event.attributes or {})))
    data = otel.reader.get_metrics_data()
    out.append(data.to_json() if data is not None else "")
    return "\n".join(out)


@pytest.mark.parametrize("form", ["plain", "json", "percent", "b64"])
def test_wait_on_an_operation_location_echoing_the_key_is_masked(
    echo_server: EchoServer, otel: Otel, form: str
) -> None:
    """The job's poll URL spells the key: span, metrics, logs and the error are masked."""
    key = _key()
    stream = io.StringIO()
    handler = configure_logging("DEBUG", json=True, stream=stream)
    try:
        with Session(base_url=echo_server.url, sleep=lambda _s: None, **otel.providers()) as api:
            api.headers["X-API-Key"] = key
            query = {"where": "operation", "status": "202", "form": form, "seed": "3"}
            submitted = api.post("/echo", params=query)
            with pytest.raises(WaitTimeout) as info:
                api.wait(submitted, until=lambda r: False, interval=0.0, deadline=0.05)
            structlog.get_logger("attack").error("wait failed", error=str(info.value))
            logging.getLogger("attack").error("wait failed %s", info.value.response.url)
    finally:
        logging.getLogger().removeHandler(handler)
    assert info.value.response is not None and "echo=" in info.value.response.url
    texts = "\n".join([_sdk_texts(otel), stream.getvalue(), _sinks(info.value)])
    assert key not in texts
    for view in views(texts):
        assert key not in view


@pytest.mark.parametrize("rotated", [False, True])
def test_request_prepared_before_close_sent_after_the_grace_is_masked(
    upstream: Upstream, rotated: bool
) -> None:
    """prepare_request, close(), the grace runs out, then send(): its auth header is known."""
    upstream.script("/echo", Echo(401))
    key = _key()
    api = Session(base_url=upstream.url, auth_headers={"X-Service": key})
    prepared = api.prepare_request(requests.Request("GET", f"{upstream.url}/echo"))
    if rotated:
        api.auth_headers = {"X-Service": _key()}
    api.close()
    DEFAULT_REDACTOR.expire(now=time.monotonic() + 3600)
    stream = io.StringIO()
    handler = configure_logging(json=True, stream=stream)
    try:
        resp = api.send(prepared)
        structlog.get_logger("attack").error("rejected", body=resp.text)
    finally:
        logging.getLogger().removeHandler(handler)
        api.close()
    assert key in upstream.seen[-1].headers["X-Service"]
    assert key not in stream.getvalue()


def test_digest_request_prepared_before_close_sent_after_the_grace_is_masked(
    echo_server: EchoServer,
) -> None:
    """A Digest password (never in a header) of a request prepared before close()."""
    from requests.auth import HTTPDigestAuth

    password = _key()
    echo_server.state.digest_password = password
    api = Session(base_url=echo_server.url)
    api.auth = HTTPDigestAuth("user", password)
    prepared = api.prepare_request(requests.Request("GET", f"{echo_server.url}/echo?h=digest"))
    api.close()
    DEFAULT_REDACTOR.expire(now=time.monotonic() + 3600)
    stream = io.StringIO()
    handler = configure_logging(json=True, stream=stream)
    try:
        resp = api.send(prepared)
        structlog.get_logger("attack").error("rejected", body=resp.text)
    finally:
        logging.getLogger().removeHandler(handler)
        api.close()
    assert password in resp.text
    assert password not in stream.getvalue()


def test_userinfo_request_prepared_before_close_sent_after_the_grace_is_masked(
    echo_server: EchoServer,
) -> None:
    """URL userinfo of a request prepared before close(): its password is known at send."""
    password = _key()
    api = Session()
    host = echo_server.url.replace("http://", "")
    url = f"http://user:{password}@{host}/echo?h=Authorization&part=password"
    prepared = api.prepare_request(requests.Request("GET", url))
    api.close()
    DEFAULT_REDACTOR.expire(now=time.monotonic() + 3600)
    stream = io.StringIO()
    handler = configure_logging(json=True, stream=stream)
    try:
        resp = api.send(prepared)
        structlog.get_logger("attack").error("rejected", body=resp.text, url=prepared.url)
    finally:
        logging.getLogger().removeHandler(handler)
        api.close()
    assert password in resp.text
    assert password not in stream.getvalue()


def test_idempotency_key_naming_an_auth_header_records_it_masked(
    upstream: Upstream, otel: Otel
) -> None:
    """idempotency_key pointed at an auth header the name check cannot know."""
    upstream.script("/jobs", Echo(401))
    key = _key()
    with Session(
        base_url=upstream.url,
        auth_headers={"X-Service": key},
        idempotency_key="X-Service",
        **otel.providers(),
    ) as api:
        with pytest.raises(RequestsApiError) as info:
            api.post("/jobs", json={"n": 1})
    assert upstream.seen[-1].headers["X-Service"] == key
    assert key not in _sdk_texts(otel) + _sinks(info.value)


def test_idempotency_key_refuses_a_credential_name_without_echoing() -> None:
    """A sensitive name is refused with a typed error naming the argument."""
    from observable_session import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="idempotency_key"):
        Session(idempotency_key="X-API-Key")


def test_breaker_and_budget_errors_after_an_echo_are_masked(upstream: Upstream, otel: Otel) -> None:
    """An echoing 503 trips the breaker: both errors, spans and metrics hold no key."""
    from observable_session import CircuitBreaker, CircuitOpenError, RetryBudget

    upstream.script("/jobs", Echo(503))
    key = _key()
    breaker = CircuitBreaker(failure_ratio=0.5, minimum_throughput=1, break_duration=60.0)
    with Session(
        base_url=upstream.url,
        auth_headers={"X-Service": key},
        circuit_breaker=breaker,
        retry_budget=RetryBudget(),
        sleep=lambda _s: None,
        **otel.providers(),
    ) as api:
        api.headers["Authorization"] = f"Bearer {key}z"
        with pytest.raises(RequestsApiError) as first:
            api.get("/jobs")
        with pytest.raises(CircuitOpenError) as second:
            api.get("/jobs")
    DEFAULT_REDACTOR.expire(now=time.monotonic() + 3600)
    texts = _sdk_texts(otel) + _sinks(first.value) + _sinks(second.value)
    assert key in repr(upstream.seen[-1].headers)
    assert key not in texts
