"""Strings found clean are not searched again until the secrets change, and never trusted after."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from observable_session.redaction import REDACTED, EventRedactor, Redactor

KEY = "Zq-clean-cache-K3y-0123456789"


class Owner:
    """Something that owns secrets and can be weakly referenced."""


def _event(text: str) -> dict[str, Any]:
    return {"event": "job.status", "level": "info", "detail": text, "headers": {"X-Echo": text}}


def test_a_string_found_clean_is_masked_once_its_secret_is_registered() -> None:
    r = Redactor()
    scrub = EventRedactor(r)
    owner = Owner()
    r.set_secrets(owner, ["Zq-some-other-K3y-0123456789"])
    text = f"upstream echoed {KEY}"
    assert scrub(None, "info", _event(text))["detail"] == text  # not a secret yet: clean
    r.add_secrets(owner, [KEY])
    out = scrub(None, "info", _event(text))
    assert out["detail"] == f"upstream echoed {REDACTED}"
    assert out["headers"]["X-Echo"] == f"upstream echoed {REDACTED}"
    assert r.scrub_mapping({"detail": text}) == {"detail": f"upstream echoed {REDACTED}"}


def test_a_secret_registered_during_the_search_is_not_trusted_clean_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race: the search runs before the registration lands, the result is stored after."""
    r = Redactor()
    scrub = EventRedactor(r)
    owner = Owner()
    text = f"upstream echoed {KEY}"
    real = r._may_hold
    registered = threading.Event()

    def racing(joined: str) -> bool:
        found = real(joined)  # the secret is not registered yet: clean
        if not registered.is_set():
            registered.set()
            worker = threading.Thread(target=r.add_secrets, args=(owner, [KEY]))
            worker.start()
            worker.join()
        return found

    monkeypatch.setattr(r, "_may_hold", racing)
    assert scrub(None, "info", _event(text))["detail"] == text
    assert registered.is_set()
    assert scrub(None, "info", _event(text))["detail"] == f"upstream echoed {REDACTED}"


def test_a_sensitive_name_added_later_masks_a_query_found_clean_before() -> None:
    r = Redactor()
    scrub = EventRedactor(r)
    text = "GET https://api.example.com/v1/jobs?jobnonce=Zq0123456789abcdef"
    assert scrub(None, "info", _event(text))["detail"] == text
    r.add_sensitive_names("jobnonce")
    assert "Zq0123456789abcdef" not in scrub(None, "info", _event(text))["detail"]


def test_the_clean_set_is_bounded() -> None:
    r = Redactor()
    scrub = EventRedactor(r)
    owner = Owner()
    r.set_secrets(owner, [KEY])
    for i in range(10_000):
        scrub(None, "info", {"event": f"line {i}", "long": "x" * 300 + str(i)})
    _, clean = r._clean
    assert 0 < len(clean) <= 4097
    assert all(len(text) <= 256 for text in clean)
