"""Escaped text read back, with a map from each decoded character to where it came from.

A server may echo a secret in any escaped spelling: JSON ``\\u002B`` (any hex case), ``\\/``,
HTML ``&amp;``/``&#39;``/``&#x27;``, percent-encoding in any case, ``+`` for a blank, or
several of those nested (JSON of a percent-encoded value). Rather than enumerating
spellings, text that holds an escape character is decoded, up to :data:`MAX_ROUNDS` times,
and the matcher looks for secret atoms in the decoded text as well; a hit is mapped back to
the span of the original text it was decoded from, and that span is replaced.
"""

from __future__ import annotations

import codecs
import html
import re
from typing import Final

__all__ = [
    "ANY_ESCAPE",
    "MAX_GROWTH",
    "MAX_ROUNDS",
    "MOJIBAKE",
    "decode",
    "decode_mapped",
    "decode_repairing",
    "decoded_forms",
    "family_readings",
    "has_escapes",
    "has_mojibake",
    "open_escape_tail",
    "repaired",
]


def has_escapes(text: str) -> bool:
    """Whether ``text`` holds an escape character (``\\``, ``%``, ``&``, ``+``).

    Four substring tests run at C speed, ten times faster than one character-class search.
    """
    return "\\" in text or "%" in text or "&" in text or "+" in text


MAX_ROUNDS: Final = 3

