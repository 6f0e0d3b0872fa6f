"""Attacks on the redaction fast paths: the clean-string memory, the shape detector, names."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Iterator
from enum import Enum
from typing import Any

import pytest

from observable_session import Session
from observable_session.redaction import (
    DEFAULT_REDACTOR,
    REDACTED,
    EventRedactor,
    Redactor,
    redact_event,
)
from tests.conftest import Upstream
from tests.forking import child_status

KEY = "Zq-fastpath-attack-K3y-0123456789"


class Owner:
    """Something that owns secrets and can be weakly referenced."""


class _TierThatParksFirst:
    """A tier whose gram table, once read, has just lost ``owner``'s atoms to a park.

    Models a thread switch inside a lock-free search: the search has read that nothing
    waits to be filed, then another thread closes the owner (its values are parked, out
    of the grams), then the search reads the grams.
    """

    def __init__(self, tier: Any, redactor: Redactor, owner: object) -> None:
        self._tier, self._redactor, self._owner = tier, redactor, owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tier, name)

    @property
    def grams(self) -> Any:
        if self._owner is not None:
            owner, self._owner = self._owner, None
            self._redactor.forget(owner)
        return self._tier.grams


def _parked_mid_search(r: Redactor, owner: object) -> None:
    index = r._index
    index.file_waiting()
    assert index._active
    index._active = tuple(_TierThatParksFirst(t, r, owner) for t in index._active)


def test_a_string_searched_while_its_owner_is_parked_is_not_remembered_clean() -> None:
    """Closing a session parks its values: a search it raced may not be trusted after."""
    r = Redactor()
    scrub = EventRedactor(r)
    owner = Owner()
    r.set_secrets(owner, [KEY])
    text = f"upstream echoed {KEY}"
    assert scrub(None, "info", {"event": "x", "detail": text})["detail"] != text
    _parked_mid_search(r, owner)
    scrub(None, "info", {"event": "x", "detail": text})  # raced the park
    for _ in range(3):  # the grace period masks it: every line that starts after the close
        assert scrub(None, "info", {"event": "x", "detail": text})["detail"] == (
            f"upstream echoed {REDACTED}"
        )
    assert r.scrub_mapping({"detail": text}) == {"detail": f"upstream echoed {REDACTED}"}


def test_the_line_whose_search_a_park_raced_is_masked() -> None:
    """The values of a session closed while its line is searched are masked in that line."""
    r = Redactor()
    scrub = EventRedactor(r)
    owner = Owner()
    r.set_secrets(owner, [KEY])
    text = f"upstream echoed {KEY}"
    _parked_mid_search(r, owner)
    line = scrub(None, "info", {"event": "x", "detail": text, "nested": {"v": text}})
    assert line == {
        "event": "x",
        "detail": f"upstream echoed {REDACTED}",
        "nested": {"v": f"upstream echoed {REDACTED}"},
    }


def test_a_mask_whose_search_a_park_raced_is_masked() -> None:
    r = Redactor()
    owner = Owner()
    r.set_secrets(owner, [KEY])
    text = f"upstream echoed {KEY}"
    _parked_mid_search(r, owner)
    assert r.mask(text) == f"upstream echoed {REDACTED}"
    other = Owner()
    r.set_secrets(other, [KEY + "-other"])
    _parked_mid_search(r, other)
    assert r.scrub_mapping({"detail": f"{text}-other"}) == {"detail": f"upstream echoed {REDACTED}"}


def test_sessions_closed_while_eight_threads_log_their_keys_stay_masked() -> None:
    """Real threads: a line logged after close() returned never shows the closed key."""
    r = Redactor()
    scrub = EventRedactor(r)
    leaks: list[str] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for i in range(40):
            key = f"Zq-park-race-{i:04d}-K3y-abcdefghij"
            text = f"echo {key}"
            owner = Owner()
            r.set_secrets(owner, [key])
            stop = threading.Event()

            def log(text: str = text, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    scrub(None, "info", {"event": "x", "detail": text})

            threads = [threading.Thread(target=log) for _ in range(8)]
            for thread in threads:
                thread.start()
            time.sleep(0.001)  # not a backoff: lets the loggers start before the close
            r.forget(owner)
            out = scrub(None, "info", {"event": "x", "detail": text})["detail"]
            stop.set()
            for thread in threads:
                thread.join()
            if key in out:
                leaks.append(out)
    finally:
        sys.setswitchinterval(interval)
    assert leaks == []


@pytest.fixture
def default_owner() -> Iterator[Owner]:
    owner = Owner()
    yield owner
    DEFAULT_REDACTOR.forget(owner, grace=False)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_during_a_registration_does_not_serve_its_secret_clean(
    default_owner: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registering thread is gone in the child: its secret is there, the old memory too."""
    text = f"upstream echoed {KEY}-fork"
    assert redact_event(None, "info", {"event": "x", "detail": text})["detail"] == text
    index = DEFAULT_REDACTOR._index
    real_add = index.add

    def inside(entered: threading.Event, release: threading.Event) -> None:
        def add_then_wait(supers: Any) -> None:
            real_add(supers)
            entered.set()
            release.wait(10)

        monkeypatch.setattr(index, "add", add_then_wait)
        DEFAULT_REDACTOR.add_secrets(default_owner, [f"{KEY}-fork"])

    def then() -> None:
        line = redact_event(None, "info", {"event": "x", "detail": text})["detail"]
        masked = DEFAULT_REDACTOR.mask(text)
        assert line == masked == f"upstream echoed {REDACTED}"

    assert child_status(inside, then) == 0


