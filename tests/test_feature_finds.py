"""Leaks found on the error paths of the session's other features (wait, the demo), end to end.

Each test fails on the code before its fix: a loopback server answers with what the session
put on the wire, and every sink of what leaves the call (``str``, ``repr``, ``args``, pickle,
the attributes, the formatted traceback) is read for the key.
"""

from __future__ import annotations

import json
import pickle
import re
import socket
import traceback

import pytest
import requests

from observable_session import ApiChunkedEncodingError, ApiJSONDecodeError, Session
from observable_session.__main__ import main
from tests.conftest import Reply, Upstream
from tests.rawserver import RawServer, start

KEY = "feature-finds-key-7Qm2xW9pLz"


def _session(url: str) -> Session:
    return Session(base_url=url, auth_headers={"X-API-Key": KEY}, sleep=lambda s: None)


def _sinks(error: BaseException) -> dict[str, str]:
    """Every text the error shows, its attributes and its pickle included."""
    attrs = {k: v for k, v in vars(error).items() if k not in ("request", "response")}
    return {
        "str": str(error),
        "repr": repr(error),
        "args": repr(error.args),
        "attrs": repr(attrs),
        "pickle": repr(pickle.dumps(error)),
        "unpickled": repr(vars(pickle.loads(pickle.dumps(error)))),
        "traceback": "".join(traceback.format_exception(error)),
    }


def _assert_clean(error: BaseException) -> None:
    for sink, text in _sinks(error).items():
        assert KEY not in text, sink


def _page(upstream: Upstream) -> None:
    """A 200 job page that is no JSON and shows the key (a sign-in page, a proxy's page)."""
    upstream.script("/jobs/1", Reply(200, f"<html>signed in with {KEY}</html>"))


def _state(response: requests.Response) -> object:
    return response.json()["state"]


def test_a_wait_whose_until_reads_a_page_as_json_raises_a_masked_typed_error(
    upstream: Upstream,
) -> None:
    """``until=r.json()...`` on a non-JSON page: no ``doc`` or pickle holding the body."""
    _page(upstream)
    with _session(upstream.url) as api, pytest.raises(requests.JSONDecodeError) as info:
        api.wait("/jobs/1", until=lambda r: _state(r) == "DONE")
    assert isinstance(info.value, ApiJSONDecodeError)
    assert isinstance(info.value, json.JSONDecodeError)
    _assert_clean(info.value)


def test_a_wait_whose_fail_when_reads_a_page_as_json_raises_a_masked_typed_error(
    upstream: Upstream,
) -> None:
    """The same for ``fail_when``, checked first."""
    _page(upstream)
    with _session(upstream.url) as api, pytest.raises(ApiJSONDecodeError) as info:
        api.wait("/jobs/1", until=lambda r: True, fail_when=lambda r: _state(r) == "FAILED")
    _assert_clean(info.value)


def test_a_value_error_a_predicate_raises_quoting_the_body_is_masked(upstream: Upstream) -> None:
    """A bare ``ValueError`` quoting the page is masked, as one from a response hook is."""
    _page(upstream)

    def until(response: requests.Response) -> bool:
        raise ValueError(f"unexpected job page: {response.text}")

    with _session(upstream.url) as api, pytest.raises(ValueError, match="unexpected") as info:
        api.wait("/jobs/1", until=until)
    _assert_clean(info.value)


def _bad_chunk_echo(server: RawServer, conn: socket.socket, head: bytes) -> bool:
    """A 200 whose second chunk-size line is the X-API-Key the request carried."""
    found = re.search(rb"(?im)^x-api-key:\s*(\S+)", head)
    key = found.group(1) if found else b""
    server.send(
        conn,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n" + key + b"\r\n",
    )
    return False


def test_a_wait_whose_until_reads_a_broken_streamed_body_raises_a_masked_typed_error(
    raw: list[RawServer],
) -> None:
    """urllib3 quotes a bad chunk-size line; read by ``until`` with ``stream=True``, masked."""
    server = start(raw, _bad_chunk_echo)
    with (
        _session(server.url) as api,
        pytest.raises(requests.exceptions.ChunkedEncodingError) as info,
    ):
        api.wait("/jobs/1", until=lambda r: bool(r.content), stream=True)
    assert isinstance(info.value, ApiChunkedEncodingError)
    _assert_clean(info.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--target", f"http://ops:{KEY}@127.0.0.1:99999"],
        ["demo", "--otlp", f"http://127.0.0.1:4318/?token={KEY}"],
        ["demo", "--otlp", f"ftp://ops:{KEY}@127.0.0.1/"],
    ],
)
def test_the_demo_quotes_a_refused_url_masked(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``--target``/``--otlp`` refused for another rule shows no password or token."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "error:" in captured.err and "REDACTED" in captured.err
    assert KEY not in captured.err + captured.out