_TOKEN: Final = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a JSON surrogate pair
    # One level at a time (an escaped backslash is a token): nesting takes another round.
    r"|\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|[/\"'\\bfnrt])"
    r"|%[0-9a-fA-F]{2}(?:%[0-9a-fA-F]{2})*"
    # Numeric references take any number of digits: leading zeros are valid HTML.
    r"|&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]{1,31});?"
    r"|\+"
)
#: Every escape family at once (the default step of the decoder).
ANY_ESCAPE: Final = _TOKEN
_SHORT: Final = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
#: A UTF-8 sequence read as latin-1 (``\xd7`` as ``\xc3\x97``): a server that echoes a header it
#: read as latin-1 into a UTF-8 body, read back as latin-1 (``text/html`` has no charset),
#: escaping some characters of it and not others.
MOJIBAKE: Final = re.compile(
    "[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_CONTINUATION: Final = re.compile("[\x80-\xbf]")


def has_mojibake(text: str) -> bool:
    """Whether ``text`` holds a UTF-8 sequence read as latin-1.

    Text in a language written with latin-1 letters (``é``, ``à``) rarely holds the
    continuation characters ``\x80``-``\xbf``: one simple character-class search, six times
    faster than the sequence pattern, settles most texts.
    """
    return (
        not text.isascii()
        and _CONTINUATION.search(text) is not None
        and MOJIBAKE.search(text) is not None
    )


def _backslash(token: str) -> str:
    body = token[1:]
    kind = body[0]
    if kind == "u" and len(body) > 5:  # a surrogate pair
        high = int(body[1:5], 16)
        low = int(body.rpartition("u")[2], 16)
        return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    if kind in "uUx":
        code = int(body[1:], 16)
        return chr(code) if code <= 0x10FFFF else token
    return _SHORT.get(kind, kind)


def _percent(token: str) -> list[tuple[str, int, int]]:
    """Each character a run of ``%XX`` decodes to, with its span inside the run."""
    raw = bytes.fromhex(token.replace("%", ""))
    decoder = codecs.getincrementaldecoder("utf-8")()
    out: list[tuple[str, int, int]] = []
    start = 0
    try:
        for i in range(len(raw)):
            text = decoder.decode(raw[i : i + 1])
            if text:
                out.extend((ch, start * 3, (i + 1) * 3) for ch in text)
                start = i + 1
        if start != len(raw):
            raise UnicodeDecodeError("utf-8", raw, start, len(raw), "truncated")
    except UnicodeDecodeError:  # not UTF-8: read the bytes as latin-1, one for one
        return [(chr(b), i * 3, i * 3 + 3) for i, b in enumerate(raw)]
    return out


def _reference(token: str) -> str:
    """An HTML character reference: a numeric one as its code point, whatever it is.

    ``html.unescape`` reads a numeric reference the way a browser renders it: ``&#0;`` as
    U+FFFD, ``&#128;``-``&#159;`` as windows-1252 (``&#136;`` as U+02C6), control characters
    as nothing. An echo means the code point it spells: a key's ``\x88`` (the UTF-8 of
    ``È`` read as latin-1 holds one) or ``\x07`` escaped by an XML-style encoder.
    """
    if token[1] != "#":
        return html.unescape(token)
    digits = token[2:].rstrip(";")
    code = int(digits[1:], 16) if digits[0] in "xX" else int(digits)
    return chr(code) if code <= 0x10FFFF else token


def _decode_token(token: str) -> str | list[tuple[str, int, int]]:
    first = token[0]
    if first == "\\":
        return _backslash(token)
    if first == "%":
        return _percent(token)
    if first == "&":
        return _reference(token)
    if first == "+":
        return " "  # in a form or query
    try:  # MOJIBAKE: the character those latin-1 characters are the UTF-8 of
        return token.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:  # an overlong or surrogate sequence: not a character
        return token


#: A high and a low surrogate: what a UTF-16 encoder (JavaScript's ``charCodeAt``) leaves of
#: a character outside the BMP when it escapes each unit (``&#55357;&#56832;``, ``\\ud83d``).
_PAIR: Final = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _joined(match: re.Match[str]) -> str:
    pair = match.group(0)
    return chr(0x10000 + ((ord(pair[0]) - 0xD800) << 10) + (ord(pair[1]) - 0xDC00))


def _paired(text: str) -> str:
    """``text`` with each surrogate pair joined into its character (none: one C test)."""
    if text.isascii() or _PAIR.search(text) is None:
        return text
    return _PAIR.sub(_joined, text)


def repaired(text: str) -> str | None:
    """``text`` with each UTF-8 sequence read as latin-1 turned back into its character.

    ``None`` when there is none (an ASCII text costs one C-speed test).
    """
    if not has_mojibake(text):
        return None
    return MOJIBAKE.sub(_plain, text)


def decode_mapped(
    text: str, pattern: re.Pattern[str] = _TOKEN, *, repair: bool = False
) -> tuple[str, list[int], list[int]]:
    """One round of decoding, and for each decoded character its ``[start, end)`` in ``text``.

    ``pattern`` is every escape family at once, or one of them (:func:`family_readings`).
    With ``repair``, UTF-8 read as latin-1 in the text between escapes is repaired as well
    (:func:`decode_repairing`).
    """
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0

    def raw(begin: int, end: int) -> None:
        gap = text[begin:end]
        if repair and has_mojibake(gap):
            fixed, s, e = decode_mapped(gap, MOJIBAKE)
            pieces.append(fixed)
            starts.extend(begin + i for i in s)
            ends.extend(begin + i for i in e)
        else:
            pieces.append(gap)
            starts.extend(range(begin, end))
            ends.extend(range(begin + 1, end + 1))

    for match in pattern.finditer(text):
        begin, end = match.span()
        if begin > pos:
            raw(pos, begin)
        decoded = _decode_token(match.group(0))
        if isinstance(decoded, str):
            pieces.append(decoded)
            starts.extend([begin] * len(decoded))
            ends.extend([end] * len(decoded))
        else:
            for ch, a, b in decoded:
                pieces.append(ch)
                starts.append(begin + a)
                ends.append(begin + b)
        pos = end
    if pos < len(text):
        raw(pos, len(text))
    decoded = "".join(pieces)
    if decoded.isascii() or _PAIR.search(decoded) is None:
        return decoded, starts, ends
    # Two references to the halves of a surrogate pair are one character (see _paired).
    out: list[str] = []
    s: list[int] = []
    e: list[int] = []
    pos = 0
    for match in _PAIR.finditer(decoded):
        begin = match.start()
        out.append(decoded[pos:begin])
        s.extend(starts[pos:begin])
        e.extend(ends[pos:begin])
        out.append(_joined(match))
        s.append(starts[begin])
        e.append(ends[begin + 1])
        pos = begin + 2
    out.append(decoded[pos:])
    s.extend(starts[pos:])
    e.extend(ends[pos:])
    return "".join(out), s, e


def decode_repairing(text: str, pattern: re.Pattern[str] = _TOKEN) -> str:
    """One round of decoding in which the raw text between escapes is repaired, too.

    A server that escapes some characters of a value and writes the page as UTF-8, read
    back as latin-1, leaves the others as their UTF-8 read as latin-1 (``È`` as ``Ã\x88``);
    the escaped ones decode to the real characters, which must not be "repaired" (``Þ°``
    is also a UTF-8 sequence read as latin-1). Nested inside another escape level, the
    same holds one level down, so each decoding step is tried this way too.
    """
    pieces: list[str] = []
    pos = 0
    for match in pattern.finditer(text):
        begin, end = match.span()
        if begin > pos:
            pieces.append(MOJIBAKE.sub(_plain, text[pos:begin]))
        pieces.append(_plain(match))
        pos = end
    pieces.append(MOJIBAKE.sub(_plain, text[pos:]))
    return _paired("".join(pieces))


def _plain(match: re.Match[str]) -> str:
    decoded = _decode_token(match.group(0))
    return decoded if isinstance(decoded, str) else "".join(ch for ch, _, _ in decoded)


_HIGH_PERCENT: Final = re.compile(r"%[89a-fA-F][0-9a-fA-F]")


def _plain_latin1(match: re.Match[str]) -> str:
    token = match.group(0)
    if token[0] == "%":  # each byte one character: how a latin-1 reader sees UTF-8
        return bytes.fromhex(token.replace("%", "")).decode("latin-1")
    return _plain(match)


def decode(text: str) -> list[str]:
    """The successive decodings of ``text`` that differ from it (at most MAX_ROUNDS).

    Percent-escaped bytes above ASCII are also read one byte per character (the UTF-8 of a
    header read back as latin-1, then percent-encoded, is the secret's wire spelling), and a
    text mixing escape families is also read one family at a time (:func:`family_readings`);
    the last reading is always the deepest all-families one.
    """
    if not has_escapes(text):
        return []
    merged: list[_Edge] = []
    readings = _readings(text, merged)
    out = [r for r, path, _ in readings if any(p is not _TOKEN for p in path)]
    if "%" in text and _HIGH_PERCENT.search(text):
        out.append(_paired(_TOKEN.sub(_plain_latin1, text)))
    chain = [r for r, path, _ in readings if all(p is _TOKEN for p in path)]
    # Each reading with its latin-1-read UTF-8 repaired, too: wholesale, and one step at a
    # time with only the characters that step did not decode (decode_repairing).
    out.extend(r for r in map(repaired, [*out, *chain]) if r is not None)
    out.extend(_step_repairs([*readings, *merged]))
    return out + chain


def _step_repairs(readings: list[_Edge]) -> list[str]:
    """Each decoding step redone with the raw text between its escapes repaired.

    What the repaired step leaves is decoded further (all families) for the rounds left.
    """
    out: list[str] = []
    seen = {reading for reading, _, _ in readings}
    done: set[tuple[str, re.Pattern[str]]] = set()
    for _, path, parent in readings:
        if (parent, path[-1]) in done or not has_mojibake(parent):
            continue
        done.add((parent, path[-1]))
        fixed = decode_repairing(parent, path[-1])
        rounds = MAX_ROUNDS - len(path)
        while fixed not in seen:  # a reading already there is searched, and so on down
            seen.add(fixed)
            out.append(fixed)
            if rounds <= 0 or not has_escapes(fixed):
                break
            fixed = _paired(_TOKEN.sub(_plain, fixed))
            rounds -= 1
    return out


# -- one escape family at a time ---------------------------------------------------------
# A key may itself hold an escape-like sequence (``\\``, ``%41``, ``&amp;``): a text that
# spells one of its other characters escaped is decoded in all families at once, so the
# key's own sequence is decoded too, and the reading holds the key's decoded form, not the
# key. Those decoded forms are registered with the key (:func:`decoded_forms`).
_FAMILIES: Final = (
    re.compile(
        r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
        r"|\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|[/\"'\\bfnrt])"
    ),
    re.compile(r"%[0-9a-fA-F]{2}(?:%[0-9a-fA-F]{2})*"),
    re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]{1,31});?"),
)
_MAX_FORMS: Final = 64
_FAMILY_CHARS: Final = ("\\", "%", "&")