class _Header(str, Enum):
    API_KEY = "X-API-Key"


class _PosingName(str):
    """A key whose hash and equality pose as ``password``'s: it must not poison the cache."""

    def __hash__(self) -> int:
        return hash("password")

    def __eq__(self, other: object) -> bool:
        return True


def test_a_str_enum_key_of_a_nested_mapping_is_judged_by_its_name() -> None:
    r = Redactor()
    event = {"event": "x", "headers": {_Header.API_KEY: "sk-unregistered-0123456789"}}
    assert EventRedactor(r)(None, "info", event)["headers"] == {_Header.API_KEY: REDACTED}
    assert r.scrub_mapping({_Header.API_KEY: "sk-unregistered-0123456789"}) == {
        _Header.API_KEY: REDACTED
    }


def test_a_key_posing_as_another_name_does_not_unmask_that_name_later() -> None:
    r = Redactor()
    scrub = EventRedactor(r)
    assert scrub(None, "info", {"event": "x", _PosingName("note"): "fine"})
    assert scrub(None, "info", {"event": "x", "password": "hunter2-plain"})["password"] == (
        REDACTED
    )
    assert r.scrub_mapping({"password": "hunter2-plain"}) == {"password": REDACTED}


def test_keys_that_are_no_text_do_not_break_logging() -> None:
    r = Redactor()
    out = EventRedactor(r)(None, "info", {"event": "x", 1: "one", b"X-API-Key": "sk-0123456789"})
    assert out == {"event": "x", 1: "one", b"X-API-Key": REDACTED}


