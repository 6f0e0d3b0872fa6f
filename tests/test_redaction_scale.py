"""The value index at scale: lazy filing, parked grace values, shared construction results."""

from __future__ import annotations

import json
import math
import threading

import pytest

from observable_session import Session
from observable_session._reuse import reused
from observable_session.errors import InvalidConfigError
from observable_session.redaction import REDACTED, Redactor
from observable_session.redaction._index import FILE_AT

BASE = "https://api.example.com/v1/"


class Owner:
    """Something that owns secrets and can be weakly referenced."""


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def value(i: int) -> str:
    # No scheme: "Bearer x" is masked by its shape whether registered or not.
    return f"tok-{i:06d}-Zq9xWv3Lp8Rt2Kd7"


def test_a_value_is_masked_by_the_first_search_after_registration() -> None:
    """Registered but not yet filed (waiting) is still masked, escaped forms included."""
    r = Redactor()
    r.set_secrets(Owner(), ["Bearer " + value(1)])
    token = value(1)
    assert r.mask(f"echo {token}!") == f"echo {REDACTED}!"
    assert token not in r.mask(json.dumps({"v": token.replace("-", "\\u002d")}))


def test_every_value_is_masked_past_the_filing_batch() -> None:
    """More registrations than one filing batch: each is masked, first and last alike."""
    r = Redactor()
    owners = [Owner() for _ in range(FILE_AT * 2 + 3)]
    for i, owner in enumerate(owners):
        r.set_secrets(owner, [value(i)])
    for i in (0, FILE_AT - 1, FILE_AT, len(owners) - 1):
        assert r.mask(value(i)) == REDACTED


def test_parked_values_stay_masked_until_the_grace_period_ends() -> None:
    """Closed before and after a search (parked as objects or as a block): both masked."""
    clock = FakeClock()
    r = Redactor(clock=clock)
    never_searched, searched = Owner(), Owner()
    r.set_secrets(never_searched, [value(1)])
    r.forget(never_searched)  # parked while still waiting
    r.set_secrets(searched, [value(2)])
    assert r.mask("nothing") == "nothing"  # files value(2)
    r.forget(searched)  # parked as a block
    assert r.mask(value(1)) == REDACTED
    assert r.mask(value(2)) == REDACTED
    clock.now += 601
    assert r.mask(value(1)) == value(1)
    assert r.mask(value(2)) == value(2)


def test_a_block_keeps_any_character_of_a_value() -> None:
    """Quotes, backslashes, NUL and non-ASCII survive the parked block's encoding."""
    odd = 'p"a\\s\x00s-\u00e9\u4e2d-\U0001f600-word'
    r = Redactor(clock=FakeClock())
    owner = Owner()
    r.set_secrets(owner, [odd])
    r.mask("x")  # filed, so forget() stores a block
    r.forget(owner)
    assert r.mask(f"[{odd}]") == f"[{REDACTED}]"


def test_the_pool_drops_the_oldest_parked_owner_first() -> None:
    """The bound holds for parked owners, filed or not, in the order they were forgotten."""
    r = Redactor(grace_max_owners=2, clock=FakeClock())
    owners = [Owner() for _ in range(4)]
    for i, owner in enumerate(owners):
        r.set_secrets(owner, [value(i)])
        if i == 1:
            r.mask("file what waits")
        r.forget(owner)
    assert [r.mask(value(i)) == REDACTED for i in range(4)] == [False, False, True, True]


def test_an_evicted_filed_owner_leaves_no_trace_in_the_grams() -> None:
    """A filed value dropped from the pool is no longer masked; one shared value still is."""
    r = Redactor(grace_max_owners=1, clock=FakeClock())
    a, b, keeper = Owner(), Owner(), Owner()
    r.set_secrets(keeper, [value(7)])
    r.set_secrets(a, [value(7), value(8)])
    r.mask("file")
    r.forget(a)
    r.mask("file the parked block")
    r.set_secrets(b, [value(9)])
    r.forget(b)  # pushes a out
    assert r.mask(value(8)) == value(8)
    assert r.mask(value(7)) == REDACTED  # keeper still holds it


def test_registering_while_another_thread_masks_misses_nothing() -> None:
    """Each value masked right after its registration returns, with searches racing."""
    r = Redactor()
    stop = threading.Event()
    missed: list[str] = []

    def search() -> None:
        while not stop.is_set():
            r.mask("background text with nothing secret in it at all")

    threads = [threading.Thread(target=search) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        owners = [Owner() for _ in range(FILE_AT * 3)]
        for i, owner in enumerate(owners):
            r.set_secrets(owner, [value(i)])
            if r.mask(value(i)) != REDACTED:
                missed.append(value(i))
            if i % 3 == 0:
                r.forget(owner)
                if r.mask(value(i)) != REDACTED:
                    missed.append(value(i))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert missed == []


def test_closed_sessions_values_stay_masked_after_many_sessions() -> None:
    """Sessions created and closed by the hundred: the last closed one's token is masked."""
    from observable_session.redaction import mask

    tokens = [f"Bearer job-{i:05d}-Yh4Rk2Pq8Wz6" for i in range(300)]
    for token in tokens:
        Session(base_url=BASE, auth_headers={"Authorization": token}).close()
    assert mask(tokens[-1].split()[1]) == REDACTED


def test_shared_construction_results_do_not_skip_validation() -> None:
    """A setting refused is refused every time, after an equal valid one was cached too."""
    Session(base_url=BASE, retries_total=2).close()
    for bad in ({"retries_total": True}, {"backoff_factor": math.nan}, {"retries_total": -1}):
        for _ in range(2):
            with pytest.raises(InvalidConfigError):
                Session(base_url=BASE, **bad)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(InvalidConfigError):
            Session(base_url="ftp://api.example.com/")


def test_reused_keys_on_type_as_well_as_value() -> None:
    """``1`` and ``True`` (equal, different types) are two entries; unhashables bypass."""
    calls: list[object] = []

    def build(x: object) -> tuple[object]:
        calls.append(x)
        return (x,)

    assert reused("test-kind", build, 1) == (1,)
    assert reused("test-kind", build, True) == (True,)
    assert reused("test-kind", build, 1) == (1,)
    assert reused("test-kind", build, [1]) == ([1],)
    assert calls == [1, True, [1]]


def test_sessions_with_equal_settings_share_the_retry_policy() -> None:
    """Equal settings: one validated policy object; other settings: another."""
    a, b = Session(base_url=BASE), Session(base_url=BASE)
    c = Session(base_url=BASE, retries_total=5)
    try:
        assert a.retry_policy is b.retry_policy
        assert c.retry_policy.total == 5 and c.retry_policy is not a.retry_policy
    finally:
        for s in (a, b, c):
            s.close()
