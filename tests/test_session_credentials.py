"""Every credential a session sends is masked in every sink, and held to the origin rule.

Real loopback servers that echo what they received (as JSON with every character escaped,
as HTML entities, percent-encoded, base64, or past the message limit), real logging.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import pickle
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import structlog
from requests.auth import HTTPDigestAuth

from observable_session import ApiHTTPError, RequestsApiError, Session
from observable_session.logs import configure_logging
from observable_session.redaction import DEFAULT_REDACTOR, REDACTED, MaskedException
from tests.conftest import Reply, Upstream


def _json_all(text: str) -> str:
    return "".join(f"\\u{ord(c):04X}" if i % 2 else f"\\u{ord(c):04x}" for i, c in enumerate(text))


def _entities(text: str) -> str:
    out = []
    for i, c in enumerate(text):
        out.append((f"&#{ord(c)};", f"&#x{ord(c):x};", f"&#X{ord(c):X};")[i % 3])
    return "".join(out)


def _percent_mixed(text: str) -> str:
    out = []
    for i, byte in enumerate(text.encode()):
        out.append(f"%{byte:02x}" if i % 2 else f"%{byte:02X}")
    return "".join(out)


#: How the echo server spells a header value back, by path.
SPELLINGS: dict[str, Callable[[str], str]] = {
    "/raw": lambda v: v,
    "/json-escaped": _json_all,
    "/json-slash": lambda v: json.dumps(v).replace("/", "\\/"),
    "/html": html.escape,
    "/entities": _entities,
    "/percent": _percent_mixed,
    "/plus": lambda v: v.replace(" ", "+"),
    "/b64": lambda v: base64.b64encode(v.encode()).decode(),
    "/b64url-nopad": lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("="),
    "/b64-cred": lambda v: base64.b64encode(v.partition(" ")[2].encode()).decode(),
}


def leaks(secret: str, text: str) -> list[str]:
    """The spellings of ``secret`` (raw, or as any echo path spells it) found in ``text``."""
    spelt = {path: spell(secret) for path, spell in SPELLINGS.items()}
    return [path for path, form in spelt.items() if form and form in text]


class EchoServer:
    """A loopback server answering 401 with every request header spelt as the path says."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                headers = dict(self.headers.items())
                server.seen.append(headers)
                path = self.path.split("?")[0]
                if "://" in path:  # absolute-form: we are being used as a proxy
                    path = urlsplit(path).path
                spell = SPELLINGS.get(path, SPELLINGS["/raw"])
                if path == "/long":  # the key straddles the 1000-character message cut
                    key = headers.get("X-API-Key", "")
                    body = ("x" * (1000 - len(key) // 2) + key).encode()
                else:
                    body = "\n".join(f"{k}: {spell(v)}" for k, v in headers.items()).encode()
                self.send_response(401)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.daemon = True
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    """An echoing loopback server."""
    server = EchoServer()
    yield server
    server.close()


def everything(exc: BaseException) -> str:
    """str, repr, the formatted chain and the pickled bytes of an error."""
    return (
        str(exc)
        + repr(exc)
        + "".join(traceback.format_exception(exc))
        + pickle.dumps(exc).decode("latin-1")
    )


def failure(session: Session, path: str, **kwargs: Any) -> str:
    """Everything the 401 error of ``GET path`` shows."""
    with pytest.raises(RequestsApiError) as info:
        session.get(path, **kwargs)
    return everything(info.value)


def quiet(url: str, **kwargs: Any) -> Session:
    kwargs.setdefault("sleep", lambda s: None)
    kwargs.setdefault("retries_total", 0)
    return Session(base_url=url, **kwargs)


# -- 1. rotation race --------------------------------------------------------------------


def test_rotation_race_never_leaks_a_live_key(echo: EchoServer) -> None:
    """One thread rotating every 2 ms, eight sending: no key in any message or log line."""
    stream = io.StringIO()
    handler = configure_logging("DEBUG", json=True, stream=stream)
    keys: list[str] = []
    messages: list[str] = []
    stop = threading.Event()
    try:
        with quiet(echo.url, auth_headers={"X-API-Key": "rot-key-000000-initial"}) as s:
            keys.append(s.auth_headers["X-API-Key"])

            def rotate() -> None:
                n = 0
                while not stop.is_set() and n < 2000:
                    n += 1
                    key = f"rot-key-{n:06d}-{threading.get_ident() % 997:03d}"
                    keys.append(key)
                    s.auth_headers["X-API-Key"] = key
                    stop.wait(0.002)

            def call() -> None:
                for _ in range(50):
                    try:
                        s.get("/raw")
                    except ApiHTTPError as exc:
                        messages.append(everything(exc))

            rotator = threading.Thread(target=rotate)
            rotator.start()
            callers = [threading.Thread(target=call) for _ in range(8)]
            for t in callers:
                t.start()
            for t in callers:
                t.join()
            stop.set()
            rotator.join()
    finally:
        logging.getLogger().removeHandler(handler)
        structlog.reset_defaults()
    assert len(messages) == 400
    sinks = "\n".join(messages) + stream.getvalue()
    assert [k for k in keys if k in sinks] == []


def test_replacing_the_whole_mapping_registers_first(echo: EchoServer) -> None:
    """The new mapping's values are masked from the first request that carries them."""
    with quiet(echo.url, auth_headers={"X-API-Key": "first-mapping-key-1"}) as s:
        s.auth_headers = {"X-API-Key": "second-mapping-key-2"}
        assert "second-mapping-key-2" not in failure(s, "/raw")


# -- 2. rotated-out values ---------------------------------------------------------------


def test_first_value_masked_after_many_rotations() -> None:
    """Hundreds of rotations later, the first value is still masked (no count limit)."""
    with Session(auth_headers={"X-API-Key": "very-first-key-0000"}) as s:
        for n in range(300):
            s.auth_headers["X-API-Key"] = f"rotated-key-{n:05d}"
        del s.auth_headers["X-API-Key"]
        assert DEFAULT_REDACTOR.mask("very-first-key-0000 rotated-key-00150") == (
            f"{REDACTED} {REDACTED}"
        )


# -- 3. after close ----------------------------------------------------------------------


def test_error_handled_after_the_with_block_is_masked(echo: EchoServer) -> None:
    """The README's pattern: the error is printed after the session is closed."""
    error: RequestsApiError | None = None
    try:
        with quiet(echo.url, auth_headers={"X-API-Key": "after-close-key-123"}) as api:
            api.get("/json-escaped")
    except RequestsApiError as exc:
        error = exc
    assert error is not None
    assert "after-close-key-123" not in DEFAULT_REDACTOR.mask("late log line: after-close-key-123")
    assert "after-close-key-123" not in everything(error)


def test_values_of_a_collected_session_stay_masked() -> None:
    """A session dropped without close() leaves its values masked for the grace period."""
    import gc

    s = Session(auth_headers={"X-API-Key": "collected-session-key-1"})
    del s
    gc.collect()
    assert DEFAULT_REDACTOR.mask("collected-session-key-1") == REDACTED


# -- 4. mask before cut ------------------------------------------------------------------


def test_key_straddling_the_message_cut_leaks_no_prefix(echo: EchoServer) -> None:
    """A key echoed across the 1000-character cut leaves none of its characters."""
    key = "straddle-KEY-abcdefghijklmnop"
    with quiet(echo.url, headers={"Accept": "*/*"}, auth_headers={"X-API-Key": key}) as s:
        text = failure(s, "/long")
    assert key[:6] not in text


def test_mask_cut_never_splits_a_secret() -> None:
    """mask_cut masks first, then cuts, at every cut position across a secret."""
    owner = type("Owner", (), {})()
    DEFAULT_REDACTOR.set_secrets(owner, ["cut-secret-0123456789"])
    for pad in range(990, 1001):
        cut = DEFAULT_REDACTOR.mask_cut("y" * pad + "cut-secret-0123456789 tail", 1000)
        assert "cut-sec" not in cut and len(cut) <= 1000
    DEFAULT_REDACTOR.forget(owner, grace=False)


# -- 5. forms, end to end ----------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SPELLINGS))
def test_every_spelling_of_the_key_is_masked(echo: EchoServer, path: str) -> None:
    """A server spelling the header back in any of the forms leaks nothing."""
    value = "Bearer tok+en/with&odd <chars>'é-0123456789"
    with quiet(echo.url, auth_headers={"Authorization": value}) as s:
        text = failure(s, path)
    assert leaks(value, text) == [] and "0123456789" not in text


def test_basic_credential_decoded_is_masked(echo: EchoServer) -> None:
    """Basic's ``user:pass`` and password, decoded by the server, are masked."""
    with quiet(echo.url) as s:
        s.get("/raw", auth=("alice", "hunter2-password"), raise_for_status=False)
    assert DEFAULT_REDACTOR.mask("alice:hunter2-password") == REDACTED
    assert DEFAULT_REDACTOR.mask("pw hunter2-password") == f"pw {REDACTED}"


# -- 6. credentials outside auth_headers -------------------------------------------------


def test_sensitive_session_header_is_masked(echo: EchoServer) -> None:
    """A key kept in session.headers (as the seed did) is masked when echoed."""
    with quiet(echo.url, headers={"X-API-Key": "seed-style-key-123456"}) as s:
        assert leaks("seed-style-key-123456", failure(s, "/json-escaped")) == []


def test_sensitive_call_header_is_masked(echo: EchoServer) -> None:
    """A key given in a call's headers= is masked when echoed."""
    with quiet(echo.url) as s:
        text = failure(s, "/percent", headers={"X-Auth-Token": "call-level-token-98765"})
    assert leaks("call-level-token-98765", text) == []


def test_header_of_a_request_sent_directly_is_masked(echo: EchoServer) -> None:
    """A PreparedRequest built outside the session and sent with send() is covered too."""
    prepared = requests.Request(
        "GET", echo.url + "/json-escaped", headers={"X-API-Key": "direct-send-key-24680"}
    ).prepare()
    with quiet(echo.url) as s:
        response = s.send(prepared)
        from observable_session._failures import http_error

        text = everything(http_error(response))
    assert response.status_code == 401 and leaks("direct-send-key-24680", text) == []


def test_session_auth_password_is_masked(echo: EchoServer) -> None:
    """session.auth Basic: the header, the decoded pair and the password are masked."""
    with quiet(echo.url) as s:
        s.auth = ("bob", "session-auth-pass-42")
        text = failure(s, "/b64")
    header = "Basic " + base64.b64encode(b"bob:session-auth-pass-42").decode()
    assert leaks(header, text) == [] and leaks("session-auth-pass-42", text) == []


def test_digest_password_is_known(echo: EchoServer) -> None:
    """A Digest password never goes on the wire, but is registered all the same."""
    with quiet(echo.url) as s:
        s.get("/raw", auth=HTTPDigestAuth("carol", "digest-pass-7777"), raise_for_status=False)
        assert DEFAULT_REDACTOR.mask("digest-pass-7777") == REDACTED


def test_netrc_credentials_are_masked(
    echo: EchoServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials that came from netrc are masked when echoed."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login dave password netrc-pass-31337\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with quiet(echo.url) as s:
        text = failure(s, "/json-escaped")
    header = "Basic " + base64.b64encode(b"dave:netrc-pass-31337").decode()
    assert "Authorization" in text and leaks(header, text) == []


def test_proxy_userinfo_is_masked(echo: EchoServer) -> None:
    """Proxy URL userinfo (sent as Proxy-Authorization) is masked when echoed."""
    proxy = echo.url.replace("http://", "http://puser:proxy-pass-2468@")
    with quiet("http://upstream.invalid") as s:
        s.proxies = {"http": proxy}
        text = failure(s, "/json-escaped")
    header = "Basic " + base64.b64encode(b"puser:proxy-pass-2468").decode()
    assert "Proxy-Authorization" in text and leaks(header, text) == []


def test_cookie_values_in_the_jar_are_masked(echo: EchoServer) -> None:
    """A cookie in the session's jar is a bearer token: masked when echoed."""
    with quiet(echo.url) as s:
        s.cookies.set("sid", "cookie-session-id-55555", domain="127.0.0.1")
        text = failure(s, "/entities")
    assert "Cookie" in text, text[:2000]
    assert leaks("sid=cookie-session-id-55555", text) == []


def test_cookie_set_by_the_server_is_masked(upstream: Upstream) -> None:
    """A cookie the server set is registered as soon as it is in the jar."""
    upstream.script("/login", Reply(200, "ok", {"Set-Cookie": "sid=server-set-cookie-777"}))
    with quiet(upstream.url) as s:
        s.get("/login")
        assert DEFAULT_REDACTOR.mask("sid was server-set-cookie-777") == f"sid was {REDACTED}"


def test_userinfo_in_base_url_is_refused_without_echoing_it() -> None:
    """base_url with userinfo is refused at construction; the error names no password."""
    from observable_session import InvalidConfigError

    with pytest.raises(InvalidConfigError) as info:
        Session(base_url="https://user:repr-pass-1357@api.example.com/v1/")
    shown = str(info.value) + repr(info.value) + pickle.dumps(info.value).decode("latin-1")
    assert "repr-pass-1357" not in shown  # (a traceback would quote this test's own source)


def test_repr_masks_userinfo_however_base_url_got_it() -> None:
    """repr(session) masks userinfo even in a base URL set behind the validation's back."""
    s = Session(base_url="https://api.example.com/v1/")
    s._base_url = "https://user:repr-pass-2468@api.example.com/v1/"
    assert "repr-pass-2468" not in repr(s)


# -- 6. the origin rule for credential headers -------------------------------------------


def _redirecting(upstream: Upstream, target: str) -> None:
    upstream.script("/go", Reply(302, "", {"Location": target}))


@pytest.mark.parametrize(
    "setup",
    ["session-header", "call-header", "session-auth"],
)
def test_credential_headers_stripped_on_redirect_to_another_port(
    upstream: Upstream, other_upstream: Upstream, setup: str
) -> None:
    """Same host, other port is another origin: no credential header follows."""
    _redirecting(upstream, other_upstream.url + "/landed")
    with quiet(upstream.url) as s:
        kwargs: dict[str, Any] = {}
        if setup == "session-header":
            s.headers["X-API-Key"] = "origin-key-abcdef"
        elif setup == "call-header":
            kwargs["headers"] = {"X-API-Key": "origin-key-abcdef"}
        else:
            s.auth = ("erin", "origin-pass-abcdef")
        s.get("/go", **kwargs)
    landed = other_upstream.seen[-1].headers
    assert {k.lower() for k in landed} & {"x-api-key", "authorization"} == set()
    first = {k.lower() for k in upstream.seen[-1].headers}
    assert first & {"x-api-key", "authorization"}


@pytest.mark.parametrize("name", ["X-Goog-Api-Key", "X-RapidAPI-Key", "X-Auth-Key"])
def test_vendor_key_headers_follow_the_origin_rule_and_are_masked(
    upstream: Upstream, other_upstream: Upstream, echo: EchoServer, name: str
) -> None:
    """Vendors' key headers kept seed-style in session.headers are credentials too."""
    _redirecting(upstream, other_upstream.url + "/landed")
    with quiet(upstream.url) as s:
        s.headers[name] = "vendor-key-0123456789"
        s.get("/go")
    assert name.lower() in {k.lower() for k in upstream.seen[-1].headers}
    assert name.lower() not in {k.lower() for k in other_upstream.seen[-1].headers}
    with quiet(echo.url, headers={name: "vendor-echo-key-97531"}) as s:
        assert leaks("vendor-echo-key-97531", failure(s, "/json-escaped")) == []


def test_credential_headers_not_sent_to_an_absolute_url_of_another_origin(
    upstream: Upstream, other_upstream: Upstream
) -> None:
    """An absolute URL of another origin gets neither session header keys nor auth."""
    with quiet(upstream.url) as s:
        s.headers["X-API-Key"] = "abs-origin-key-123"
        s.auth = ("frank", "abs-origin-pass-123")
        s.get(other_upstream.url + "/elsewhere")
    sent = {k.lower() for k in other_upstream.seen[-1].headers}
    assert sent & {"x-api-key", "authorization"} == set()


def test_auth_origins_receive_credential_headers(
    upstream: Upstream, other_upstream: Upstream
) -> None:
    """An origin listed in auth_origins receives them, on a redirect too."""
    _redirecting(upstream, other_upstream.url + "/landed")
    with quiet(upstream.url, auth_origins=[other_upstream.url]) as s:
        s.headers["X-API-Key"] = "allowed-key-123456"
        s.get("/go")
    assert other_upstream.seen[-1].headers.get("X-API-Key") == "allowed-key-123456"


def test_jar_cookies_keep_their_domain_rules(upstream: Upstream) -> None:
    """A cookie for the host still follows a same-host redirect (RFC 6265, not origin)."""
    upstream.script("/go", Reply(302, "", {"Location": "/landed"}))
    with quiet(upstream.url) as s:
        s.cookies.set("sid", "jar-cookie-value-1", domain="127.0.0.1")
        s.get("/go")
    assert "jar-cookie-value-1" in upstream.seen[-1].headers.get("Cookie", "")


# -- shape -------------------------------------------------------------------------------


def test_masked_exception_pickles_with_its_chain() -> None:
    """A MaskedException crosses a process boundary with its message and cause."""
    copy = MaskedException("x.Error", "masked")
    copy.__cause__ = MaskedException("y.Cause", "also masked")
    back = pickle.loads(pickle.dumps(copy))
    assert (str(back), back.original_type, str(back.__cause__)) == (
        "x.Error: masked",
        "x.Error",
        "y.Cause: also masked",
    )


def test_redaction_does_not_import_telemetry() -> None:
    """redaction stands below everything: none of its modules imports telemetry."""
    import ast
    import pathlib

    import observable_session.redaction as package

    root = pathlib.Path(package.__file__).parent
    imported = set()
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                imported.add(("." * node.level) + (node.module or ""))
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert [m for m in imported if m.startswith(("..", "observable_session"))] == []


def test_requests_session_unaffected() -> None:
    """Sanity: a plain requests.Session is untouched by the registry."""
    assert isinstance(requests.Session(), requests.Session)


def test_a_header_http_client_cannot_encode_is_masked_in_the_error(echo: EchoServer) -> None:
    """A non-latin-1 key in session.headers: http.client refuses it, the error hides it."""
    key = "Zq-\u20ac-unencodable-key-1234"
    with quiet(echo.url, headers={"X-API-Key": key}) as s:
        with pytest.raises(UnicodeEncodeError) as info:
            s.get("/raw")
    assert key not in everything(info.value) and info.value.__context__ is None


def test_header_names_of_str_and_bytes_subclasses_are_sent(upstream: Upstream) -> None:
    """Header names may be bytes or str subclasses, as requests allows (its own suite checks)."""

    class MyString(str):
        pass

    class MyBytes(bytes):
        pass

    upstream.script("/h", Reply(200, b"ok"))
    with Session(retries_total=0) as s:
        for headers in (
            {MyString("x-custom"): "mine"},
            {MyBytes(b"x-custom"): b"mine"},
            {MyBytes(b"X-API-Key"): b"bytes-named-key-1234"},
        ):
            s.get(f"{upstream.url}/h", headers=headers)
    assert [r.headers.get("x-custom") for r in upstream.seen[:2]] == ["mine", "mine"]
    assert upstream.seen[2].headers.get("X-API-Key") == "bytes-named-key-1234"
    assert "bytes-named-key-1234" not in DEFAULT_REDACTOR.mask("echo: bytes-named-key-1234")


def test_a_bare_value_error_quoting_a_credential_leaves_the_session_masked() -> None:
    """http.client's ``Invalid header value b'...'`` (requests 2.31 lets an LF by) is masked."""
    from observable_session._credentials import masked_value_error

    key = "value-error-key-5678"
    with Session(auth_headers={"X-API-Key": key}):
        copy = masked_value_error(ValueError(f"Invalid header value {(key + chr(10)).encode()!r}"))
        assert copy is not None and type(copy) is ValueError
        assert key not in str(copy) and key not in repr(copy.args)
        assert masked_value_error(ValueError("nothing secret here")) is None
        assert masked_value_error(KeyError(key)) is None


def test_a_known_value_refreshed_while_another_thread_evicts_it_stays_registered() -> None:
    """Refreshing a value's last-sent mark cannot race its eviction: known means registered."""
    from observable_session import _credentials

    credentials = _credentials.Credentials()
    first = "race-first-value-0000"
    credentials.register([first])
    budget = credentials._budgets[0]
    filler = [f"race-filler-{i:06d}-" + "x" * 200 for i in range(_credentials.MAX_BYTES // 200)]

    class Interleaving(dict):  # type: ignore[type-arg]
        """Lets another thread fill the budget (evicting ``first``) inside the known-check."""

        armed = True

        def __contains__(self, key: object) -> bool:
            found = super().__contains__(key)
            if self.armed and key == first:
                self.armed = False
                other = threading.Thread(target=credentials.register, args=(filler,))
                other.start()
                other.join(0.5)  # with the lock held across the step, it waits for us
                Interleaving.other = other  # type: ignore[attr-defined]
            return found

    budget.values = Interleaving(budget.values)
    credentials.register([first])
    Interleaving.other.join(5)  # type: ignore[attr-defined]
    for value in list(budget.values):
        assert DEFAULT_REDACTOR.mask(f"echo {value} .") != f"echo {value} .", value[:20]
    credentials.close()
