"""The Session against real loopback servers: API, retries, auth, errors, seed defects."""

from __future__ import annotations

import io
import pickle
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

import observable_session
from observable_session import (
    ApiConnectionError,
    ApiHTTPError,
    ApiReadTimeout,
    DeadlineExceeded,
    InvalidConfigError,
    InvalidURLError,
    RequestsApiError,
    Session,
)
from tests.conftest import Echo, Reply, Reset, Truncate, Upstream

KEY = "sk-test-0123456789abcdef"


def make(upstream: Upstream, sleeps: list[float] | None = None, **kwargs: Any) -> Session:
    """A session on the upstream that records its sleeps instead of sleeping."""
    record = sleeps if sleeps is not None else []
    kwargs.setdefault("auth_headers", {"X-API-Key": KEY})
    return Session(base_url=upstream.url, sleep=record.append, **kwargs)


def full_traceback(exc: BaseException) -> str:
    """str, repr and the formatted traceback with every chained cause."""
    return str(exc) + repr(exc) + "".join(traceback.format_exception(exc))


# -- the seed's API ---------------------------------------------------------------------


def test_is_a_requests_session() -> None:
    """Session is a real requests.Session subclass."""
    assert issubclass(Session, requests.Session)


def test_has_every_requests_session_method() -> None:
    """Every public method of requests.Session is there."""
    missing = [
        n for n in dir(requests.Session) if not n.startswith("_") and not hasattr(Session, n)
    ]
    assert missing == []


def test_seed_signature_defaults() -> None:
    """The seed's keyword arguments and defaults."""
    s = Session()
    assert s.base_url is None
    assert (s.retry_policy.total, s.retry_policy.connect, s.retry_policy.backoff_factor) == (
        2,
        1,
        0.5,
    )


def test_positional_args_are_passed_through() -> None:
    """*args and **kwargs reach requests.Session."""
    assert Session().max_redirects == requests.Session().max_redirects


def test_relative_url_joins_base(upstream: Upstream) -> None:
    """A relative URL is joined to base_url."""
    with make(upstream) as s:
        assert s.get("jobs").status_code == 200
    assert upstream.seen[0].path == "/jobs"


def test_default_user_agent(upstream: Upstream) -> None:
    """User-Agent is observable-session/<version> by default."""
    with make(upstream) as s:
        s.get("/x")
    assert upstream.seen[0].headers["User-Agent"] == (
        f"observable-session/{observable_session.__version__}"
    )


def test_callers_user_agent_is_kept() -> None:
    """A User-Agent passed in headers wins over ours."""
    assert Session(headers={"user-agent": "mine/1"}).headers["User-Agent"] == "mine/1"


def test_add_user_agent_appends_once() -> None:
    """add_user_agent appends a token only once."""
    s = Session(headers={"User-Agent": "base/1"})
    s.add_user_agent("tool/2")
    s.add_user_agent("tool/2")
    assert s.headers["User-Agent"] == "base/1 tool/2"


def test_add_user_agent_compares_tokens_not_substrings() -> None:
    """x/0.7.1 is added even when x/0.7.10 is there (a seed defect)."""
    s = Session(headers={"User-Agent": "x/0.7.10"})
    s.add_user_agent("x/0.7.1")
    assert s.headers["User-Agent"] == "x/0.7.10 x/0.7.1"


