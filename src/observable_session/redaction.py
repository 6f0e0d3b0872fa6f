"""One redactor that every path uses: logs, traces, metrics and exception messages.

It knows three things:

- **secret values**: every live owner's values (a session's auth header values), registered
  with :meth:`Redactor.set_secrets` and forgotten on :meth:`Redactor.forget` or when the owner
  is garbage-collected. Each value is registered with its derived forms: the credential after
  an auth scheme (``Bearer xyz`` -> ``xyz``), for ``Basic`` the decoded ``user:pass`` and its
  parts, and the URL-encoded, JSON-escaped and ``repr``-escaped spellings of each (for a
  value outside latin-1, also its UTF-8 bytes read as latin-1, as a server echoes it).
- **sensitive names**, matched case-insensitively (``-`` and ``_`` ignored): ``Authorization``,
  ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, ``X-API-Key``, ``api-key``, the query
  keys the OpenTelemetry conventions redact (``AWSAccessKeyId``, ``Signature``, ``sig``,
  ``X-Goog-Signature``, ...) and any name containing ``token``, ``secret``, ``password``,
  ``passwd`` or ``signature``. Names under ``observable_session.`` are never sensitive.
- **URLs**: userinfo becomes ``REDACTED:REDACTED``, values of sensitive query keys become
  ``REDACTED``.

Free text is also cleared of ``<scheme> <credential>`` after ``Bearer``, ``Basic`` or ``Token``
even when the credential was never registered (a lower-case word such as ``Bearer token`` is
left alone, so prose is not garbled).

Masking is driven by precompiled matchers rebuilt only when secrets or names change: one
detection pattern that starts only on the rarest character of each secret form, so text with
nothing to mask is scanned at C speed whatever the number of secrets (a structlog event gets
one search for all its strings), and one replacement pattern (a trie, longest form first, so
a secret that is a prefix of another never leaves the tail of the longer one) compiled and
run only when something was found. Forms shorter than four characters are never registered:
masking them would garble ordinary text.

Limits: numbers are not masked (a secret made only of digits inside an ``int`` stays), dict
keys are not masked, and anything that writes outside logging (for example
``http.client.HTTPConnection.debuglevel``, which prints headers to stdout) is out of reach; see
:mod:`observable_session.logs`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import json
import re
import sys
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

from .telemetry._semconv import REDACTED

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.util.types import Attributes

__all__ = [
    "DEFAULT_REDACTOR",
    "REDACTED",
    "EventRedactor",
    "MaskedException",
    "RedactingSpanExporter",
    "Redactor",
    "mask",
    "mask_url",
    "redact_event",
]

MIN_FORM_LENGTH: Final = 4

#: Header and field names that are sensitive as a whole (compared after normalisation).
SENSITIVE_NAMES: Final = (
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "X-API-Key",
    "api-key",
)
#: Query keys the OpenTelemetry conventions redact in ``url.full``, plus cloud signing keys.
SENSITIVE_QUERY_KEYS: Final = (
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
    "X-Goog-Credential",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
)
#: A name containing any of these (after normalisation) is sensitive.
SENSITIVE_FRAGMENTS: Final = ("token", "secret", "password", "passwd", "signature")

_OWN_PREFIX: Final = "observable_session."
_SCALARS: Final = frozenset({int, float, bool})
# Possessive quantifiers (Python 3.11+) spare the detector pointless backtracking.
_POSSESSIVE: Final = "+" if sys.version_info >= (3, 11) else ""
_NAME_CACHE_MAX: Final = 4096

# Characters ranked from most to least common in log lines, URLs and JSON; anything not
# listed is rarer still. A secret form is detected from its rarest character, so the
# detection pattern is tried at few positions of ordinary text.
_COMMON_CHARS: Final = (
    " etaoinsrlcdhupmgfbywkvxqjz_./-:0123456789\"',={}[]()"
    "TEASRLCDIONUPMGHBFWYKVXQJZ?&%+@#*!$;<>\\|^~`\t\n"
)
_RANK: Final = {ch: i for i, ch in enumerate(_COMMON_CHARS)}

# "<scheme> <credential>": the credential is everything after the first blank, so blanks
# that belong to it (a caller may send them elsewhere, in a query say) are kept.
_SCHEME_VALUE: Final = re.compile(r"([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)[ \t](.*\S.*)", re.DOTALL)
_TOKEN68: Final = r"[A-Za-z0-9\-._~+/]+=*"
_SCHEME_WORDS: Final = ("Bearer", "Basic", "Token")
_QUERY_VALUE: Final = r"[^&#\s'\"<>]*"
_PERCENT_ESCAPE: Final = re.compile(r"%[0-9A-F]{2}")


def _normalise(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _looks_like_credential(cred: str) -> bool:
    """Whether the token after a scheme word is a credential rather than an ordinary word."""
    core = cred.rstrip(".,;:")
    if len(core) < MIN_FORM_LENGTH:
        return False
    return not (core.isalpha() and core[1:].islower())


def _url_forms(value: str) -> set[str]:
    """How ``value`` may be spelled once it went into a URL, a form body or a query."""
    forms = {
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        quote(value, safe="!#$%&'()*+,/:;=?@[]~"),
    }
    try:
        from requests.models import PreparedRequest

        for probe, marker in (("http://h/?q=", "?q="), ("http://h/p/", "/p/")):
            prepared = PreparedRequest()
            prepared.prepare_url(probe + value, None)
            url = prepared.url or ""
            forms.add(url[url.index(marker) + len(marker) :])
    except Exception:  # any value requests refuses has no URL form to hide
        pass
    lowered = {_PERCENT_ESCAPE.sub(lambda m: m.group(0).lower(), f) for f in forms}
    return forms | lowered


def _escaped_forms(value: str) -> set[str]:
    """``value`` as JSON, ``repr`` and bytes ``repr`` print it, escaped once and twice."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms.add(repr(value)[1:-1])
    forms.add(ascii(value)[1:-1])
    for encoding in ("utf-8", "latin-1"):
        with contextlib.suppress(UnicodeEncodeError):
            forms.add(repr(value.encode(encoding))[2:-1])
    twice = set()
    for form in forms:
        twice.add(json.dumps(form)[1:-1])
        twice.add(repr(form)[1:-1])
    return forms | twice