def test_the_cors_credentials_flag_sent_by_a_session_masks_no_ordinary_word(
    upstream: Upstream,
) -> None:
    """Its one value is ``true``: registered as a secret, every ``true`` would be masked."""
    session = Session(base_url=upstream.url)
    try:
        session.headers["Access-Control-Allow-Credentials"] = "true"
        session.get("/x")
        line = redact_event(None, "info", {"event": "cache.lookup", "detail": "hit=true"})
        assert line["detail"] == "hit=true"
    finally:
        session.close()
        DEFAULT_REDACTOR.forget(session._credentials, grace=False)
    assert not DEFAULT_REDACTOR.is_sensitive_name("access-control-allow-credentials")
    assert DEFAULT_REDACTOR.is_sensitive_name("X-Goog-Credential")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_during_a_park_masks_and_does_not_hang(
    default_owner: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parking thread is gone in the child: the park it was in is not waited for."""
    key = f"{KEY}-fork-park"
    DEFAULT_REDACTOR.set_secrets(default_owner, [key])
    text = f"upstream echoed {key}"
    assert DEFAULT_REDACTOR.mask(text) == f"upstream echoed {REDACTED}"
    index = DEFAULT_REDACTOR._index
    real_park = index.park

    def inside(entered: threading.Event, release: threading.Event) -> None:
        def wait_then_park(entries: Any, expiry: float) -> None:
            entered.set()
            release.wait(10)
            real_park(entries, expiry)

        monkeypatch.setattr(index, "park", wait_then_park)
        DEFAULT_REDACTOR.forget(default_owner)

    def then() -> None:
        line = redact_event(None, "info", {"event": "x", "clean": "nothing here"})
        assert line["clean"] == "nothing here"
        assert key not in DEFAULT_REDACTOR.mask(text)

    assert child_status(inside, then) == 0  # -1: the child hung


class _CyclicOwner:
    """An owner only the cyclic garbage collector frees (a session in a reference cycle)."""

    def __init__(self) -> None:
        self.me = self


def test_an_owner_collected_inside_the_index_does_not_deadlock_it() -> None:
    """A collection runs at any allocation: here, one while a search files registrations."""
    r = Redactor()
    gc.disable()
    try:
        dead = _CyclicOwner()
        r.set_secrets(dead, ["Zq-collected-in-index-K3y-0123"])
        del dead
        live = Owner()
        r.set_secrets(live, [KEY])
        index = r._index
        real = index._add_now

        def add_now(supers: Any) -> None:
            index._add_now = real  # type: ignore[method-assign]
            gc.collect()  # what an allocation here may set off
            real(supers)

        index._add_now = add_now  # type: ignore[method-assign]
        out: list[str] = []
        thread = threading.Thread(target=lambda: out.append(r.mask(f"echo {KEY}")), daemon=True)
        thread.start()
        thread.join(5)
    finally:
        gc.enable()
    assert not thread.is_alive()
    assert out == [f"echo {REDACTED}"]
    assert r.mask("echo Zq-collected-in-index-K3y-0123") == f"echo {REDACTED}"  # in grace


class _PosingText(str):
    """A value whose hash and equality pose as a string the memory holds as clean."""

    def __hash__(self) -> int:
        return hash("job.status")

    def __eq__(self, other: object) -> bool:
        return True


def test_a_str_subclass_value_posing_as_a_clean_string_is_searched() -> None:
    r = Redactor()
    scrub = EventRedactor(r)
    owner = Owner()
    r.set_secrets(owner, [KEY])
    assert scrub(None, "info", {"event": "job.status"})["event"] == "job.status"  # remembered
    posing = _PosingText(f"upstream echoed {KEY}")
    line = scrub(None, "info", {"event": "job.status", "detail": posing, "n": {"v": posing}})
    assert line["detail"] == line["n"]["v"] == f"upstream echoed {REDACTED}"
    assert type(line["detail"]) is str


def test_a_line_logged_from_inside_a_park_does_not_hang() -> None:
    """A ``__del__`` or weakref callback that logs can run at any allocation of a park."""
    r = Redactor()
    owner = Owner()
    r.set_secrets(owner, [KEY])
    assert r.mask(f"echo {KEY}") == f"echo {REDACTED}"
    index = r._index
    real_park = index.park
    lines: list[str] = []

    def park_then_log(entries: Any, expiry: float) -> None:
        real_park(entries, expiry)
        lines.append(r.mask("a line with nothing to hide"))

    index.park = park_then_log  # type: ignore[method-assign]
    thread = threading.Thread(target=r.forget, args=(owner,), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert lines == ["a line with nothing to hide"]
    assert r.mask(f"echo {KEY}") == f"echo {REDACTED}"


@pytest.mark.parametrize("flag", ["true", "False", "null", "yes"])
def test_a_flag_word_in_a_sensitive_named_header_masks_no_ordinary_word(
    upstream: Upstream, flag: str
) -> None:
    """``X-Use-Credentials: true`` is a flag: its word stays readable in every other line."""
    session = Session(base_url=upstream.url)
    try:
        session.headers["X-Use-Credentials"] = flag
        session.get("/x")
        line = redact_event(None, "info", {"event": "cache.lookup", "detail": f"hit={flag}"})
        assert line["detail"] == f"hit={flag}"
    finally:
        session.close()
        DEFAULT_REDACTOR.forget(session._credentials, grace=False)
