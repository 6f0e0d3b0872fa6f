"""One redactor that every path uses: logs, traces, metrics and exception messages.

It knows three things:

- **secret values**: every live owner's values (a session's auth header values), registered
  with :meth:`Redactor.set_secrets` and forgotten on :meth:`Redactor.forget` or when the owner
  is garbage-collected. Each value is registered with its derived forms: the credential after
  an auth scheme (``Bearer xyz`` -> ``xyz``), for ``Basic`` the decoded ``user:pass`` and its
  parts, and the URL-encoded, JSON-escaped and ``repr``-escaped spellings of each.
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
nothing to mask is scanned at C speed whatever the number of secrets, and one replacement
pattern (longest form first, so a secret that is a prefix of another never leaves the tail of
the longer one) that runs only when something was found. Forms shorter than four characters
are never registered: masking them would garble ordinary text.

Limits: numbers are not masked (a secret made only of digits inside an ``int`` stays), dict
keys are not masked, and anything that writes outside logging (for example
``http.client.HTTPConnection.debuglevel``, which prints headers to stdout) is out of reach; see
:mod:`observable_session.logs`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import sys
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

from .telemetry._semconv import REDACTED

__all__ = [
    "DEFAULT_REDACTOR",
    "REDACTED",
    "MaskedException",
    "Redactor",
    "mask",
    "mask_url",
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
_NAME_CACHE_MAX: Final = 4096

# Characters ranked from most to least common in log lines, URLs and JSON; anything not
# listed is rarer still. A secret form is detected from its rarest character, so the
# detection pattern is tried at few positions of ordinary text.
_COMMON_CHARS: Final = (
    " etaoinsrlcdhupmgfbywkvxqjz_./-:0123456789\"',={}[]()"
    "TEASRLCDIONUPMGHBFWYKVXQJZ?&%+@#*!$;<>\\|^~`\t\n"
)
_RANK: Final = {ch: i for i, ch in enumerate(_COMMON_CHARS)}

_SCHEME_VALUE: Final = re.compile(r"([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)[ \t]+(\S.*)", re.DOTALL)
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
    match = _SCHEME_VALUE.fullmatch(value.strip())
    if match is None:
        return parts
    scheme, credential = match.group(1), match.group(2).strip()
    parts.add(credential)
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


def derived_forms(value: str) -> frozenset[str]:
    """Every spelling of ``value`` that the redactor masks (forms of 4+ characters only)."""
    forms: set[str] = set()
    for part in _credential_parts(value):
        if len(part) < MIN_FORM_LENGTH:
            continue
        for escaped in _escaped_forms(part):
            forms.add(escaped)
        for url_form in _url_forms(part):
            forms.add(url_form)
            forms.update(_escaped_forms(url_form))
    return frozenset(f for f in forms if len(f) >= MIN_FORM_LENGTH)


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


def _case_insensitive_literal_alternatives(word: str, tail: str) -> list[str]:
    """``word`` case-insensitively, as alternatives that each start with a literal."""
    rest = f"(?i:{re.escape(word[1:])})"
    return [re.escape(first) + rest + tail for first in {word[0].lower(), word[0].upper()}]


def _key_pattern(exact: Iterable[str], fragments: Iterable[str]) -> str:
    """A query key that is sensitive: an exact name or one containing a fragment."""

    def loose(normalised: str) -> str:
        return "(?i:" + "[-_]?".join(re.escape(ch) for ch in normalised) + ")"

    names = [loose(n) for n in sorted(exact, key=len, reverse=True)]
    names += [r"[^=&#\s]*?" + loose(f) + r"[^=&#\s]*" for f in fragments]
    return "(?:" + "|".join(names) + ")"


class _Matchers(NamedTuple):
    """An immutable snapshot of everything ``mask`` needs; swapped whole on change."""

    detect: re.Pattern[str]
    values: re.Pattern[str] | None
    structure: re.Pattern[str]


def _build_matchers(
    forms: Iterable[str], exact: Iterable[str], fragments: Iterable[str]
) -> _Matchers:
    forms = sorted(set(forms), key=lambda f: (-len(f), f))
    key = _key_pattern(exact, fragments)
    cred = rf"[ \t]+(?=[A-Za-z0-9\-._~+/=]{{{MIN_FORM_LENGTH}}}){_TOKEN68}"
    detect_alts = []
    for word in _SCHEME_WORDS:
        detect_alts += _case_insensitive_literal_alternatives(word, cred)
    detect_alts.append(r"://[^\s/?#]*@")
    detect_alts += [re.escape(sep) + key + "=" for sep in "?&;#"]
    detect_alts += _detect_alternatives(forms)
    schemes = "|".join(_SCHEME_WORDS)
    structure = re.compile(
        r"(?P<ui>://)[^\s/?#]*@"
        rf"|(?P<qsep>[?&;#])(?P<qkey>{key})={_QUERY_VALUE}"
        rf"|(?P<scheme>(?i:{schemes}))(?P<sp>[ \t]+)(?P<cred>{_TOKEN68})"
    )
    values = re.compile("|".join(re.escape(f) for f in forms)) if forms else None
    return _Matchers(re.compile("|".join(detect_alts)), values, structure)


def _replace_structure(match: re.Match[str]) -> str:
    if match.group("ui") is not None:
        return f"://{REDACTED}:{REDACTED}@"
    if match.group("qsep") is not None:
        return f"{match.group('qsep')}{match.group('qkey')}={REDACTED}"
    cred = match.group("cred")
    if not _looks_like_credential(cred):
        return match.group(0)
    core = cred.rstrip(".,;:")
    return f"{match.group('scheme')}{match.group('sp')}{REDACTED}{cred[len(core) :]}"


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
        self._owners: dict[int, frozenset[str]] = {}
        self._finalizers: dict[int, weakref.finalize[Any, Any]] = {}
        self._pending: list[int] = []
        self._exact = frozenset(_normalise(n) for n in (*SENSITIVE_NAMES, *SENSITIVE_QUERY_KEYS))
        self._exact |= frozenset(_normalise(n) for n in sensitive_names)
        self._fragments = tuple(_normalise(f) for f in SENSITIVE_FRAGMENTS)
        self._name_cache: dict[str, bool] = {}
        self._matchers = _build_matchers((), self._exact, self._fragments)

    # -- registration ---------------------------------------------------------------
    def set_secrets(self, owner: object, values: Iterable[str]) -> None:
        """Replace the secret values registered for ``owner`` (and their derived forms).

        The values are forgotten by :meth:`forget`, or when ``owner`` is garbage-collected if
        it can be weakly referenced.
        """
        forms: set[str] = set()
        for value in values:
            forms |= derived_forms(value)
        key = id(owner)
        with self._lock:
            self._owners[key] = frozenset(forms)
            if key not in self._finalizers:
                # An owner that cannot be weakly referenced keeps its values until forget().
                with contextlib.suppress(TypeError):
                    self._finalizers[key] = weakref.finalize(owner, self._collected, key)
            self._drain_locked()
            self._rebuild_locked()
        self._try_drain()

    def forget(self, owner: object) -> None:
        """Drop every secret registered for ``owner``."""
        key = id(owner)
        with self._lock:
            finalizer = self._finalizers.pop(key, None)
            if finalizer is not None:
                finalizer.detach()
            self._owners.pop(key, None)
            self._drain_locked()
            self._rebuild_locked()
        self._try_drain()

    def add_sensitive_names(self, *names: str) -> None:
        """Treat each of ``names`` (case-insensitive, ``-``/``_`` ignored) as sensitive."""
        with self._lock:
            self._exact |= frozenset(_normalise(n) for n in names)
            self._name_cache = {}
            self._rebuild_locked()

    def _collected(self, key: int) -> None:
        # Runs from the garbage collector, possibly while this thread holds the lock.
        self._pending.append(key)
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
            key = self._pending.pop()
            self._finalizers.pop(key, None)
            changed = self._owners.pop(key, None) is not None or changed
        return changed

    def _rebuild_locked(self) -> None:
        forms = frozenset().union(*self._owners.values())
        self._matchers = _build_matchers(forms, self._exact, self._fragments)

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
        matchers = self._matchers
        if matchers.detect.search(text) is None:
            return text
        if matchers.values is not None:
            text = matchers.values.sub(REDACTED, text)
        return matchers.structure.sub(_replace_structure, text)

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
        out: dict[Any, Any] = {}
        for key, value in mapping.items():
            if isinstance(key, str) and self.is_sensitive_name(key):
                out[key] = REDACTED
            elif type(value) is str:
                out[key] = self.mask(value)
            else:
                out[key] = self.scrub(value)
        return out

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

    def scrub_sequence(self, items: Sequence[object]) -> list[object]:
        """A list of ``items`` each scrubbed."""
        return [self.scrub(item) for item in items]


#: The redactor every :class:`observable_session.Session` registers its auth values with.
DEFAULT_REDACTOR: Final = Redactor()


def mask(text: str) -> str:
    """Mask ``text`` with :data:`DEFAULT_REDACTOR` (see :meth:`Redactor.mask`)."""
    return DEFAULT_REDACTOR.mask(text)


def mask_url(url: str) -> str:
    """Mask ``url`` with :data:`DEFAULT_REDACTOR` (see :meth:`Redactor.mask_url`)."""
    return DEFAULT_REDACTOR.mask_url(url)