def _credential_parts(value: str) -> set[str]:
    """``value``, the credential after its auth scheme, and Basic's decoded parts."""
    parts = {value, value.strip()}
    match = _SCHEME_VALUE.fullmatch(value.lstrip())
    if match is None:
        return parts
    scheme, credential = match.group(1), match.group(2)
    parts.update((credential, credential.strip()))
    credential = credential.strip()
    if scheme.lower() == "basic":
        try:
            raw = base64.b64decode(credential, validate=True)
        except (binascii.Error, ValueError):
            return parts
        for encoding in ("utf-8", "latin-1"):
            try:
                decoded = raw.decode(encoding)
            except UnicodeDecodeError:
                continue
            user, _, password = decoded.partition(":")
            parts.update((decoded, user, password))
            break
    return parts


def _wire_spellings(part: str) -> set[str]:
    """``part`` and, if it is not ASCII, its UTF-8 bytes read back as latin-1.

    A header value outside latin-1 goes out as UTF-8; a server decoding header bytes as
    latin-1 (``http.server`` does) echoes it in that spelling.
    """
    if part.isascii():
        return {part}
    return {part, part.encode("utf-8", "surrogatepass").decode("latin-1")}


def derived_forms(value: str) -> frozenset[str]:
    """Every spelling of ``value`` that the redactor masks (forms of 4+ characters only)."""
    forms: set[str] = set()
    parts = {wire for part in _credential_parts(value) for wire in _wire_spellings(part)}
    for part in parts:
        if len(part) < MIN_FORM_LENGTH:
            continue
        for escaped in _escaped_forms(part):
            forms.add(escaped)
        for url_form in _url_forms(part):
            forms.add(url_form)
            forms.update(_escaped_forms(url_form))
    return frozenset(f for f in forms if len(f) >= MIN_FORM_LENGTH)


