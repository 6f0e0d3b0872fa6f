"""Leaks found by hunting the places a credential sits and the sinks it reaches, end to end.

Each test fails on the code before its fix: a loopback server echoes what the session put on
the wire, and every sink (the error's ``str``, ``repr``, ``args``, pickle and traceback, the
structlog line) is read for the value.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import structlog
from requests import PreparedRequest
from requests.auth import AuthBase, HTTPDigestAuth

from observable_session import ApiHTTPError, Session
from observable_session.logs import configure_logging
from observable_session.redaction import DEFAULT_REDACTOR
from tests.conftest import Otel, Reply, Upstream


class _Owner:
    """Something that owns secrets registered by the test itself."""


def _sinks(error: ApiHTTPError) -> dict[str, str]:
    """Every text the error shows: ``str``, ``repr``, ``args``, pickle, traceback."""
    return {
        "str": str(error),
        "repr": repr(error),
        "args": repr(error.args),
        "pickle": repr(pickle.loads(pickle.dumps(error)).__dict__),
        "traceback": "".join(traceback.format_exception(error)),
    }


def _logged(**fields: Any) -> str:
    """What ``configure_logging()``'s JSON chain writes for an event with ``fields``."""
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    try:
        structlog.get_logger("app").error("job failed", **fields)
    finally:
        structlog.reset_defaults()
    return stream.getvalue()


def _assert_clean(secret: str, error: ApiHTTPError) -> None:
    for sink, text in _sinks(error).items():
        assert secret not in text, sink
    response = error.response
    assert response is not None
    line = _logged(error=str(error), body=response.text, exc_info=error)
    assert secret not in line


# -- Digest: the Authorization header the auth handler builds -------------------------------


class _DigestEcho(BaseHTTPRequestHandler):
    """Challenges, then rejects the Digest answer quoting the Authorization header it got."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        got = self.headers.get("Authorization") or ""
        if not got.startswith("Digest "):
            status, body = 401, b"{}"
            extra = {"WWW-Authenticate": 'Digest realm="jobs", nonce="0a1b2c3d4e5f", qop="auth"'}
        else:
            status, body, extra = 403, json.dumps({"message": f"bad: {got}"}).encode(), {}
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def digest_url() -> Iterator[str]:
    """A loopback server that runs a Digest challenge and echoes the answer."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DigestEcho)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_digest_answer_the_auth_handler_sent_is_masked(digest_url: str) -> None:
    """The Digest ``response=`` (a password-derived proof, replayable) echoed in a 403."""
    with Session(base_url=digest_url, retries_total=0) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.get("/jobs", auth=HTTPDigestAuth("alice", "Digest-pass-0123456789"))
        response = caught.value.response
        assert response is not None
        match = re.search(r'response=\\"([0-9a-f]{32})', response.text)
        assert match is not None
        proof = match.group(1)
        _assert_clean(proof, caught.value)
    assert "Digest-pass-0123456789" not in str(caught.value)


# -- sensitive-named query parameters the session sends --------------------------------------