def _family_steps(text: str) -> list[re.Pattern[str]]:
    """The single families worth decoding alone in ``text``: only when it mixes them."""
    present = [
        family for char, family in zip(_FAMILY_CHARS, _FAMILIES, strict=True) if char in text
    ]
    if not present or (len(present) == 1 and "+" not in text):
        return []  # one family (no blank spelling): the all-families reading is the same
    return present


_MAX_READINGS: Final = 32


_Path = tuple[re.Pattern[str], ...]


_Edge = tuple[str, _Path, str]


def _readings(text: str, merged: list[_Edge] | None = None) -> list[_Edge]:
    """Every reading of ``text`` up to MAX_ROUNDS steps (one family, or all), with its path
    and the reading its last step decoded.

    Each level's all-families step from the all-families chain comes first, so the chain is
    never cut by the cap of 32 nor merged into another path. A step whose reading another
    path reached first is left out, but added to ``merged`` when its input holds UTF-8 read
    as latin-1: repaired, two paths to one reading may differ (:func:`decode_repairing`).
    """
    out: list[_Edge] = []
    seen = {text}
    level: list[tuple[str, _Path, str]] = [(text, (), text)]
    for _ in range(MAX_ROUNDS):
        following = []
        for current, path, _ in level:
            if not has_escapes(current):
                continue
            pure = all(p is _TOKEN for p in path)
            for step in (_TOKEN, *_family_steps(current)):
                reading = _paired(step.sub(_plain, current))
                chain = pure and step is _TOKEN
                if reading in seen or (len(seen) > _MAX_READINGS and not chain):
                    if merged is not None and len(merged) < _MAX_READINGS and has_mojibake(current):
                        merged.append((reading, (*path, step), current))
                    continue
                seen.add(reading)
                following.append((reading, (*path, step), current))
        out.extend(following)
        level = following
    return out