def _minimal_forms(forms: Iterable[str]) -> frozenset[str]:
    """The forms that contain no other form: enough to detect any of ``forms``.

    ``Bearer xyz`` holds ``xyz``: text holding the former holds the latter, so detection
    needs only ``xyz`` (replacement still uses every form, longest first).
    """
    kept: list[str] = []
    for form in sorted(forms, key=len):
        if not any(shorter in form for shorter in kept):
            kept.append(form)
    return frozenset(kept)


def _rarest_index(form: str) -> int:
    unknown = len(_COMMON_CHARS)
    best, best_rank = 0, -1
    for i, ch in enumerate(form):
        rank = _RANK.get(ch, unknown)
        if rank > best_rank:
            best, best_rank = i, rank
    return best


def _detect_alternatives(forms: Iterable[str]) -> list[str]:
    """Alternatives that start on each form's rarest character, grouped by that character.

    ``X(?<=abX)cd`` matches ``abXcd`` with the scan starting at ``X``: the compiled pattern's
    first-character set holds only the rare anchors, so ordinary text is skipped in C.
    """
    groups: dict[str, list[str]] = {}
    for form in forms:
        i = _rarest_index(form)
        behind = f"(?<={re.escape(form[: i + 1])})" if i else ""
        groups.setdefault(form[i], []).append(behind + re.escape(form[i + 1 :]))
    unknown = len(_COMMON_CHARS)
    alternatives = []
    for anchor in sorted(groups, key=lambda ch: (_RANK.get(ch, unknown), ch)):
        rests = sorted(set(groups[anchor]), key=len, reverse=True)
        body = rests[0] if len(rests) == 1 else "(?:" + "|".join(rests) + ")"
        alternatives.append(re.escape(anchor) + body)
    return alternatives


def _trie_pattern(forms: Iterable[str]) -> str:
    """One alternation of ``forms`` shaped as a trie, longest match first at each position.

    Each branch point tries the longer continuations before stopping, so a form that is a
    prefix of another never wins over it (and never leaves the longer one's tail behind).
    """
    trie: dict[str, Any] = {}
    for form in forms:
        node = trie
        for ch in form:
            node = node.setdefault(ch, {})
        node[""] = None

    def emit(node: dict[str, Any]) -> str:
        out = []
        while True:  # a chain of single children needs no group (and no recursion)
            keys = sorted(k for k in node if k)
            if len(keys) == 1 and "" not in node:
                out.append(re.escape(keys[0]))
                node = node[keys[0]]
                continue
            if keys:
                body = "(?:" + "|".join(re.escape(k) + emit(node[k]) for k in keys) + ")"
                out.append(body + "?" if "" in node else body)
            return "".join(out)

    return emit(trie)


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
    cred = rf"[ \t]*(?=[A-Za-z0-9\-._~+/=]{{{MIN_FORM_LENGTH}}})"
    return f"(?<=[{last}][ \\t])(?:{behind}){cred}"


def _key_detector(names: Iterable[str]) -> str:
    """A query key that may be sensitive: it holds the core of a sensitive name.

    The core is the first four letters of the name's longest word (``Proxy-Authorization``
    -> ``auth``), in lower, title or upper case. Only a cheap first test: the replacement
    callback decides with :meth:`Redactor.is_sensitive_name`.
    """
    by_first: dict[str, set[str]] = {}
    for name in names:
        words = [w for w in re.split(r"[-_.\s]+", name) if w] or [name]
        core = max(words, key=len)[:4].lower()
        by_first.setdefault(core[0], set()).update((core[1:], core[1:].upper()))
    branches = []
    for first in sorted(by_first):
        rests = sorted(by_first[first], key=lambda r: (-len(r), r))
        cls = re.escape(first) + re.escape(first.upper())
        branches.append(f"[{cls}](?:" + "|".join(re.escape(r) for r in rests) + ")")
    firsts = "".join(re.escape(ch) for f in sorted(by_first) for ch in (f, f.upper()))
    # The lookahead tries the branches only where a core can start.
    return rf"[^=&# \t\r\n]*?(?=[{firsts}])(?:" + "|".join(branches) + ")"


