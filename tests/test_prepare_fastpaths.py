"""The preparation shortcuts change nothing a server, a hook or a caller can see.

``prepare_request`` caches the merged and validated session headers while they stay the
same, skips cookielib for an empty jar, and ``_send_hop`` asks for the redirect target before
starting requests' redirect generator. Each test sends real requests to a loopback server and
checks what it saw, so a stale cache, a shared header dict or a lost cookie shows.
"""

from __future__ import annotations

import pytest
import requests

from observable_session import ApiHTTPError, Session

from .conftest import Echo, Reply, Upstream


def _seen_headers(upstream: Upstream) -> list[dict[str, str]]:
    return [{k.lower(): v for k, v in s.headers.items()} for s in upstream.seen]


def test_session_header_changes_reach_the_next_request(upstream: Upstream) -> None:
    session = Session(base_url=upstream.url, headers={"X-A": "1"})
    session.get("/x")
    session.headers["X-A"] = "2"  # an item changed in place
    session.get("/x")
    session.headers["X-B"] = "b"  # an item added
    session.get("/x")
    del session.headers["X-A"]  # an item removed
    session.get("/x")
    session.headers = {"X-C": "c"}  # the mapping replaced
    session.get("/x")
    seen = _seen_headers(upstream)
    assert [h.get("x-a") for h in seen] == ["1", "2", "2", None, None]
    assert [h.get("x-b") for h in seen] == [None, None, "b", "b", None]
    assert [h.get("x-c") for h in seen] == [None, None, None, None, "c"]
    assert "observable-session" not in seen[4].get("user-agent", "")  # only what it holds


def test_each_request_gets_its_own_header_dict(upstream: Upstream) -> None:
    session = Session(base_url=upstream.url, auth_headers={"X-Key": "k-secret-1"})
    first = session.get("/x").request
    first.headers["X-Added-Later"] = "no"  # what a hook or the caller may do
    session.get("/x", headers={"X-Only-Here": "1"})
    session.get("/x")
    seen = _seen_headers(upstream)
    assert all("x-added-later" not in h for h in seen)
    assert [h.get("x-only-here") for h in seen] == [None, "1", None]
    assert [h.get("x-key") for h in seen] == ["k-secret-1"] * 3
    assert session.headers.get("X-Key") is None  # the auth header never lands in the session's


def test_none_session_header_is_dropped_on_every_request(upstream: Upstream) -> None:
    session = Session(base_url=upstream.url)
    session.headers["X-Drop"] = None
    session.get("/x")
    session.get("/x")
    assert [("x-drop" in h) for h in _seen_headers(upstream)] == [False, False]


def test_an_invalid_session_header_fails_every_request(upstream: Upstream) -> None:
    session = Session(base_url=upstream.url)
    session.get("/x")  # the cache holds the valid headers
    session.headers["X-Bad"] = "a\r\nInjected: 1"
    for _ in range(2):  # never cached, so never sent
        with pytest.raises(requests.RequestException):
            session.get("/x")
    assert upstream.hits() == 1


def test_cookies_from_server_session_and_call_are_sent(upstream: Upstream) -> None:
    upstream.script("/login", Reply(headers={"Set-Cookie": "sid=s1; Path=/"}))
    session = Session(base_url=upstream.url)
    session.get("/x")  # empty jar: no Cookie header
    session.get("/login")
    session.get("/x")  # the server's cookie
    session.get("/x", cookies={"c": "1"})  # the call's cookie with it
    session.cookies.clear()
    session.get("/x", cookies={"only": "call"})
    session.get("/x")
    cookies = [h.get("cookie") for h in _seen_headers(upstream)]
    assert cookies[0] is None and cookies[1] is None
    assert cookies[2] == "sid=s1"
    assert cookies[3] is not None and sorted(cookies[3].split("; ")) == ["c=1", "sid=s1"]
    assert cookies[4] == "only=call"
    assert cookies[5] is None


def test_redirects_are_still_followed(upstream: Upstream) -> None:
    upstream.script("/old", Reply(302, b"", {"Location": "/new"}))
    upstream.script("/new", Reply(200, b"here"))
    session = Session(base_url=upstream.url)
    response = session.get("/old")
    assert response.content == b"here"
    assert [r.status_code for r in response.history] == [302]


def test_a_subclass_redirect_target_is_honoured(upstream: Upstream) -> None:
    upstream.script("/start", Reply(200, b"first"))
    upstream.script("/next", Reply(200, b"second"))

    class Follows(Session):
        def get_redirect_target(self, resp: requests.Response) -> str | None:
            return "/next" if resp.url.endswith("/start") else None

    response = Follows(base_url=upstream.url).get("/start")
    assert response.content == b"second"
    assert upstream.hits("/next") == 1


def test_session_header_secret_is_masked_on_cache_hits_and_after_close(
    upstream: Upstream,
) -> None:
    """The cached headers skip re-registration only while the registry still holds them."""
    upstream.script("/ok", Reply())
    upstream.script("/echo", Echo())
    secret = "cached-header-secret-314159"
    session = Session(base_url=upstream.url, headers={"X-API-Key": secret}, retries_total=0)
    session.get("/ok")  # the miss: registered, cached
    for _ in range(2):  # a hit, then a hit after close() emptied the registry
        with pytest.raises(ApiHTTPError) as caught:
            session.get("/echo")
        assert "bad credentials" in str(caught.value)
        assert secret not in str(caught.value)
        session.close()
    session.headers["X-API-Key"] = secret + "-rotated"  # a new value: a miss, registered
    with pytest.raises(ApiHTTPError) as caught:
        session.get("/echo")
    assert "rotated" not in str(caught.value) and secret not in str(caught.value)