@pytest.mark.parametrize("name", ["api_key", "access_token", "client_secret"])
def test_a_sensitive_query_parameter_echoed_in_the_body_is_masked(
    upstream: Upstream, name: str
) -> None:
    """``params={"api_key": key}`` puts the key on the wire; a 401 echoing it shows it."""
    key = "QueryK3y-0123456789abcdef"
    upstream.script("/jobs", Reply(401, {"message": f"{name} not valid ({key})"}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.get("/jobs", params={name: key})
        _assert_clean(key, caught.value)


def test_a_percent_encoded_query_secret_is_masked_as_sent_and_decoded(upstream: Upstream) -> None:
    """The value goes on the wire percent-encoded; the server echoes it decoded."""
    key = "Qk3y/0123+456789=abc"
    upstream.script("/jobs", Reply(401, {"message": f"not valid ({key})"}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.get("/jobs", params={"token": key})
        _assert_clean(key, caught.value)


def test_a_token_a_redirect_put_in_the_query_is_masked_once_sent(upstream: Upstream) -> None:
    """A redirect's ``Location`` hands a token the session then sends: echoed, it is masked."""
    token = "Redir3ct-t0ken-0123456789"
    upstream.script("/start", Reply(302, b"", {"Location": f"/landing?refresh_token={token}"}))
    upstream.script("/landing", Reply(401, {"message": f"expired: {token}"}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.get("/start")
        _assert_clean(token, caught.value)


# -- sensitive-named fields of a form or JSON body the session sends -------------------------


def test_a_client_secret_in_a_form_body_echoed_by_a_token_endpoint_is_masked(
    upstream: Upstream,
) -> None:
    """An OAuth token request (``data={"client_secret": ...}``) echoed in a 401."""
    secret = "Cl1ent-s3cret-0123456789"
    upstream.script("/token", Reply(401, {"message": f"client rejected ({secret})"}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.post("/token", data={"client_id": "jobs", "client_secret": secret})
        _assert_clean(secret, caught.value)


def test_a_password_nested_in_a_json_body_echoed_back_is_masked(upstream: Upstream) -> None:
    """``json={"login": {"password": ...}}`` echoed in a 400's message."""
    password = "J50n-passw0rd-0123456789"
    upstream.script("/login", Reply(400, {"message": f"weak ({password})"}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.post("/login", json={"login": {"user": "alice", "password": password}})
        _assert_clean(password, caught.value)


def test_form_pairs_with_a_sensitive_name_are_masked(upstream: Upstream) -> None:
    """``data=[("grant_type", ...), ("refresh_token", ...)]``: pairs, not a mapping."""
    token = "R3fresh-t0ken-0123456789"
    upstream.script("/token", Reply(400, {"message": f"unknown grant ({token})"}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.post("/token", data=[("grant_type", "refresh"), ("refresh_token", token)])
        _assert_clean(token, caught.value)


def test_an_encoded_form_body_with_a_sensitive_name_is_masked(upstream: Upstream) -> None:
    """``data="grant_type=password&password=..."``: a form the caller encoded."""
    password = "F0rm-passw0rd/0123+456"
    upstream.script("/token", Reply(400, {"message": f"rejected ({password})"}))
    body = "grant_type=password&password=" + password.replace("/", "%2F").replace("+", "%2B")
    with Session(base_url=upstream.url, retries_total=0) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.post("/token", data=body)
        _assert_clean(password, caught.value)


# -- credentials masked from the moment the session is given them ---------------------------


def test_a_key_given_in_headers_is_masked_before_the_first_request(upstream: Upstream) -> None:
    """``Session(headers={"X-API-Key": key})`` (the seed's way): the app logs its config."""
    key = "Ctor-h3ader-k3y-0123456789"
    with Session(base_url=upstream.url, headers={"X-API-Key": key}) as api:
        line = _logged(config=str(api.headers), event_detail=repr(dict(api.headers)))
    assert key not in line


def test_a_key_in_a_headers_mapping_assigned_is_masked_before_the_first_request(
    upstream: Upstream,
) -> None:
    """``session.headers = {...}`` replaces the mapping: masked from the assignment on."""
    key = "Assign-h3ader-k3y-0123456789"
    with Session(base_url=upstream.url) as api:
        api.headers = {"X-Auth-Token": key, "Accept": "*/*"}
        line = _logged(config=str(api.headers))
    assert key not in line


# -- a credential in the route: span names, url.template and metric points -----------------


def test_a_token_in_the_base_path_is_masked_in_span_names_and_metric_points(
    upstream: Upstream, otel: Otel
) -> None:
    """``base_url=".../bot<token>/"`` (chat bots, webhooks): the route carries the token.

    Registered with the redactor, it was masked in ``url.full`` but not in the span name,
    ``url.template`` or the metric points, which pass no redactor on their way out.
    """
    token = "123456:AAE-bot-t0ken-0123456789"
    owner = _Owner()
    DEFAULT_REDACTOR.add_secrets(owner, [token])
    base = f"{upstream.url}/bot{token}/"
    with Session(base_url=base, retries_total=0, **otel.providers()) as api:
        api.post("sendMessage", url_template="sendMessage")
        api.wait("sendMessage", until=lambda response: True, url_template="sendMessage")
    spans = otel.spans()
    assert {s.name for s in spans} == {
        "POST /botREDACTED/sendMessage",
        "WAIT /botREDACTED/sendMessage",
        "GET /botREDACTED/sendMessage",
    }
    for span in spans:
        assert token not in repr(dict(span.attributes or {}))
    data = otel.reader.get_metrics_data()
    assert data is not None and token not in data.to_json()
    DEFAULT_REDACTOR.forget(owner, grace=False)


# -- the error's masked request copy: its body too -------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"client_id": "jobs", "client_secret": "B0dy-s3cret-0123456789"}},
        {"json": {"login": {"password": "B0dy-s3cret-0123456789"}}},
        {"data": "grant_type=x&refresh_token=B0dy-s3cret-0123456789"},
    ],
)
def test_the_errors_request_copy_holds_no_body_credential(
    upstream: Upstream, body: dict[str, Any]
) -> None:
    """``e.request`` outlives the session's masking: its body is masked like its headers."""
    upstream.script("/token", Reply(400, {"message": "bad request"}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.post("/token", **body)
    request = caught.value.request
    assert request is not None and request.body
    text = request.body.decode() if isinstance(request.body, bytes) else request.body
    assert "B0dy-s3cret-0123456789" not in text
    assert "REDACTED" in text


def test_a_short_field_a_server_redirects_to_does_not_blank_a_word_out_of_logs(
    upstream: Upstream,
) -> None:
    """``Location: /landing?token=true``: "true" is sent, but not masked everywhere after."""
    upstream.script("/start", Reply(302, b"", {"Location": "/landing?token=true"}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        api.get("/start")
        line = _logged(detail="dry_run=true")
    assert '"detail": "dry_run=true"' in line


class _SigningAuth(AuthBase):
    """Signs like AWS SigV4: an Authorization value with ``Signature=<hex>``."""

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/s3/aws4_request, "
            f"SignedHeaders=host;x-amz-date, Signature={SIGNATURE}"
        )
        return request


SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"


def test_a_signature_an_s3_error_quotes_alone_is_masked(upstream: Upstream) -> None:
    """S3's ``SignatureDoesNotMatch`` body quotes ``<SignatureProvided>`` on its own."""
    body = (
        "<Error><Code>SignatureDoesNotMatch</Code>"
        f"<SignatureProvided>{SIGNATURE}</SignatureProvided></Error>"
    )
    upstream.script("/bucket", Reply(403, body, {"Content-Type": "application/xml"}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.get("/bucket", auth=_SigningAuth())
        _assert_clean(SIGNATURE, caught.value)


# -- the error message's own trimming --------------------------------------------------------


def test_a_basic_pair_ending_in_a_unicode_blank_is_masked_in_a_text_body(
    upstream: Upstream,
) -> None:
    """The message's text was stripped before masking: ``str.strip`` takes U+00A0 too.

    A UTF-8 body read as latin-1 (``text/plain`` without a charset) ends the decoded Basic
    pair with ``Â\\xa0``; stripped to ``Â``, its reading lost the last character and was no
    form of the pair any more. Found by the proof's draws (``Credentials("Basic", ...)``).
    """
    pair = "u9:\u012d\u01333\xa0"
    auth = "Basic " + base64.b64encode(pair.encode()).decode()
    upstream.script(
        "/jobs", Reply(401, b"rejected " + pair.encode(), {"Content-Type": "text/plain"})
    )
    with Session(
        base_url=upstream.url, retries_total=0, auth_headers={"Authorization": auth}
    ) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.get("/jobs")
    shown = pair.encode().decode("latin-1")
    assert shown[3:-2] not in str(caught.value)


def test_a_password_given_as_session_auth_is_masked_before_the_first_request(
    upstream: Upstream,
) -> None:
    """``session.auth = (user, password)``, then the app logs its set-up."""
    password = "S3ssion-auth-pass-0123456789"
    with Session(base_url=upstream.url) as api:
        api.auth = ("alice", password)
        line = _logged(config=str(api.auth))
        assert api.auth == ("alice", password)
    assert password not in line


def test_a_sensitive_form_field_with_several_values_or_a_bytes_name_is_masked(
    upstream: Upstream,
) -> None:
    """``data={b"password": [old, new]}``: requests sends both, under a bytes name."""
    old, new = "Old-passw0rd-0123456789", "New-passw0rd-0123456789"
    upstream.script("/password", Reply(400, {"message": f"reuse of ({old}) as ({new})"}))
    with Session(base_url=upstream.url, retries_total=0) as api:
        with pytest.raises(ApiHTTPError) as caught:
            api.post("/password", data={b"password": [old, new]})
        _assert_clean(old, caught.value)
        _assert_clean(new, caught.value)