class _Matchers:
    """An immutable snapshot of everything ``mask`` needs; swapped whole on change."""

    __slots__ = ("_forms", "_values", "detect")

    def __init__(self, detect: re.Pattern[str], forms: Sequence[str]) -> None:
        #: Anything that may need masking: a secret form (from its rarest character), a URL
        #: userinfo, a possibly sensitive query key, a credential after a scheme word.
        self.detect = detect
        self._forms = forms
        self._values: re.Pattern[str] | None = None

    @property
    def values(self) -> re.Pattern[str] | None:
        """The replacement matcher for secret forms, compiled when first needed."""
        if self._values is None and self._forms:
            # Two threads may both compile it; either result is the same pattern.
            self._values = re.compile(_trie_pattern(self._forms))
        return self._values


_STRUCTURE: Final = re.compile(
    r"(?P<ui>://)[^\s/?#]*@"
    rf"|(?P<qsep>[?&;#])(?P<qkey>[^=&#\s'\"<>]+)=(?P<qval>{_QUERY_VALUE})"
    rf"|(?P<scheme>(?i:{'|'.join(_SCHEME_WORDS)}))(?P<sp>[ \t]+)(?P<cred>{_TOKEN68})"
)


def _build_matchers(
    forms: Iterable[str], detect_forms: Iterable[str], names: Iterable[str]
) -> _Matchers:
    """Matchers that replace ``forms`` and detect them through ``detect_forms``.

    Every form must contain one of ``detect_forms`` (see :func:`_minimal_forms`).
    """
    scheme = _scheme_detector()
    detect_alts = [" " + scheme, r"\t" + scheme, rf"://[^ \t\r\n/?#@]*{_POSSESSIVE}@"]
    key = _key_detector(names)
    detect_alts += [re.escape(sep) + key for sep in "?&;#"]
    detect_alts += _detect_alternatives(sorted(detect_forms))
    return _Matchers(re.compile("|".join(detect_alts)), sorted(forms))


def _qualified_name(cls: type) -> str:
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


class MaskedException(Exception):
    """A masked stand-in for an exception: ``str`` is ``"<qualified.Type>: <masked message>"``.

    Built by :meth:`Redactor.sanitize_exception`; it carries the original traceback (frames,
    never locals, are what ``traceback`` prints) and masked copies of the chain.
    """

    def __init__(self, original_type: str, masked_message: str) -> None:
        text = f"{original_type}: {masked_message}" if masked_message else original_type
        super().__init__(text)
        #: The fully qualified name of the exception this stands in for.
        self.original_type = original_type
        #: The original message, masked.
        self.masked_message = masked_message


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<unprintable message>"