def test_add_user_agent_is_thread_safe() -> None:
    """Concurrent add_user_agent calls lose no token and add none twice."""
    s = Session(headers={"User-Agent": "base/1"})
    threads = [threading.Thread(target=s.add_user_agent, args=(f"t{i % 10}/1",)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tokens = s.headers["User-Agent"].split()
    assert sorted(tokens) == sorted({"base/1", *(f"t{i}/1" for i in range(10))})


def test_headers_then_auth_headers(upstream: Upstream) -> None:
    """headers are sent, then auth_headers on top of them."""
    with make(upstream, headers={"X-Team": "a", "X-API-Key": "overridden"}) as s:
        s.get("/x")
    assert upstream.seen[0].headers["X-Team"] == "a"
    assert upstream.seen[0].headers["X-API-Key"] == KEY


# -- auth header validation and masking -------------------------------------------------


@pytest.mark.parametrize("value", [None, 12345, "", "abc", "ab\r\ncd", "abcd\n"])
def test_bad_auth_values_are_refused_naming_the_header(value: object) -> None:
    """None, ints, short or CR/LF values fail at construction, naming the header only."""
    with pytest.raises(InvalidConfigError, match="X-API-Key") as info:
        Session(auth_headers={"X-API-Key": value})  # type: ignore[dict-item]
    if isinstance(value, str) and value:
        assert value.strip() not in str(info.value)


def test_repr_masks_auth_values() -> None:
    """repr(session) and repr(session.auth_headers) show REDACTED."""
    s = Session(base_url="https://api.example.com", auth_headers={"X-API-Key": KEY})
    assert KEY not in repr(s) and "REDACTED" in repr(s)
    assert repr(s.auth_headers) == "{'X-API-Key': 'REDACTED'}"


def test_rotated_credential_is_sent(upstream: Upstream) -> None:
    """Assigning a new value takes effect on the next request."""
    with make(upstream) as s:
        s.auth_headers["X-API-Key"] = "rotated-key-987"
        s.get("/x")
    assert upstream.seen[0].headers["X-API-Key"] == "rotated-key-987"


def test_rotated_credential_is_masked(upstream: Upstream) -> None:
    """A rotated value is masked in errors at once."""
    upstream.script("/e", Echo(401))
    with make(upstream) as s:
        s.auth_headers["X-API-Key"] = "rotated-key-987"
        with pytest.raises(ApiHTTPError) as info:
            s.get("/e")
    assert "rotated-key-987" not in full_traceback(info.value)


# -- where auth headers go --------------------------------------------------------------


def test_auth_not_sent_to_other_origin(upstream: Upstream, other_upstream: Upstream) -> None:
    """With base_url set, an absolute URL elsewhere gets no auth header."""
    with make(upstream) as s:
        s.get(other_upstream.url + "/presigned")
    assert "X-API-Key" not in other_upstream.seen[0].headers


def test_auth_origins_allows_more(upstream: Upstream, other_upstream: Upstream) -> None:
    """auth_origins lets the caller allow another origin."""
    with make(upstream, auth_origins=[other_upstream.url]) as s:
        s.get(other_upstream.url + "/x")
    assert other_upstream.seen[0].headers["X-API-Key"] == KEY


def test_every_auth_header_stripped_on_cross_origin_redirect(
    upstream: Upstream, other_upstream: Upstream
) -> None:
    """A redirect to another host carries no auth header (requests strips only Authorization)."""
    upstream.script("/r", Reply(302, headers={"Location": other_upstream.url + "/landing"}))
    with make(upstream, auth_headers={"X-API-Key": KEY, "Authorization": "Bearer abcdef"}) as s:
        assert s.get("/r").status_code == 200
    landing = other_upstream.seen[0].headers
    assert "X-API-Key" not in landing and "Authorization" not in landing


def test_same_origin_redirect_keeps_auth(upstream: Upstream) -> None:
    """A redirect within the origin keeps the auth header."""
    upstream.script("/r", Reply(302, headers={"Location": "/there"}))
    with make(upstream) as s:
        s.get("/r")
    assert upstream.seen[1].headers["X-API-Key"] == KEY


def test_leading_tab_is_never_sent(upstream: Upstream, other_upstream: Upstream) -> None:
    """A leading tab before an absolute URL is refused: nothing is sent anywhere."""
    with make(upstream) as s, pytest.raises(InvalidURLError):
        s.get("\t" + other_upstream.url + "/steal")
    assert upstream.hits() == 0 and other_upstream.hits() == 0


def test_base_url_setter_validates() -> None:
    """Setting base_url to a non-http(s) URL is refused."""
    s = Session()
    with pytest.raises(InvalidConfigError):
        s.base_url = "file:///etc/passwd"


# -- retries ----------------------------------------------------------------------------


def test_503_503_200_makes_three_attempts(upstream: Upstream) -> None:
    """Two forcelist statuses, then success: three hits, sleeps 0.5 and 1.0."""
    upstream.script("/f", Reply(503), Reply(503), Reply(200))
    sleeps: list[float] = []
    with make(upstream, sleeps) as s:
        assert s.get("/f").status_code == 200
    assert upstream.hits("/f") == 3 and sleeps == [0.5, 1.0]


def test_retries_never_stack(upstream: Upstream) -> None:
    """The adapters do not retry: retries_total=2 means exactly 3 attempts."""
    upstream.script("/f", Reply(503))
    with make(upstream) as s:
        for adapter in s.adapters.values():
            assert isinstance(adapter, HTTPAdapter) and adapter.max_retries.total == 0
        with pytest.raises(ApiHTTPError):
            s.get("/f")
    assert upstream.hits("/f") == 3


def test_mounting_a_retrying_adapter_is_refused() -> None:
    """An adapter with its own retries would stack with ours."""
    with pytest.raises(InvalidConfigError):
        Session().mount("https://", HTTPAdapter(max_retries=3))


def test_exhausted_error_carries_history(upstream: Upstream) -> None:
    """After the budget, the error has the response, status, attempts and history."""
    upstream.script("/f", Reply(503, {"message": "busy"}))
    with make(upstream) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/f")
    err = info.value
    assert err.status_code == 503 and err.attempts == 3 and err.response is not None
    assert [h.status_code for h in err.history] == [503, 503, 503]
    assert [h.backoff_s for h in err.history] == [0.5, 1.0, 0.0]
    assert "busy" in str(err)
    assert err.error_type == "503"


def test_http_error_is_a_requests_http_error(upstream: Upstream) -> None:
    """Existing except requests.HTTPError code keeps working."""
    upstream.script("/nf", Reply(404))
    with make(upstream) as s, pytest.raises(requests.HTTPError):
        s.get("/nf")


def test_raise_for_status_false_returns_the_response(upstream: Upstream) -> None:
    """raise_for_status=False returns the 4xx response."""
    upstream.script("/nf", Reply(404))
    with make(upstream) as s:
        assert s.get("/nf", raise_for_status=False).status_code == 404


def test_404_is_not_retried(upstream: Upstream) -> None:
    """4xx is final."""
    upstream.script("/nf", Reply(404))
    with make(upstream) as s, pytest.raises(ApiHTTPError):
        s.get("/nf")
    assert upstream.hits("/nf") == 1


def test_retry_after_abc_falls_back(upstream: Upstream) -> None:
    """Retry-After: abc retries with the normal backoff (the seed failed)."""
    upstream.script("/ra", Reply(503, headers={"Retry-After": "abc"}), Reply(200))
    sleeps: list[float] = []
    with make(upstream, sleeps) as s:
        assert s.get("/ra").status_code == 200
    assert sleeps == [0.5]


def test_429_retry_after_is_slept(upstream: Upstream) -> None:
    """429 with Retry-After: 2 sleeps 2 s before the retry."""
    upstream.script("/ra", Reply(429, headers={"Retry-After": "2"}), Reply(200))
    sleeps: list[float] = []
    with make(upstream, sleeps) as s:
        s.get("/ra")
    assert sleeps == [2.0]


def test_refused_connection_is_retried_then_typed(refused_url: str) -> None:
    """Refused: one connect retry, then ApiConnectionError (also requests.ConnectionError)."""
    sleeps: list[float] = []
    with Session(base_url=refused_url, sleep=sleeps.append) as s:
        with pytest.raises(ApiConnectionError) as info:
            s.post("/jobs", json={"a": 1})
    assert info.value.attempts == 2 and isinstance(info.value, requests.ConnectionError)
    assert len(sleeps) == 1


def test_reset_is_retried_for_get(upstream: Upstream) -> None:
    """A connection reset is retried for GET."""
    upstream.script("/r", Reset(), Reply(200))
    with make(upstream) as s:
        assert s.get("/r").status_code == 200
    assert upstream.hits("/r") == 2


def test_reset_is_final_for_post(upstream: Upstream) -> None:
    """A reset after sending a POST is not retried: the server may have acted on it."""
    upstream.script("/r", Reset(), Reply(200))
    with make(upstream) as s, pytest.raises(ApiConnectionError):
        s.post("/r", data=b"x")
    assert upstream.hits("/r") == 1


def test_truncated_body_is_retried_for_get(upstream: Upstream) -> None:
    """A body cut short is a read failure, retried for GET."""
    upstream.script("/t", Truncate(), Reply(200, b"whole"))
    with make(upstream) as s:
        assert s.get("/t").content == b"whole"


def test_read_timeout_is_retried_then_typed(upstream: Upstream) -> None:
    """A read timeout is retried for GET and ends in ApiReadTimeout."""
    upstream.script("/slow", Reply(200, delay=0.5))
    with make(upstream) as s, pytest.raises(ApiReadTimeout) as info:
        s.get("/slow", timeout=0.1)
    assert info.value.attempts == 3 and isinstance(info.value, requests.ReadTimeout)


def test_generator_body_is_never_resent(upstream: Upstream) -> None:
    """A generator body cannot be replayed: the first failure is final (seed re-sent it empty)."""
    upstream.script("/g", Reply(503), Reply(200))

    def body() -> Iterator[bytes]:
        yield b"chunk"

    with make(upstream) as s, pytest.raises(ApiHTTPError):
        s.put("/g", data=body())
    assert upstream.hits("/g") == 1


def test_seekable_file_body_is_replayed(upstream: Upstream) -> None:
    """A seekable file body is rewound and sent whole on the retry."""
    upstream.script("/f", Reply(503), Reply(200))
    with make(upstream) as s:
        s.put("/f", data=io.BytesIO(b"payload"))
    assert [r.body for r in upstream.seen] == [b"payload", b"payload"]


def test_redirect_hops_are_followed(upstream: Upstream, other_upstream: Upstream) -> None:
    """A redirect is followed once, as a hop of the same logical request."""
    upstream.script("/r", Reply(302, headers={"Location": "/final"}))
    with make(upstream) as s:
        r = s.get("/r")
    assert r.status_code == 200 and len(r.history) == 1 and upstream.hits() == 2


def test_redirect_hop_is_retried_too(upstream: Upstream) -> None:
    """A hop that gets a 503 is retried within the same budget."""
    upstream.script("/r", Reply(302, headers={"Location": "/final"}))
    upstream.script("/final", Reply(503), Reply(200))
    with make(upstream) as s:
        assert s.get("/r").status_code == 200
    assert upstream.hits("/final") == 2


# -- timeouts and deadlines -------------------------------------------------------------


def test_default_timeout_is_thirty_seconds() -> None:
    """Each attempt waits at most 30 s when the caller gives no timeout."""
    assert Session().timeout == observable_session.DEFAULT_TIMEOUT == 30.0


def test_deadline_is_not_overshot_by_a_sleep(upstream: Upstream) -> None:
    """A backoff that would end past the deadline is not slept: DeadlineExceeded at once."""
    upstream.script("/f", Reply(503))
    sleeps: list[float] = []
    with make(upstream, sleeps, backoff_factor=10) as s, pytest.raises(DeadlineExceeded) as info:
        s.get("/f", deadline=2)
    assert sleeps == [] and info.value.attempts == 1


def test_deadline_bounds_a_slow_attempt(upstream: Upstream) -> None:
    """A slow answer is cut at the deadline, not at the 30 s timeout."""
    upstream.script("/slow", Reply(200, delay=1.0))
    start = time.monotonic()
    with make(upstream) as s, pytest.raises(DeadlineExceeded):
        s.get("/slow", deadline=0.3)
    assert time.monotonic() - start < 0.9


def test_deadline_is_a_timeout() -> None:
    """DeadlineExceeded is a requests.Timeout."""
    assert issubclass(DeadlineExceeded, requests.Timeout)


def test_bad_deadline_is_refused() -> None:
    """A negative deadline is refused, naming the argument."""
    with pytest.raises(InvalidConfigError, match="deadline"):
        Session(deadline=-1)


# -- masked errors ----------------------------------------------------------------------


def test_echoed_secret_is_masked_in_error(upstream: Upstream) -> None:
    """A server that echoes the auth header: the error never shows it."""
    upstream.script("/e", Echo(401))
    with make(upstream) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/e")
    text = full_traceback(info.value)
    assert KEY not in text and "REDACTED" in text


def test_bearer_token_part_is_masked(upstream: Upstream) -> None:
    """The token after 'Bearer ' never leaks (seed defect)."""
    upstream.script("/e", Echo(403))
    with make(upstream, auth_headers={"Authorization": "Bearer tok-abcdef-123"}) as s:
        with pytest.raises(ApiHTTPError) as info:
            s.get("/e")
    assert "tok-abcdef-123" not in full_traceback(info.value)


def test_overlapping_secrets_leak_no_tail(upstream: Upstream) -> None:
    """When one secret is a prefix of another, no tail of the longer one leaks."""
    upstream.script("/e", Echo(401))
    auth = {"X-API-Key": "abcd1234", "X-Other-Key": "abcd1234-tail-part"}
    with make(upstream, auth_headers=auth) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/e")
    text = full_traceback(info.value)
    assert "tail-part" not in text and "abcd1234" not in text


def test_masking_never_garbles_a_message(upstream: Upstream) -> None:
    """Messages stay readable: masking only replaces whole secrets."""
    upstream.script("/e", Reply(400, {"message": "job quota exceeded"}))
    with make(upstream) as s, pytest.raises(ApiHTTPError) as info:
        s.get("/e")
    assert "job quota exceeded" in str(info.value)


def test_secret_in_cause_chain_is_masked(refused_url: str) -> None:
    """The chained cause of a connection error holds no secret (URL query or userinfo)."""
    url = refused_url.replace("http://", f"http://user:{KEY}@") + f"/x?token={KEY}"
    with Session(auth_headers={"X-API-Key": KEY}, sleep=lambda s: None) as s:
        with pytest.raises(ApiConnectionError) as info:
            s.get(url)
    text = full_traceback(info.value)
    assert info.value.__cause__ is not None
    assert KEY not in text


def test_errors_share_one_root() -> None:
    """Every public error derives from RequestsApiError."""
    for name in observable_session.__all__:
        obj = getattr(observable_session, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, RequestsApiError)


# -- pickling and threads ---------------------------------------------------------------


def test_pickle_keeps_base_url_auth_and_retries() -> None:
    """A pickled session keeps base_url, auth headers and retry settings (seed lost base_url)."""
    s = Session(
        base_url="https://api.example.com/v1",
        auth_headers={"X-API-Key": KEY},
        retries_total=5,
        backoff_factor=0.1,
    )
    t = pickle.loads(pickle.dumps(s))
    assert t.base_url == "https://api.example.com/v1"
    assert t.auth_headers["X-API-Key"] == KEY
    assert (t.retry_policy.total, t.retry_policy.backoff_factor) == (5, 0.1)


def test_unpickled_session_sends(upstream: Upstream) -> None:
    """An unpickled session works against a server."""
    s = pickle.loads(pickle.dumps(make(upstream)))
    assert s.get("/x").status_code == 200
    assert upstream.seen[0].headers["X-API-Key"] == KEY


def test_shared_between_threads(upstream: Upstream) -> None:
    """Eight threads share one session: every request answered, no retry state mixed."""
    upstream.script("/f", Reply(503), Reply(200))
    results: list[int] = []
    lock = threading.Lock()

    with make(upstream) as s:

        def work() -> None:
            for _ in range(10):
                r = s.get("/ok")
                with lock:
                    results.append(r.status_code)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [200] * 80 and upstream.hits("/ok") == 80


def test_closed_session_keeps_masking_then_reregisters(upstream: Upstream) -> None:
    """After close() the secrets stay masked (grace period); reuse registers them again."""
    from observable_session.redaction import DEFAULT_REDACTOR

    s = make(upstream, auth_headers={"X-API-Key": "closing-secret-42"})
    s.close()
    assert DEFAULT_REDACTOR.mask("closing-secret-42") == "REDACTED"
    upstream.script("/e", Echo(401))
    with pytest.raises(ApiHTTPError) as info:
        s.get("/e")
    assert "closing-secret-42" not in full_traceback(info.value)
    s.close()


def test_retries_total_none_is_refused_at_construction() -> None:
    """retries_total=None fails fast with a typed error (the seed recursed forever)."""
    with pytest.raises(InvalidConfigError, match="retries_total"):
        Session(retries_total=None)  # type: ignore[arg-type]


def test_secret_never_in_session_headers() -> None:
    """Auth values live in auth_headers, added per request, not in session.headers."""
    s = Session(base_url="https://api.example.com", auth_headers={"X-API-Key": KEY})
    assert "X-API-Key" not in s.headers


def test_non_latin1_auth_value_is_sent_as_utf8(upstream: Upstream) -> None:
    """A credential outside latin-1 goes out as UTF-8 bytes instead of failing in http.client."""
    with make(upstream, auth_headers={"X-API-Key": "clé-ключ-🔑"}) as s:
        assert s.get("/x").status_code == 200
    sent = upstream.seen[0].headers["X-API-Key"]
    assert sent.encode("latin-1").decode("utf-8") == "clé-ключ-🔑"


def test_stall_after_headers_is_a_read_timeout(upstream: Upstream) -> None:
    """A body that never comes is ApiReadTimeout (requests calls it ConnectionError)."""
    from tests.conftest import Stall

    upstream.script("/s", Stall(0.6))
    with make(upstream) as s, pytest.raises(ApiReadTimeout) as info:
        s.get("/s", timeout=0.1)
    assert info.value.error_type == "requests.exceptions.ReadTimeout"
    assert info.value.attempts == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"headers": {"X-Extra": "1", "Accept": None}},
        {"params": {"a": "1"}},
        {"params": [("a", "1"), ("a", "2")]},
        {"headers": {}, "params": {}},
    ],
)
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/x", "http://u:p@127.0.0.1/a b?q=1", "http://[::1]:80/é"]
)
def test_prepared_request_matches_requests(kwargs: dict[str, Any], url: str) -> None:
    """The fast preparation path prepares exactly what requests.Session would, twice."""
    ours = Session(headers={"X-Session": "s", "User-Agent": "ua/1"})
    ours.params = {"p": "1"}
    theirs = requests.Session()
    theirs.headers.update({"X-Session": "s", "User-Agent": "ua/1"})
    theirs.params = {"p": "1"}
    request = requests.Request("GET", url, **kwargs)
    for _ in range(2):  # the second time from the session's URL cache
        a, b = ours.prepare_request(request), theirs.prepare_request(request)
        assert (a.url, dict(a.headers)) == (b.url, dict(b.headers))


