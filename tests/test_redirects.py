"""Redirect hops behave as in requests: bodies, cookies, history, is_redirect, next."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from observable_session import Session
from tests.conftest import Reply, Upstream

BROKEN_GZIP = {"Content-Encoding": "gzip", "Location": "/ok"}


def both(upstream: Upstream) -> list[requests.Session]:
    """Plain requests and the Session in compat settings, to compare side by side."""
    return [
        requests.Session(),
        Session(raise_for_status=False, retries_total=0, retries_connect=0, timeout=None),
    ]


def test_redirect_with_broken_gzip_body_is_followed(upstream: Upstream) -> None:
    """A redirect's body is not decoded before following it: a broken gzip body is harmless."""
    upstream.script("/r", Reply(302, b"not gzip at all", headers=BROKEN_GZIP))
    upstream.script("/ok", Reply(200, b"done"))
    with Session(base_url=upstream.url) as s:
        r = s.get("/r")
    assert r.status_code == 200 and r.text == "done"
    assert [h.status_code for h in r.history] == [302]


def test_broken_gzip_redirect_not_followed_is_returned_as_requests(upstream: Upstream) -> None:
    """allow_redirects=False returns the redirect with a broken body, as requests does."""
    upstream.script("/r", Reply(302, b"not gzip at all", headers=BROKEN_GZIP))
    upstream.script("/ok", Reply(200, b"done"))
    with requests.Session() as plain:
        expected = plain.get(f"{upstream.url}/r", allow_redirects=False)
    with Session(base_url=upstream.url, retries_total=0) as s:
        r = s.get("/r", allow_redirects=False)
    assert (r.status_code, r.is_redirect) == (expected.status_code, expected.is_redirect)
    assert r.next is not None and r.next.url == f"{upstream.url}/ok"


def test_broken_gzip_redirect_streamed_is_returned(upstream: Upstream) -> None:
    """stream=True with allow_redirects=False returns the redirect unread, as requests."""
    upstream.script("/r", Reply(302, b"not gzip at all", headers=BROKEN_GZIP))
    with Session(base_url=upstream.url) as s:
        r = s.get("/r", allow_redirects=False, stream=True)
    assert r.status_code == 302 and r.is_redirect
    r.close()


def summary(r: requests.Response) -> dict[str, Any]:
    """What a caller can see of a (redirected) response."""
    nxt = r.next
    return {
        "status": r.status_code,
        "url": r.url.rsplit(":", 1)[-1].split("/", 1)[-1],
        "is_redirect": r.is_redirect,
        "is_permanent_redirect": r.is_permanent_redirect,
        "history": [(h.status_code, h.is_redirect) for h in r.history],
        "next": (nxt.method, nxt.url.rsplit("/", 1)[-1]) if nxt is not None else None,
        "cookies": sorted(r.cookies.keys()),
    }


@pytest.mark.parametrize("allow_redirects", [True, False])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_look_as_in_requests(
    upstream: Upstream, status: int, allow_redirects: bool
) -> None:
    """history, is_redirect, next, url and cookies match requests for every redirect status."""
    upstream.script(
        "/a", Reply(status, b"moved", headers={"Location": "/b", "Set-Cookie": "hop=1; Path=/"})
    )
    upstream.script("/b", Reply(302, b"", headers={"Location": "/c"}))
    upstream.script("/c", Reply(200, b"end", headers={"Set-Cookie": "end=2; Path=/"}))
    seen = []
    jars = []
    for session in both(upstream):
        with session:
            r = session.post(f"{upstream.url}/a", data=b"x", allow_redirects=allow_redirects)
            seen.append(summary(r))
            jars.append(sorted(session.cookies.keys()))
    assert seen[0] == seen[1]
    assert jars[0] == jars[1]


def test_hop_cookie_is_sent_on_the_next_hop(upstream: Upstream) -> None:
    """A cookie set by a redirect response is sent to the redirect's target, as requests."""
    upstream.script("/a", Reply(302, b"", headers={"Location": "/b", "Set-Cookie": "k=v; Path=/"}))
    upstream.script("/b", Reply(200, b"ok"))
    with Session(base_url=upstream.url) as s:
        s.get("/a")
    assert upstream.seen[-1].path == "/b" and upstream.seen[-1].headers.get("Cookie") == "k=v"


def test_next_is_followable(upstream: Upstream) -> None:
    """r.next, sent by the session, reaches the redirect's target."""
    upstream.script("/a", Reply(302, b"", headers={"Location": "/b"}))
    upstream.script("/b", Reply(200, b"there"))
    with Session(base_url=upstream.url) as s:
        r = s.get("/a", allow_redirects=False)
        assert r.next is not None
        final = s.send(r.next)
    assert final.status_code == 200 and final.text == "there"


def test_truncated_redirect_body_is_followed_as_requests(upstream: Upstream) -> None:
    """A redirect whose body is cut short is followed, as requests does (hop bodies are moot)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    upstream.script("/ok", Reply(200, b"done"))

    def serve() -> None:
        for _ in range(2):  # one connection per client under test
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 302 Found\r\nContent-Length: 1000\r\n"
                    + f"Location: {upstream.url}/ok\r\n\r\npartial".encode()
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        results = []
        for session in both(upstream):
            with session:
                r = session.get(f"http://127.0.0.1:{port}/r", timeout=5)
                results.append((r.status_code, r.text, [h.status_code for h in r.history]))
    finally:
        thread.join(timeout=5)
        listener.close()
    assert results[0] == results[1] == (200, "done", [302])