class Redactor:
    """Masks secrets by value, by name and inside URLs; thread-safe, cheap when idle."""

    def __init__(self, sensitive_names: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        # Per owner: every form (for replacement) and the minimal ones (for detection).
        self._owners: dict[int, tuple[frozenset[str], frozenset[str]]] = {}
        self._finalizers: dict[int, tuple[weakref.finalize[Any, Any], int]] = {}
        self._pending: list[tuple[int, int]] = []
        self._tokens = itertools.count()
        # The names as spelled (for the free-text query detector) and normalised (for lookup).
        self._spellings = frozenset((*SENSITIVE_NAMES, *SENSITIVE_QUERY_KEYS, *sensitive_names))
        self._exact = frozenset(_normalise(n) for n in self._spellings)
        self._fragments = tuple(_normalise(f) for f in SENSITIVE_FRAGMENTS)
        self._name_cache: dict[str, bool] = {}
        self._forms: frozenset[str] = frozenset()
        self._matchers = _build_matchers((), (), self._names())

    # -- registration ---------------------------------------------------------------
    def set_secrets(self, owner: object, values: Iterable[str]) -> None:
        """Replace the secret values registered for ``owner`` (and their derived forms).

        The values are forgotten by :meth:`forget`, or when ``owner`` is garbage-collected if
        it can be weakly referenced.
        """
        forms: set[str] = set()
        for value in values:
            forms |= derived_forms(value)
        entry = (frozenset(forms), _minimal_forms(forms))
        key = id(owner)
        with self._lock:
            self._owners[key] = entry
            current = self._finalizers.get(key)
            if current is None or not current[0].alive:
                # No finalizer yet, or a dead owner's whose collection is still pending and
                # whose id this owner reuses: a fresh token keeps that pending drop from
                # removing this owner's secrets. An owner that cannot be weakly referenced
                # keeps its values until forget().
                token = next(self._tokens)
                with contextlib.suppress(TypeError):
                    finalizer = weakref.finalize(owner, self._collected, key, token)
                    self._finalizers[key] = (finalizer, token)
            self._drain_locked()
            self._rebuild_locked()
        self._try_drain()

    def forget(self, owner: object) -> None:
        """Drop every secret registered for ``owner``."""
        key = id(owner)
        with self._lock:
            current = self._finalizers.pop(key, None)
            if current is not None:
                current[0].detach()
            self._owners.pop(key, None)
            self._drain_locked()
            self._rebuild_locked()
        self._try_drain()

    def add_sensitive_names(self, *names: str) -> None:
        """Treat each of ``names`` (case-insensitive, ``-``/``_`` ignored) as sensitive."""
        with self._lock:
            self._spellings |= frozenset(names)
            self._exact |= frozenset(_normalise(n) for n in names)
            self._name_cache = {}
            self._rebuild_locked(names_changed=True)

    def _collected(self, key: int, token: int) -> None:
        # Runs from the garbage collector, possibly while this thread holds the lock.
        self._pending.append((key, token))
        self._try_drain()

    def _try_drain(self) -> None:
        while self._pending and self._lock.acquire(blocking=False):
            try:
                if self._drain_locked():
                    self._rebuild_locked()
            finally:
                self._lock.release()

    def _drain_locked(self) -> bool:
        changed = False
        while self._pending:
            key, token = self._pending.pop()
            current = self._finalizers.get(key)
            if current is None or current[1] != token:
                continue  # a new owner now has this id; its secrets stay
            del self._finalizers[key]
            changed = self._owners.pop(key, None) is not None or changed
        return changed

    def _names(self) -> list[str]:
        return [*self._spellings, *self._fragments]

    def _rebuild_locked(self, *, names_changed: bool = False) -> None:
        entries = self._owners.values()
        forms: frozenset[str] = frozenset().union(*(every for every, _ in entries))
        if forms == self._forms and not names_changed:
            return  # e.g. another session with the same credential: nothing to recompile
        self._forms = forms
        detect: frozenset[str] = frozenset().union(*(minimal for _, minimal in entries))
        self._matchers = _build_matchers(forms, detect, self._names())

    # -- names ------------------------------------------------------------------------
    def is_sensitive_name(self, name: str) -> bool:
        """Whether a header, field, attribute or query key called ``name`` holds a secret."""
        cached = self._name_cache.get(name)
        if cached is not None:
            return cached
        lowered = name.lower()
        if lowered.startswith(_OWN_PREFIX):
            result = False
        else:
            normalised = _normalise(lowered)
            last = normalised.rpartition(".")[2]
            result = (
                normalised in self._exact
                or last in self._exact
                or any(f in normalised for f in self._fragments)
            )
        cache = self._name_cache
        if len(cache) >= _NAME_CACHE_MAX:
            cache.clear()
        cache[name] = result
        return result

    # -- masking ----------------------------------------------------------------------
    def mask(self, text: str) -> str:
        """``text`` with every secret form, scheme credential and URL secret as REDACTED."""
        if self._pending:
            self._try_drain()
        if self._matchers.detect.search(text) is None:
            return text
        return self._mask_found(text)

    def _mask_found(self, text: str) -> str:
        """The slow path, once detection found something that may need masking."""
        values = self._matchers.values
        if values is not None:
            text = values.sub(REDACTED, text)
        return _STRUCTURE.sub(self._replace_structure, text)

    def _replace_structure(self, match: re.Match[str]) -> str:
        if match.group("ui") is not None:
            return f"://{REDACTED}:{REDACTED}@"
        if match.group("qsep") is not None:
            if self.is_sensitive_name(unquote_plus(match.group("qkey"))):
                return f"{match.group('qsep')}{match.group('qkey')}={REDACTED}"
            return match.group(0)
        cred = match.group("cred")
        if not _looks_like_credential(cred):
            return match.group(0)
        core = cred.rstrip(".,;:")
        return f"{match.group('scheme')}{match.group('sp')}{REDACTED}{cred[len(core) :]}"

    def mask_url(self, url: str) -> str:
        """``url`` with userinfo as ``REDACTED:REDACTED`` and sensitive query values REDACTED."""
        if "@" not in url and "?" not in url and "#" not in url:
            return self.mask(url)
        try:
            parts = urlsplit(url)
        except ValueError:
            return self.mask(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}:{REDACTED}@" + netloc.rpartition("@")[2]
        query = self._mask_query(parts.query)
        fragment = self._mask_query(parts.fragment)
        rebuilt = urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
        if netloc == parts.netloc and query == parts.query and fragment == parts.fragment:
            rebuilt = url  # keep the exact spelling when the structure had nothing to hide
        return self.mask(rebuilt)

    def _mask_query(self, query: str) -> str:
        if "=" not in query:
            return query
        pieces = []
        for piece in query.split("&"):
            name, sep, _ = piece.partition("=")
            if sep and self.is_sensitive_name(unquote_plus(name)):
                piece = f"{name}={REDACTED}"
            pieces.append(piece)
        return "&".join(pieces)

    # -- structures and exceptions ------------------------------------------------------
    def scrub(self, obj: object) -> object:
        """A copy of ``obj`` with sensitive keys' values REDACTED and every string masked.

        Recurses through mappings, lists and tuples; exceptions become masked strings; other
        objects are replaced by their masked ``repr`` only when that ``repr`` held a secret.
        """
        if isinstance(obj, str):
            return self.mask(obj)
        if obj is None or isinstance(obj, (bool, int, float)):
            return obj
        if isinstance(obj, Mapping):
            return self.scrub_mapping(obj)
        if isinstance(obj, (list, tuple)):
            return (
                [self.scrub(item) for item in obj]
                if isinstance(obj, list)
                else tuple(self.scrub(item) for item in obj)
            )
        if isinstance(obj, BaseException):
            return str(self.sanitize_exception(obj))
        if isinstance(obj, (bytes, bytearray)):
            text = bytes(obj).decode("utf-8", "surrogateescape")
            masked = self.mask(text)
            return obj if masked == text else masked.encode("utf-8", "surrogateescape")
        if isinstance(obj, (set, frozenset)):
            return [self.scrub(item) for item in obj]
        try:
            text = repr(obj)
        except Exception:
            return f"<unprintable {type(obj).__qualname__}>"
        masked = self.mask(text)
        return obj if masked == text else masked

    def scrub_mapping(self, mapping: Mapping[Any, Any]) -> dict[Any, Any]:
        """A plain ``dict`` copy of ``mapping``: sensitive keys REDACTED, values scrubbed."""
        if self._pending:
            self._try_drain()
        texts: list[str] = []
        out = self._copy_mapping(mapping, texts)
        self._mask_strings_if_needed(texts, (out,))
        return out

    def _copy_mapping(self, mapping: Mapping[Any, Any], texts: list[str]) -> dict[Any, Any]:
        """A copy with sensitive keys REDACTED and values scrubbed, strings excepted.

        Strings are kept as they are and appended to ``texts``, for one search later.
        """
        names = self._name_cache
        out: dict[Any, Any] = {}
        for key, value in mapping.items():
            if type(key) is str:
                sensitive = names.get(key)
                if sensitive is None:
                    sensitive = self.is_sensitive_name(key)
                if sensitive:
                    out[key] = REDACTED
                    continue
            if type(value) is str:
                out[key] = value
                texts.append(value)
            elif value is None or type(value) in _SCALARS:
                out[key] = value
            else:
                out[key] = self.scrub(value)
        return out

    def _mask_strings_if_needed(self, texts: list[str], targets: Iterable[dict[Any, Any]]) -> None:
        """Mask the string values of ``targets`` in place if any of ``texts`` needs it.

        One detection search over all the strings joined costs far less than one per
        string; only when it finds something is each string looked at on its own.
        """
        if not texts:
            return
        search = self._matchers.detect.search
        if search("\n".join(texts)) is None:
            return
        for target in targets:
            for key, value in target.items():
                if type(value) is str and search(value) is not None:
                    target[key] = self._mask_found(value)

    def sanitize_exception(self, exc: BaseException) -> BaseException:
        """A masked copy of ``exc`` and its whole chain; ``exc`` itself is never changed.

        The copy is a :class:`MaskedException` whose message is the masked original, whose
        traceback is the original's, and whose ``__cause__``/``__context__`` are masked copies
        too, so ``traceback.format_exception(copy)`` holds no secret.
        """
        return self._sanitize(exc, {})

    def _sanitize(self, exc: BaseException, seen: dict[int, BaseException]) -> BaseException:
        done = seen.get(id(exc))
        if done is not None:
            return done
        copy = MaskedException(_qualified_name(type(exc)), self.mask(_safe_str(exc)))
        seen[id(exc)] = copy
        copy = copy.with_traceback(exc.__traceback__)
        notes = getattr(exc, "__notes__", None)
        if isinstance(notes, list):
            copy.__notes__ = [self.mask(str(n)) for n in notes]  # type: ignore[attr-defined]
        group_type = getattr(sys.modules["builtins"], "BaseExceptionGroup", None)
        if group_type is not None and isinstance(exc, group_type):
            children = [self._sanitize(e, seen) for e in exc.exceptions]
            copy.__notes__ = [  # type: ignore[attr-defined]
                *getattr(copy, "__notes__", []),
                *(f"sub-exception: {child}" for child in children),
            ]
        if exc.__cause__ is not None:
            copy.__cause__ = self._sanitize(exc.__cause__, seen)
        if exc.__context__ is not None:
            copy.__context__ = self._sanitize(exc.__context__, seen)
        copy.__suppress_context__ = exc.__suppress_context__
        return copy

    def sanitize_exc_info(self, exc_info: object) -> object:
        """``exc_info`` as structlog and logging accept it, with the exception sanitized.

        ``True`` is resolved from :func:`sys.exc_info`; an exception or a ``(type, value,
        traceback)`` tuple becomes the masked copy; anything falsy is returned unchanged.
        """
        if not exc_info:
            return exc_info
        if isinstance(exc_info, BaseException):
            return self.sanitize_exception(exc_info)
        if isinstance(exc_info, tuple) and len(exc_info) == 3:
            value = exc_info[1]
        else:
            value = sys.exc_info()[1]
        if isinstance(value, BaseException):
            return self.sanitize_exception(value)
        return exc_info


#: The redactor every :class:`observable_session.Session` registers its auth values with.
DEFAULT_REDACTOR: Final = Redactor()


def mask(text: str) -> str:
    """Mask ``text`` with :data:`DEFAULT_REDACTOR` (see :meth:`Redactor.mask`)."""
    return DEFAULT_REDACTOR.mask(text)


def mask_url(url: str) -> str:
    """Mask ``url`` with :data:`DEFAULT_REDACTOR` (see :meth:`Redactor.mask_url`)."""
    return DEFAULT_REDACTOR.mask_url(url)


# -- structlog --------------------------------------------------------------------------

# Keys structlog's ProcessorFormatter uses for its own bookkeeping: never rewritten.
_STRUCTLOG_META: Final = frozenset({"_record", "_from_structlog", "_logger", "_name"})


def _redact_event_dict(redactor: Redactor, event_dict: dict[str, Any]) -> dict[str, Any]:
    # The hot path of every log line: the common cases are inlined (a cached name lookup;
    # one detection search for all the strings of the event and of its nested dicts) and
    # everything else goes through the redactor.
    if redactor._pending:
        redactor._try_drain()
    names = redactor._name_cache
    exc_info = event_dict.get("exc_info")
    texts: list[str] = []
    targets = [event_dict]
    for key, value in event_dict.items():
        sensitive = names.get(key)
        if sensitive is None:
            sensitive = redactor.is_sensitive_name(key)
        if sensitive:
            event_dict[key] = REDACTED
        elif type(value) is str:
            texts.append(value)
        elif type(value) is dict:
            copy = redactor._copy_mapping(value, texts)
            event_dict[key] = copy
            targets.append(copy)
        elif value is not None and type(value) not in _SCALARS and key not in _STRUCTLOG_META:
            event_dict[key] = redactor.scrub(value)
    redactor._mask_strings_if_needed(texts, targets)
    if exc_info:
        event_dict["exc_info"] = redactor.sanitize_exc_info(exc_info)
    return event_dict


class EventRedactor:
    """A structlog processor that scrubs an event dict with a given :class:`Redactor`.

    By key (a sensitive key's value becomes ``REDACTED``) and by value, recursively through
    dicts, lists and tuples; ``exc_info`` becomes a masked copy of the exception and its
    chain, already rendered tracebacks (``exception``, ``stack``) are masked as text. It
    must run before any renderer; it is safe to run more than once.
    """

    __slots__ = ("_redactor",)

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._redactor = DEFAULT_REDACTOR if redactor is None else redactor

    def __call__(self, logger: object, method_name: str, event_dict: Any) -> Any:
        """Scrub ``event_dict`` in place (nested values are copied, never mutated)."""
        return _redact_event_dict(self._redactor, event_dict)


def redact_event(logger: object, method_name: str, event_dict: Any) -> Any:
    """The structlog processor that scrubs an event with :data:`DEFAULT_REDACTOR`.

    See :class:`EventRedactor`; place it before any exception formatter and renderer.
    """
    return _redact_event_dict(DEFAULT_REDACTOR, event_dict)


# -- OpenTelemetry spans ----------------------------------------------------------------

#: Attributes that hold a URL: masked as URLs (userinfo, sensitive query values).
_URL_ATTRIBUTES: Final = frozenset({"url.full", "http.url", "url.original", "http.target"})


class RedactingSpanExporter:
    """Wraps an OpenTelemetry SDK span exporter and scrubs every span before export.

    Attributes (by key and value, URLs as URLs), event attributes (``exception.message``,
    ``exception.stacktrace``...), link attributes, the span name and the status description
    are masked: defence in depth for spans from any instrumentation. Pass it to a span
    processor: ``BatchSpanProcessor(RedactingSpanExporter(OTLPSpanExporter()))``. The SDK is
    imported only when spans are exported, so it stays an optional dependency.
    """

    __slots__ = ("_exporter", "_redactor")

    def __init__(self, exporter: SpanExporter, redactor: Redactor | None = None) -> None:
        self._exporter = exporter
        self._redactor = DEFAULT_REDACTOR if redactor is None else redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export masked copies of ``spans`` with the wrapped exporter."""
        return self._exporter.export([self.redact_span(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self._exporter.force_flush(timeout_millis)

    def redact_span(self, span: ReadableSpan) -> ReadableSpan:
        """A masked copy of ``span``; the original is left as it was."""
        from opentelemetry.sdk.trace import Event
        from opentelemetry.sdk.trace import ReadableSpan as Span
        from opentelemetry.trace import Link, Status

        mask_text = self._redactor.mask
        status = span.status
        if status.description:
            status = Status(status.status_code, mask_text(status.description))
        return Span(
            name=mask_text(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self.redact_attributes(span.attributes),
            events=[
                Event(e.name, self.redact_attributes(e.attributes), e.timestamp)
                for e in span.events
            ],
            links=[
                Link(link.context, self.redact_attributes(link.attributes)) for link in span.links
            ],
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def redact_attributes(self, attributes: Attributes) -> dict[str, Any]:
        """A masked copy of OpenTelemetry ``attributes`` (scalars and sequences)."""
        redactor = self._redactor
        out: dict[str, Any] = {}
        for key, value in (attributes or {}).items():
            if redactor.is_sensitive_name(key):
                out[key] = REDACTED
            elif isinstance(value, str):
                out[key] = (
                    redactor.mask_url(value) if key in _URL_ATTRIBUTES else redactor.mask(value)
                )
            elif isinstance(value, (list, tuple)):
                out[key] = tuple(redactor.mask(v) if isinstance(v, str) else v for v in value)
            else:
                out[key] = value
        return out
