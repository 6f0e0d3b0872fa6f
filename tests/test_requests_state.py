"""requests' own session state, set without its two adapters until first use."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from observable_session import Session, _deadline, _requests_state

BASE = "https://api.example.com/v1/"


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _watched(adapter: Any) -> bool:
    return adapter.poolmanager.pool_classes_by_scheme is _deadline._POOL_CLASSES


def test_the_state_is_requests_own_but_no_adapter_is_built_until_first_use() -> None:
    ours, theirs = Session(), requests.Session()
    assert "adapters" not in vars(ours)
    for name in requests.Session.__attrs__:
        if name not in ("headers", "adapters", "cookies", "hooks"):
            assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.hooks == theirs.hooks and ours.hooks is not theirs.hooks
    assert type(ours.cookies) is type(theirs.cookies) and not ours.cookies
    assert list(ours.adapters) == list(theirs.adapters) == ["https://", "http://"]
    assert all(type(a) is HTTPAdapter and _watched(a) for a in ours.adapters.values())
    assert ours.adapters is ours.adapters  # built once
    ours.close()
    theirs.close()


def test_each_session_gets_fresh_mutable_state() -> None:
    a, b = Session(), Session()
    a.headers["X-Job"] = "1"
    a.proxies["https"] = "http://proxy.invalid:1"
    a.params["q"] = "1"
    a.hooks["response"].append(print)
    a.cookies.set("c", "v")
    assert "X-Job" not in b.headers and not b.proxies and not b.params
    assert b.hooks["response"] == [] and not b.cookies
    assert a.adapters["https://"] is not b.adapters["https://"]


def test_threads_racing_to_the_first_request_share_one_set_of_adapters() -> None:
    for _ in range(20):
        session = Session()
        seen: list[object] = []
        barrier = threading.Barrier(8)

        def first_use(
            s: Session = session, b: threading.Barrier = barrier, out: list[object] = seen
        ) -> None:
            b.wait()
            out.append(s.get_adapter("http://127.0.0.1/"))

        threads = [threading.Thread(target=first_use) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen) == 8 and all(a is session.adapters["http://"] for a in seen)


def test_mount_after_construction_orders_prefixes_as_requests_does() -> None:
    ours, theirs = Session(), requests.Session()
    for s in (ours, theirs):
        s.mount("https://api.example.com/", HTTPAdapter())
        s.mount("http://", HTTPAdapter())
        s.mount("h", HTTPAdapter())
    assert list(ours.adapters) == list(theirs.adapters)
    assert _watched(ours.adapters["https://api.example.com/"])


def test_close_before_any_request_builds_no_adapter_and_the_session_still_sends(
    server: str,
) -> None:
    session = Session(auth_headers={"Authorization": "Bearer Zq-lazy-adapters-0123"})
    session.close()
    assert "adapters" not in vars(session)
    assert session.get(server + "/").text == "ok"  # a closed session sends, as in requests
    assert "adapters" in vars(session)
    session.close()


def test_a_session_never_used_pickles_with_requests_adapters() -> None:
    session = Session(base_url=BASE)
    copy = pickle.loads(pickle.dumps(session))
    assert list(copy.adapters) == ["https://", "http://"]
    assert all(_watched(a) for a in copy.adapters.values())


def test_a_subclass_that_overrides_mount_sees_requests_two_calls_in_init() -> None:
    calls: list[str] = []

    class Recording(Session):
        def mount(self, prefix: str | bytes, adapter: Any) -> None:
            calls.append(str(prefix))
            super().mount(prefix, adapter)

    session = Recording()
    assert calls == ["https://", "http://"]
    assert "adapters" in vars(session)


def test_a_base_between_session_and_requests_keeps_its_init() -> None:
    class Marked(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.marked = True

    class Both(Session, Marked):
        pass

    session = Both()
    assert session.marked is True
    assert list(session.adapters) == ["https://", "http://"]


def test_an_unknown_requests_state_falls_back_to_requests_own_init(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_requests_state, "_known", False)
    session = Session()
    assert "adapters" in vars(session) and list(session.adapters) == ["https://", "http://"]
    assert all(_watched(a) for a in session.adapters.values())


def test_the_probe_accepts_the_installed_requests() -> None:
    # CI runs this at the dependency floors and at the newest: the lazy way is taken there.
    assert _requests_state._own(requests.sessions.Session) is True
    assert _requests_state._probe(requests.sessions.Session) is True
    assert _requests_state.untouched(requests.sessions.Session) is True


def test_a_session_keeps_its_attributes_few_enough_for_a_compact_dict() -> None:
    """CPython shares the keys of up to 29 instance attributes; a 30th costs 1.3 KB more."""
    session = Session(base_url=BASE, auth_headers={"Authorization": "Bearer Zq-compact-0123"})
    session.get_adapter(BASE)
    assert len(vars(session)) < 30
