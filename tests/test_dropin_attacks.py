"""What users and other test suites do to a session's adapters and to requests' own names.

Each of these patterns works on ``requests.Session()``; building the default adapters at
first use must not change what they see.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from observable_session import InvalidConfigError, Session, _deadline


def test_a_used_session_holds_its_adapters_in_its_dict_as_requests_does() -> None:
    session = Session()
    session.get_adapter("http://127.0.0.1/")
    assert vars(session)["adapters"] is session.adapters
    assert vars(session)["headers"] is session.headers
    assert set(vars(requests.Session())) <= set(vars(session))


def test_deleting_adapters_works_before_and_after_use_and_the_defaults_come_back() -> None:
    session = Session()
    del session.adapters
    first = session.adapters["http://"]
    del session.adapters
    assert "adapters" not in vars(session)
    assert list(session.adapters) == ["https://", "http://"]
    assert session.adapters["http://"] is not first


def test_adapters_assigned_none_stay_none_as_in_requests() -> None:
    session = Session()
    session.adapters = None  # type: ignore[assignment]
    assert session.adapters is None


def test_an_assignment_while_the_defaults_are_built_is_not_overwritten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another thread assigning ``session.adapters`` during the first read keeps its value."""
    session = Session()
    mine: dict[str, Any] = {"http://": HTTPAdapter()}
    real = _deadline.install

    def install_and_assign(adapter: Any) -> None:
        real(adapter)
        session.adapters = mine  # what the other thread does, in the middle of the build

    monkeypatch.setattr(_deadline, "install", install_and_assign)
    assert session.adapters is mine
    assert session.adapters is mine


def test_a_patched_requests_session_init_runs_as_it_does_for_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The global "verify=False for every session" hack reaches this Session too."""
    original = requests.Session.__init__

    def unverified(self: requests.Session) -> None:
        original(self)
        self.verify = False

    monkeypatch.setattr(requests.Session, "__init__", unverified)
    assert requests.Session().verify is False
    assert Session().verify is False


def test_names_patched_in_requests_sessions_are_used_as_requests_uses_them() -> None:
    class Recorded(HTTPAdapter):
        pass

    ours = requests.structures.CaseInsensitiveDict({"Accept": "application/json"})
    with (
        mock.patch("requests.sessions.HTTPAdapter", Recorded),
        mock.patch("requests.sessions.default_headers", lambda: ours.copy()),
    ):
        session = Session()
        assert all(type(a) is Recorded for a in session.adapters.values())
        assert session.headers["Accept"] == "application/json"
    with mock.patch("requests.utils.DEFAULT_ACCEPT_ENCODING", "identity"):
        assert Session().headers["Accept-Encoding"] == "identity"
    assert type(Session().adapters["http://"]) is HTTPAdapter
    assert Session().headers["Accept-Encoding"] == requests.Session().headers["Accept-Encoding"]


@pytest.mark.parametrize("owner", [Session, requests.Session], ids=["ours", "requests"])
def test_a_spy_on_mount_sees_requests_two_calls_from_init(owner: Any) -> None:
    calls: list[str] = []
    original = owner.mount

    def spy(self: Any, prefix: str, adapter: Any) -> None:
        calls.append(prefix)
        original(self, prefix, adapter)

    with mock.patch.object(owner, "mount", spy):
        Session()
    assert calls == ["https://", "http://"]


def test_a_default_adapter_made_to_retry_is_refused_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``HTTPAdapter()`` patched to retry: refused, as ``mount`` refuses it."""
    defaults = HTTPAdapter.__init__.__defaults__
    assert defaults is not None
    monkeypatch.setattr(HTTPAdapter.__init__, "__defaults__", (*defaults[:2], 3, defaults[3]))
    with pytest.raises(InvalidConfigError, match="max_retries=0"):
        Session()


def test_a_subclass_overriding_setattr_sees_the_names_requests_sets() -> None:
    seen: list[str] = []

    class Watched(Session):
        def __setattr__(self, name: str, value: Any) -> None:
            seen.append(name)
            super().__setattr__(name, value)

    Watched()
    assert {"headers", "adapters", "verify"} <= set(seen)


def test_a_subclass_with_its_own_headers_property_gets_requests_assignment() -> None:
    class Stored(Session):
        @property
        def headers(self) -> Any:
            return self._kept

        @headers.setter
        def headers(self, value: Any) -> None:
            self._kept = value

    session = Stored(headers={"X-Job": "1"})
    assert session.headers["X-Job"] == "1" and "headers" not in vars(session)


def test_a_subclass_that_set_adapters_before_init_gets_requests_defaults() -> None:
    class Early(Session):
        def __init__(self) -> None:
            self.adapters = {}
            super().__init__()

    assert list(Early().adapters) == list(requests.Session().adapters)


def test_a_default_adapter_that_retries_is_refused_when_built_at_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A patch no identity check sees (``Retry`` inside requests.adapters): still refused."""
    session = Session()
    monkeypatch.setattr(requests.adapters, "Retry", lambda *args, **kwargs: Retry(3))
    for _ in range(2):  # nothing half-built is kept: the second read refuses again
        with pytest.raises(InvalidConfigError, match="max_retries=0"):
            session.get_adapter("http://127.0.0.1/")
    assert "adapters" not in vars(session)


def test_a_subclass_keeping_adapters_its_own_way_has_them_closed() -> None:
    closed: list[object] = []

    class Recorded(HTTPAdapter):
        def close(self) -> None:
            closed.append(self)
            super().close()

    class Own(Session):
        @property
        def adapters(self) -> Any:
            return self._mine

        @adapters.setter
        def adapters(self, value: Any) -> None:
            self._mine = value

    session = Own()
    session.mount("http://", Recorded())
    session.close()
    assert len(closed) == 1