def test_cookies_follow_requests_rules(upstream: Upstream) -> None:
    """A Set-Cookie from the server is stored and sent back on the next request."""
    upstream.script("/login", Reply(200, headers={"Set-Cookie": "sid=abc123; Path=/"}))
    with make(upstream) as s:
        s.get("/login")
        s.get("/next")
    assert s.cookies.get("sid") == "abc123"
    assert upstream.seen[1].headers["Cookie"] == "sid=abc123"


def test_relative_url_without_base_is_a_typed_error() -> None:
    """A URL requests cannot prepare raises InvalidURLError, masked, nothing sent."""
    with Session() as s, pytest.raises(InvalidURLError) as info:
        s.get(f"jobs?token={KEY}")
    assert info.value.attempts == 0 and KEY not in full_traceback(info.value)


def test_rotated_out_value_stays_masked_through_close() -> None:
    """After rotation the old value is still masked (a request in flight may echo it)."""
    from observable_session.redaction import DEFAULT_REDACTOR

    s = Session(auth_headers={"X-API-Key": "old-secret-AAAA1111"})
    s.auth_headers["X-API-Key"] = "new-secret-BBBB2222"
    assert DEFAULT_REDACTOR.mask("old-secret-AAAA1111 new-secret-BBBB2222") == "REDACTED REDACTED"
    s.auth_headers = {"X-API-Key": "third-secret-CCCC3333"}
    assert DEFAULT_REDACTOR.mask("old-secret-AAAA1111") == "REDACTED"
    s.close()
    assert DEFAULT_REDACTOR.mask("old-secret-AAAA1111") == "REDACTED"  # the grace period


