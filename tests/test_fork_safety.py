"""A worker pool forks while another thread is inside a session's lock: the child goes on.

A child starts with a copy of every lock as it was at ``fork()``; one held by a thread that
does not exist in the child is held for ever. Each module-wide lock of session construction
and first use is made anew in the child.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from observable_session import Session, _deadline, _reuse

CHILD_SECONDS = 5.0


def _child_status(inside: Callable[[threading.Event, threading.Event], None], then: Any) -> int:
    """Fork while a thread is stopped in ``inside``; the child runs ``then``: its exit code.

    ``inside(entered, release)`` sets ``entered`` once it holds the lock and waits for
    ``release``. -1: the child was still running after CHILD_SECONDS (it hung).
    """
    entered, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=inside, args=(entered, release), daemon=True)
    thread.start()
    try:
        assert entered.wait(5)
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            code = 1
            try:
                then()
                code = 0
            finally:
                os._exit(code)
        until = time.monotonic() + CHILD_SECONDS
        while time.monotonic() < until:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.01)  # polling the child, bounded by CHILD_SECONDS
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return -1
    finally:
        release.set()
        thread.join(5)


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
    assert _child_status(inside, lambda: Session().get_adapter("http://127.0.0.1/")) == 0


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

    assert _child_status(inside, lambda: Session().add_user_agent("worker/2")) == 0


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

    assert _child_status(inside, lambda: Session(base_url="https://fork.example.com/b/")) == 0


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

    assert _child_status(inside, then) == 0