def family_readings(text: str) -> list[tuple[str, _Path]]:
    """``text`` decoded one family at a time where it mixes families, with each path taken.

    A key holding ``%00`` echoed with JSON ``\\u00a0`` for another character reads back as
    the key only when the JSON escapes alone are decoded; nested (HTML inside JSON), each
    level may be a different family. Every reading up to :data:`MAX_ROUNDS` steps, each
    step one family or all of them, with at least one single-family step (the all-families
    chain is :func:`decode`'s own); at most 32, and as many paths whose reading another
    path reached first but whose input holds UTF-8 read as latin-1.
    """
    merged: list[_Edge] = []
    readings = _readings(text, merged)
    return [(r, path) for r, path, _ in (*readings, *merged) if any(p is not _TOKEN for p in path)]


def decoded_forms(form: str) -> frozenset[str]:
    """``form`` as each escape family's decoding, and their compositions, leaves it.

    Up to :data:`MAX_ROUNDS` steps, each one family (JSON, percent, HTML) or all at once
    (what :func:`decode` does to a text); at most 64 distinct strings, ``form`` excluded.
    Empty when ``form`` holds no escape character (the common case costs four tests).
    """
    if not has_escapes(form):
        return frozenset()
    seen = {form}
    level = [form]
    for _ in range(MAX_ROUNDS):
        following: list[str] = []
        for current in level:
            if not has_escapes(current):
                continue
            steps = [_paired(family.sub(_plain, current)) for family in _FAMILIES]
            steps.extend(decode(current))
            for step in steps:
                if step not in seen and len(seen) <= _MAX_FORMS:
                    seen.add(step)
                    following.append(step)
        level = following
    seen.discard(form)
    return frozenset(seen)


# -- the cut ------------------------------------------------------------------------------
#: How many times longer than the value a spelling the decoder reads can be: three levels of
#: nesting (JSON of a percent-encoding of a JSON escape is about 108 characters for one).
MAX_GROWTH: Final = 128

_RUN: Final = re.compile(
    r"(?:" + _TOKEN.pattern + r"|[\w.~-]"
    # an escape cut short at the end of the text
    r"|\\(?:[uU][0-9a-fA-F]{0,7}|x[0-9a-fA-F]?)?\Z|%[0-9a-fA-F]?\Z|&#?[xX]?[0-9A-Za-z]*\Z)+"
)


def open_escape_tail(kept: str, window: int) -> str:
    """``kept`` (text cut short) without a trailing run of escapes the cut went through.

    A spelling longer than the look-ahead margin (zero-padded HTML references have no
    bound) is not seen whole, so it is not masked; its escaped head before the cut would
    still be a fragment of the secret. The trailing run of escapes, letters and digits
    within the last ``window`` characters is dropped when it holds an escape.
    """
    tail = kept[-window:]
    if not has_escapes(tail):
        return kept
    last = None
    for last in _RUN.finditer(tail):  # noqa: B007 - only the last run matters
        pass
    if last is None or last.end() != len(tail):
        return kept
    run = last.group(0)
    if not (has_escapes(run) or "&" in run):
        return kept
    return kept[: len(kept) - len(tail) + last.start()]