def test_307_with_generator_body_is_not_followed(upstream: Upstream) -> None:
    """A 307/308 would re-send the body: an unreplayable one is not re-sent empty."""
    upstream.script("/r307", Reply(307, headers={"Location": "/final"}))

    def body() -> Iterator[bytes]:
        yield b"payload-bytes"

    with make(upstream) as s:
        response = s.post("/r307", data=body())
    assert response.status_code == 307
    assert [(r.path, r.body) for r in upstream.seen] == [("/r307", b"payload-bytes")]


def test_307_with_bytes_body_is_followed_with_the_body(upstream: Upstream) -> None:
    """A replayable body follows a 307 whole."""
    upstream.script("/r307", Reply(307, headers={"Location": "/final"}))
    with make(upstream) as s:
        assert s.post("/r307", data=b"payload").status_code == 200
    assert [r.body for r in upstream.seen] == [b"payload", b"payload"]


def test_unparseable_location_is_a_typed_error(upstream: Upstream) -> None:
    """A Location header that cannot be parsed raises InvalidURLError, not a bare ValueError."""
    upstream.script("/bad", Reply(302, headers={"Location": "http://[::1"}))
    with make(upstream) as s, pytest.raises(InvalidURLError):
        s.get("/bad")


def test_too_many_redirects_is_the_requests_error_too(upstream: Upstream) -> None:
    """A redirect loop raises ApiTooManyRedirects, also a requests.TooManyRedirects."""
    upstream.script("/loop", Reply(302, headers={"Location": "/loop"}))
    with make(upstream) as s:
        s.max_redirects = 3
        with pytest.raises(requests.TooManyRedirects) as info:
            s.get("/loop")
    assert isinstance(info.value, observable_session.ApiTooManyRedirects)


def test_bad_content_encoding_is_the_requests_error_too(upstream: Upstream) -> None:
    """A body that is not what Content-Encoding says: ApiContentDecodingError."""
    upstream.script("/gz", Reply(200, b"not gzip", headers={"Content-Encoding": "gzip"}))
    with make(upstream) as s, pytest.raises(requests.exceptions.ContentDecodingError) as info:
        s.get("/gz")
    assert isinstance(info.value, observable_session.ApiContentDecodingError)


def test_every_error_names_its_error_type(upstream: Upstream) -> None:
    """DeadlineExceeded and friends carry their own error_type."""
    upstream.script("/f", Reply(503))
    with make(upstream, backoff_factor=10) as s, pytest.raises(DeadlineExceeded) as info:
        s.get("/f", deadline=1)
    assert info.value.error_type == "observable_session.errors.DeadlineExceeded"
