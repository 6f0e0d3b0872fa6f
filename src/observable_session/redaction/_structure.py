"""Secrets found by shape, not by value: URL userinfo, sensitive query values, scheme creds.

Free text is cleared of ``<scheme> <credential>`` after ``Bearer``, ``Basic`` or ``Token``
even when the credential was never registered (a lower-case word such as ``Bearer token``
is left alone, so prose is not garbled). The detector is one precompiled pattern that does
not depend on the registered secrets, so it never needs recompiling when they change.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from ._names import REDACTED

__all__ = ["Structure"]

MIN_CREDENTIAL: Final = 4
# Possessive quantifiers (Python 3.11+) spare the detector pointless backtracking.
_POSSESSIVE: Final = "+" if sys.version_info >= (3, 11) else ""
_TOKEN68: Final = r"[A-Za-z0-9\-._~+/]+=*"
_SCHEME_WORDS: Final = ("Bearer", "Basic", "Token")
_QUERY_VALUE: Final = r"[^&#\s'\"<>]*"

_STRUCTURE: Final = re.compile(
    r"(?P<ui>://)[^\s/?#]*@"
    rf"|(?P<qsep>[?&;#])(?P<qkey>[^=&#\s'\"<>]+)=(?P<qval>{_QUERY_VALUE})"
    rf"|(?P<scheme>(?i:{'|'.join(_SCHEME_WORDS)}))(?P<sp>[ \t]+)(?P<cred>{_TOKEN68})"
)


def _looks_like_credential(cred: str) -> bool:
    """Whether the token after a scheme word is a credential rather than an ordinary word."""
    core = cred.rstrip(".,;:")
    if len(core) < MIN_CREDENTIAL:
        return False
    return not (core.isalpha() and core[1:].islower())


def _scheme_detector() -> str:
    """``<scheme> <credential>``, detected from the blank after the scheme word.

    Starting on the blank (rare in identifiers and URLs) rather than on ``b`` or ``t``
    (common letters) keeps ordinary text off the slow path.
    """
    by_width: dict[int, list[str]] = {}
    for word in _SCHEME_WORDS:
        by_width.setdefault(len(word), []).append(re.escape(word))
    last = "".join(sorted({ch for w in _SCHEME_WORDS for ch in (w[-1].lower(), w[-1].upper())}))
    behind = "|".join(f"(?<=(?i:{'|'.join(ws)})[ \\t])" for ws in by_width.values())
    cred = rf"[ \t]*(?=[A-Za-z0-9\-._~+/=]{{{MIN_CREDENTIAL}}})"
    return f"(?<=[{last}][ \\t])(?:{behind}){cred}"


def _core(name: str) -> str:
    words = [w for w in re.split(r"[-_.\s]+", name) if w] or [name]
    return max(words, key=len)[:4].lower()


def _key_detector(names: Iterable[str]) -> str:
    """A query key that may be sensitive: it holds the core of a sensitive name.

    The core is the first four letters of the name's longest word (``Proxy-Authorization``
    -> ``auth``), in lower, title or upper case. Only a cheap first test: the replacement
    callback decides by the name rules.
    """
    by_first: dict[str, set[str]] = {}
    for name in names:
        core = _core(name)
        by_first.setdefault(core[0], set()).update((core[1:], core[1:].upper()))
    branches = []
    for first in sorted(by_first):
        rests = sorted(by_first[first], key=lambda r: (-len(r), r))
        cls = re.escape(first) + re.escape(first.upper())
        branches.append(f"[{cls}](?:" + "|".join(re.escape(r) for r in rests) + ")")
    firsts = "".join(re.escape(ch) for f in sorted(by_first) for ch in (f, f.upper()))
    # The lookahead tries the branches only where a core can start.
    return rf"[^=&# \t\r\n]*?(?=[{firsts}])(?:" + "|".join(branches) + ")"


def _folded(text: str) -> str:
    """``text`` case-folded as far as the scheme pattern's case-insensitive match goes.

    That match also takes ``\u017f`` for ``s`` and the Kelvin sign for ``k`` (folding does
    too), and dotted and dotless capital/small I for ``i`` (folding does not: mapped here).
    """
    return text.casefold().replace("\u0131", "i").replace("i\u0307", "i")


class Structure:
    """Masks by shape; built once per set of sensitive names."""

    __slots__ = ("_keys", "_schemes", "_sensitive", "_userinfo")

    def __init__(self, names: Iterable[str], sensitive: Callable[[str], bool]) -> None:
        self._sensitive = sensitive
        scheme = _scheme_detector()
        self._schemes = re.compile(f" {scheme}|\\t{scheme}").search
        self._userinfo = re.compile(rf"://[^ \t\r\n/?#@]*{_POSSESSIVE}@").search
        key = _key_detector(names)
        # One alternative per separator: each starts with a literal, so the compiled
        # pattern's first-character set is small and ordinary text is skipped in C.
        self._keys = re.compile("|".join(re.escape(sep) + key for sep in "?&;#")).search

    def detect(self, text: str) -> object | None:
        """Anything that may need masking by shape (a cheap, over-eager first test).

        Each shape's pattern runs only when the text holds the characters it starts from:
        ``@``, a query separator, or a blank and a scheme word in any case (see
        :func:`_folded`).
        """
        if "@" in text:
            found = self._userinfo(text)
            if found is not None:
                return found
        if "?" in text or "&" in text or ";" in text or "#" in text:
            found = self._keys(text)
            if found is not None:
                return found
        if " " in text or "\t" in text:
            folded = text.lower() if text.isascii() else _folded(text)
            if "bearer" in folded or "basic" in folded or "token" in folded:
                return self._schemes(text)
        return None

    def mask(self, text: str) -> str:
        """``text`` with userinfo, sensitive query values and scheme credentials REDACTED."""
        return _STRUCTURE.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        if match.group("ui") is not None:
            return f"://{REDACTED}:{REDACTED}@"
        if match.group("qsep") is not None:
            if self._sensitive(unquote_plus(match.group("qkey"))):
                return f"{match.group('qsep')}{match.group('qkey')}={REDACTED}"
            return match.group(0)
        cred = match.group("cred")
        if not _looks_like_credential(cred):
            return match.group(0)
        core = cred.rstrip(".,;:")
        return f"{match.group('scheme')}{match.group('sp')}{REDACTED}{cred[len(core) :]}"

    def mask_url_parts(self, url: str) -> str:
        """``url`` with userinfo and sensitive query values REDACTED (values not masked)."""
        if "@" not in url and "?" not in url and "#" not in url:
            return url
        try:
            parts = urlsplit(url)
        except ValueError:
            return url
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}:{REDACTED}@" + netloc.rpartition("@")[2]
        query = self._mask_query(parts.query)
        fragment = self._mask_query(parts.fragment)
        if netloc == parts.netloc and query == parts.query and fragment == parts.fragment:
            return url  # keep the exact spelling when the structure had nothing to hide
        return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))

    def _mask_query(self, query: str) -> str:
        if "=" not in query:
            return query
        pieces = []
        for piece in query.split("&"):
            name, sep, _ = piece.partition("=")
            if sep and self._sensitive(unquote_plus(name)):
                piece = f"{name}={REDACTED}"
            pieces.append(piece)
        return "&".join(pieces)
