"""A worker pool forks while another thread is inside a session's lock: the child goes on.

A child starts with a copy of every lock as it was at ``fork()``; one held by a thread that
does not exist in the child is held for ever. Each module-wide lock of session construction
and first use is made anew in the child.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from observable_session import Session, _deadline, _reuse
from tests.forking import child_status


def test_a_fork_during_another_threads_first_read_of_adapters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = _deadline.install
    stop: list[tuple[threading.Thread, threading.Event, threading.Event]] = []

    def install(adapter: Any) -> None:
        """Stops the other thread while it builds the defaults (under their lock)."""
        if stop and threading.current_thread() is stop[0][0]:
            _, entered, release = stop[0]
            entered.set()
            release.wait(10)
        real(adapter)

    def inside(entered: threading.Event, release: threading.Event) -> None:
        stop.append((threading.current_thread(), entered, release))
        Session().get_adapter("http://127.0.0.1/")

    monkeypatch.setattr(_deadline, "install", install)
    assert child_status(inside, lambda: Session().get_adapter("http://127.0.0.1/")) == 0


def test_a_fork_during_another_threads_add_user_agent() -> None:
    class Slow(CaseInsensitiveDict):  # type: ignore[type-arg]
        """Headers whose read stops the thread that holds the user-agent lock."""

        stop: tuple[threading.Event, threading.Event] | None = None

        def get(self, key: str, default: Any = None) -> Any:
            if self.stop is not None:
                entered, release = self.stop
                entered.set()
                release.wait(10)
            return super().get(key, default)

    def inside(entered: threading.Event, release: threading.Event) -> None:
        session = Session()
        headers = Slow(session.headers)
        headers.stop = (entered, release)
        session.headers = headers
        session.add_user_agent("job-runner/1")

    assert child_status(inside, lambda: Session().add_user_agent("worker/2")) == 0


def test_a_fork_while_another_thread_stores_a_construction_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Slow(dict[str, Any]):
        """The caches' table, stopping the thread that stores into it under the lock."""

        stop: tuple[threading.Event, threading.Event] | None = None

        def setdefault(self, key: str, default: Any = None) -> Any:
            if self.stop is not None and threading.current_thread() is not main:
                entered, release = self.stop
                entered.set()
                release.wait(10)
            return super().setdefault(key, default)

    main = threading.current_thread()
    caches = Slow()
    monkeypatch.setattr(_reuse, "_caches", caches)

    def inside(entered: threading.Event, release: threading.Event) -> None:
        caches.stop = (entered, release)
        Session(base_url="https://fork.example.com/a/")

    assert child_status(inside, lambda: Session(base_url="https://fork.example.com/b/")) == 0


def _shared_locks() -> list[tuple[object, str]]:
    from observable_session import _requests_state, _session
    from observable_session.redaction import DEFAULT_REDACTOR
    from observable_session.telemetry import _instruments, _overload, _record, _wait

    return [
        (DEFAULT_REDACTOR, "_lock"),
        (DEFAULT_REDACTOR._index, "_lock"),
        (_requests_state, "_lock"),
        (_reuse, "_lock"),
        (_session, "_UA_LOCK"),
        (_instruments.InFlight, "_tables_lock"),
        (_overload._MeterInstruments, "_by_meter_lock"),
        (_record._Guard, "_lock"),
        (_wait._WaitInstruments, "_lock"),
    ]


@pytest.mark.parametrize(
    ("owner", "name"), _shared_locks(), ids=lambda v: getattr(v, "__name__", v)
)
def test_every_shared_lock_held_at_fork_is_free_in_the_child(owner: object, name: str) -> None:
    """A lock shared by all sessions (first metrics of a meter, telemetry warnings ...)."""

    def inside(entered: threading.Event, release: threading.Event) -> None:
        with getattr(owner, name):
            entered.set()
            release.wait(10)

    def then() -> None:
        lock = getattr(owner, name)
        assert lock.acquire(timeout=2)
        lock.release()

    assert child_status(inside, then) == 0
