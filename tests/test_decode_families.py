"""The decoder one escape family at a time: keys holding escapes, zero padding, the cut."""

from __future__ import annotations

import random

import pytest

from observable_session.redaction import REDACTED, Redactor
from observable_session.redaction._decode import decode, decoded_forms, open_escape_tail
from tests.echo_servers import Spelling, encode

KEY = "Zq9-nest3d-K3y_0123456789abcdef"


class Owner:
    """Something that owns secrets and can be weakly referenced."""


def _redactor(*values: str) -> tuple[Redactor, Owner]:
    r = Redactor()
    owner = Owner()
    r.set_secrets(owner, list(values))
    return r, owner


def js(text: str) -> str:
    """Every character as a JSON ``\\uXXXX`` escape."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


def pct(text: str) -> str:
    """Every UTF-8 byte percent-encoded."""
    return "".join(f"%{b:02X}" for b in text.encode("utf-8"))


@pytest.mark.parametrize("literal", ["\\\\", "%41", "&amp;", "%00", "\\n", "+", "&#65;"])
@pytest.mark.parametrize("escape", ["&#47;", "&#x2F;", "%2F", "%2f", "\\/", "\\u002F"])
def test_a_key_holding_an_escape_is_masked_when_another_character_is_escaped(
    literal: str, escape: str
) -> None:
    """``Zq…%41…/…`` echoed as ``Zq…%41…&#47;…``: the text round it is kept as it was."""
    key = f"Zq-k3y{literal}w9/T2x"
    r, owner = _redactor(key)
    text = f"upstream said: {key.replace('/', escape)} (retry later)"
    assert r.mask(text) == f"upstream said: {REDACTED} (retry later)"
    assert owner


def test_a_key_holding_percent_zero_is_masked_when_its_blank_is_json_escaped() -> None:
    """The proof's find: ``:\\xa0%00`` echoed by JSON as ``:\\u00a0%00`` (one family)."""
    key = ":\xa0%00"
    r, owner = _redactor(f"Bearer {key}")
    assert r.mask('{"detail": ":\\u00a0%00"}') == f'{{"detail": "{REDACTED}"}}'
    assert owner


@pytest.mark.parametrize(
    "spell",
    [
        lambda c: f"&#x{ord(c):08x};",
        lambda c: f"&#X{ord(c):040X};",
        lambda c: f"&#{ord(c):010d};",
        lambda c: f"&#{ord(c):0100d}",
    ],
    ids=["hex8", "hex40-upper", "dec10", "dec100-no-semicolon"],
)
def test_zero_padded_html_references_are_decoded(spell: object) -> None:
    """Numeric references take any number of leading zeros, as HTML does."""
    assert callable(spell)
    r, owner = _redactor(KEY)
    spelled = "".join(spell(c) for c in KEY)
    assert r.mask(f"<p>{spelled}</p>") == f"<p>{REDACTED}</p>"
    assert owner


def test_a_text_holding_escapes_but_no_secret_is_unchanged() -> None:
    """Reading text one family at a time finds nothing that is not there."""
    r, owner = _redactor(KEY)
    text = "GET /a?x=%41&amp;y=\\u0042+z&#x0000043; \\\\ done"
    assert r.mask(text) == text
    assert owner


def test_decoded_forms_of_a_plain_value_are_none() -> None:
    """A value without an escape character costs nothing extra to register."""
    assert decoded_forms(KEY) == frozenset()
    assert decoded_forms("a%41\\\\b") >= {"aA\\\\b", "a%41\\b", "aA\\b"}


def test_the_last_reading_is_the_deepest_all_families_one() -> None:
    """Single-family readings come first; the fallback in replace() uses the last one."""
    readings = decode("%41\\u0042&#67;")
    assert readings[-1] == "ABC"
    assert "A\\u0042&#67;" in readings


def test_mask_cut_covers_three_nested_escape_levels() -> None:
    """JSON of percent of JSON (about 108 characters a character) across the cut is masked."""
    r, owner = _redactor(KEY)
    spelled = js(pct(js(KEY)))
    assert len(spelled) > len(KEY) * 16 + 64  # longer than the old margin
    cut = r.mask_cut("." * 990 + spelled + " tail", 1000)
    assert cut == ("." * 990 + REDACTED + " tail")[:1000]
    assert owner


