"""Proxy and CA-bundle variables take effect per request, as in requests, read cheaply."""

from __future__ import annotations

from typing import Any

import pytest

from observable_session import Session, _environment
from tests.conftest import Reply, Upstream

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy or CA-bundle variable from the machine running the tests."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)


def settings(s: Session, url: str = "https://example.test/x") -> Any:
    """What the session would send a request to ``url`` with."""
    return s.merge_environment_settings(url, {}, False, True, None)


def test_ca_bundle_set_after_creation_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE set after the session was made applies to the next request."""
    with Session() as s:
        assert settings(s)["verify"] is True
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/some/path")
        assert settings(s)["verify"] == "/some/path"
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
        monkeypatch.setenv("CURL_CA_BUNDLE", "/curl/path")
        assert settings(s)["verify"] == "/curl/path"


def test_proxy_set_after_creation_is_used(
    monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    """HTTP_PROXY set after creation routes the next request through the proxy."""
    upstream.script("http://example.test/job", Reply(200, b"via proxy"))
    with Session(retries_total=0) as s:
        monkeypatch.setenv("HTTP_PROXY", upstream.url)
        r = s.get("http://example.test/job")
    assert r.text == "via proxy"
    assert upstream.seen[-1].path == "http://example.test/job"  # absolute form: a proxy request


def test_no_proxy_is_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    """no_proxy exempts a host exactly as requests decides."""
    with Session() as s:
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
        monkeypatch.setenv("NO_PROXY", "example.test")
        assert settings(s)["proxies"] == {}
        assert settings(s, "https://other.test/")["proxies"]["https"] == "http://127.0.0.1:9"


def test_proxy_unset_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unsetting the proxy variable stops using the proxy on the next request."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with Session() as s:
        assert settings(s)["proxies"]
        monkeypatch.delenv("HTTPS_PROXY")
        assert settings(s)["proxies"] == {}


def test_unchanged_environment_is_not_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing changed, a request looks up a few variables and scans nothing."""
    calls: list[int] = []
    real = _environment.getproxies

    def counting() -> dict[str, str]:
        calls.append(1)
        return real()

    monkeypatch.setattr(_environment, "getproxies", counting)
    with Session() as s:
        for _ in range(50):
            settings(s)
        assert len(calls) == 1  # at creation only
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
        settings(s)
        settings(s)
    assert len(calls) == 2


def test_trust_env_false_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """trust_env=False: no variable is consulted, as in requests."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/some/path")
    with Session() as s:
        s.trust_env = False
        assert settings(s) == {"proxies": {}, "stream": False, "verify": True, "cert": None}


def test_replaced_netrc_lookup_is_called_per_request(
    monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    """A replacement of requests.sessions.get_netrc_auth is honoured, as requests does."""
    import requests.sessions

    upstream.script("/x", Reply(200, b"ok"))
    monkeypatch.setattr(requests.sessions, "get_netrc_auth", lambda url: ("user", "pass"))
    with Session(retries_total=0) as s:
        s.get(f"{upstream.url}/x")
        s.get(f"{upstream.url}/x", auth=("other", "pw"))
    sent = [seen.headers.get("Authorization") for seen in upstream.seen]
    assert sent == ["Basic dXNlcjpwYXNz", "Basic b3RoZXI6cHc="]


def test_no_netrc_file_means_no_probe_per_request(
    monkeypatch: pytest.MonkeyPatch, upstream: Upstream
) -> None:
    """Without a netrc file at the last read, requests are sent without probing for one."""
    import os.path

    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    monkeypatch.setenv("HOME", "/nonexistent")
    upstream.script("/x", Reply(200, b"ok"))
    probes: list[str] = []
    real = os.path.exists
    with Session(retries_total=0) as s:
        s.get(f"{upstream.url}/x")  # the environment is read at the first request
        monkeypatch.setattr(os.path, "exists", lambda p: probes.append(str(p)) or real(p))
        for _ in range(5):
            s.get(f"{upstream.url}/x")
    assert not [p for p in probes if "netrc" in p]
    assert upstream.seen[0].headers.get("Authorization") is None