def test_mask_cut_drops_the_head_of_a_spelling_longer_than_the_margin() -> None:
    """Zero padding has no bound: a spelling the margin cannot hold leaves no head behind."""
    r, owner = _redactor(KEY)
    spelled = "".join(f"&#x{ord(c):0300x};" for c in KEY)
    for pad in (900, 990, 999):
        head = ("a, " * pad)[:pad]
        cut = r.mask_cut(head + spelled + " tail", 1000)
        assert cut == head.rstrip("a")  # the run reaching the cut goes, letters included
    assert owner


def test_mask_cut_drops_a_plain_head_at_the_margin_when_masking_shrank_the_text() -> None:
    """Masked values shrink the text below the limit: the margin's own cut is not shown."""
    long_key = "L0ng-" + "k" * 200
    r, owner = _redactor(long_key)
    text = (long_key + " ") * 40
    cut = r.mask_cut(text, 1000)
    assert "k" * 4 not in cut
    assert cut.startswith(f"{REDACTED} {REDACTED}")
    assert owner


def test_open_escape_tail_keeps_text_that_ends_outside_an_escape() -> None:
    """Only a run holding an escape, reaching the cut, is dropped."""
    assert open_escape_tail("plain words end", 100) == "plain words end"
    assert open_escape_tail("said: ab\\u00", 100) == "said: "
    assert open_escape_tail("said: %41%4", 100) == "said: "
    assert open_escape_tail("said: x&#x00000", 100) == "said: "
    assert open_escape_tail('{"d": "\\u0025\\u00', 100) == '{"d": "'
    assert open_escape_tail("a, b", 100) == "a, b"


def test_keys_holding_escapes_are_masked_in_two_nested_partial_spellings() -> None:
    """Keys made of literal escapes, spelled by the echo server twice over (any two forms).

    Each level escapes a random part of the characters, so a level mixes escaped and literal
    sequences: the reading that finds the key decodes one family per level.
    """
    literals = ["\\\\", "\\n", "\\u0041", "%41", "%00", "%2", "&amp;", "&#65;", "&lt", "+", "%25"]
    alphabet = "abcXYZ019-_/:= .\xe9\xa0"
    rng = random.Random(20261201)
    leaks = []
    for _ in range(300):
        parts = [
            rng.choice(literals)
            if rng.random() < 0.4
            else "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            for _ in range(rng.randint(2, 5))
        ]
        key = "Zq" + "".join(parts) + "k9"
        r, owner = _redactor(key)
        text = key
        for _ in range(2):
            form = rng.choice(["json", "html", "percent", "html-zeros"])
            p = rng.choice([0.05, 0.3, 0.7, 1.0])
            text = encode(text, Spelling(form, rng.randint(0, 2**31), p, True, rng.random() < 0.5))
        masked = r.mask(f"said: {text} end")
        if masked != f"said: {REDACTED} end":
            leaks.append((key, text, masked))
        assert owner
    assert leaks == []


@pytest.mark.parametrize(
    "escape", [lambda c: f"&#{ord(c)};", lambda c: f"&#x{ord(c):04X};", lambda c: js(c)]
)
def test_a_non_ascii_key_half_escaped_half_utf8_read_as_latin1_is_masked(escape: object) -> None:
    """The proof's find: a latin-1 header echoed into a UTF-8 page read back as latin-1.

    ``\\xd7\\xbdZ)\\xee O\\xad/\\xd2\\xc3`` came back as
    ``\\xc3\\x97&#189;Z)\\xc3\\xae&#X20;…``: the raw characters are their UTF-8 read as
    latin-1, the others references; neither registered form matches.
    """
    key = "\xd7\xbdZ)\xee O\xad/\xd2\xc3"
    r, owner = _redactor(key)
    assert callable(escape)
    spelled = "".join(
        escape(c) if i % 2 else c.encode("utf-8").decode("latin-1") for i, c in enumerate(key)
    )
    assert "Ã" in spelled  # raw characters as their UTF-8 read as latin-1
    text = f"<p>Rejected X-Auth-Token: {spelled}</p>"
    assert r.mask(text) == f"<p>Rejected X-Auth-Token: {REDACTED}</p>"
    assert owner


def test_text_with_utf8_read_as_latin1_and_escapes_but_no_secret_is_unchanged() -> None:
    """Repairing latin-1-read UTF-8 only adds readings: a harmless text is left as it is."""
    r, owner = _redactor("Zq-unrelated-K3y-0123")
    text = "caf\xc3\xa9 &amp; cr\xc3\xa8me \\u00e9 %C3%A9 \xc3("
    assert r.mask(text) == text
    assert owner
