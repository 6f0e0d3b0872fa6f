"""Every credential a session puts on the wire, known to the redactor by value.

One :class:`Credentials` per session is the redactor's owner of that session's values. A
value is registered (all its forms) before a request can carry it: auth header values when
they are assigned, everything else (sensitive-named headers from ``session.headers`` or a
call's ``headers=``, the Basic header and password of ``auth``/netrc, Digest passwords, URL
and proxy userinfo, cookie values) in ``prepare_request`` and on the send path, the one
place every request passes. A value stays registered for the session's whole life, within
:data:`MAX_BYTES` of credential text (the least recently sent values go first beyond that:
a byte bound, whatever the number of rotations); after ``close()`` or collection the
redactor keeps them masked for its grace period.
"""

from __future__ import annotations

import base64
import itertools
import re
import threading
from collections.abc import Container, Iterable, Mapping
from typing import Any, Final
from urllib.parse import unquote, unquote_plus, urlsplit

from .redaction import DEFAULT_REDACTOR

__all__ = [
    "MAX_BYTES",
    "MAX_COOKIE_BYTES",
    "MIN_COOKIE_LENGTH",
    "MIN_FIELD_LENGTH",
    "Credentials",
    "masked_unicode_error",
    "origin_bound",
]

#: Credential text a session keeps masked while it lives (auth values, headers, passwords).
MAX_BYTES: Final = 64 * 1024
#: Cookie values a session keeps masked while it lives (a separate budget: a server that
#: sets many cookies cannot push the auth values out).
MAX_COOKIE_BYTES: Final = 16 * 1024
#: Shorter cookie values (flags such as ``1`` or ``true``) are not masked.
MIN_COOKIE_LENGTH: Final = 8
MIN_VALUE_LENGTH: Final = 4
# A header matched by its name that carries one of these is a flag, not a credential
# (``X-Use-Credentials: true``): registered, the word would be masked in every line.
_FLAG_WORDS: Final = frozenset({"true", "false", "none", "null", "yes", "enabled", "disabled"})
#: Query and body fields shorter than this are not masked: a server that redirects to
#: ``?token=true`` (or a body's ``"token_type": "bearer"``) must not blank a common word out
#: of every log line.
MIN_FIELD_LENGTH: Final = 8
# Proxy-Authorization goes to the proxy, and the jar's Cookie header follows RFC 6265:
# neither is stripped by the origin rule for credential headers.
_NOT_ORIGIN_BOUND: Final = frozenset({"proxy-authorization"})
#: How many containers and pairs of a ``data=``/``json=`` body are looked at for
#: sensitive-named fields, at most (a large body costs no more than its first fields).
MAX_BODY_FIELDS: Final = 256
_PROOF_HEADERS: Final = frozenset({"authorization", "proxy-authorization"})
# The key-derived proof in an Authorization value: a Digest answer (RFC 7616
# ``response="<hex>"``) or a signing scheme's ``Signature=<hex>`` (AWS SigV4). Echoed alone
# (S3 error bodies quote ``<SignatureProvided>``), it is no form of the whole value.
_PROOF: Final = re.compile(
    r'(?:^|[\s,])(?:response|signature)\s*=\s*"?([0-9A-Fa-f]{16,})', re.IGNORECASE
)


class _Budget:
    """Values in least-recently-registered order, within a byte budget."""

    __slots__ = ("limit", "size", "values")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.values: dict[str, int] = {}

    def add(self, value: str, tick: int) -> list[str]:
        """Add ``value``; the values evicted to stay within the budget."""
        self.values[value] = tick
        self.size += len(value)
        evicted: list[str] = []
        if self.size > self.limit:
            for old, _ in sorted(self.values.items(), key=lambda kv: kv[1]):
                if self.size <= self.limit or old == value:
                    break
                del self.values[old]
                self.size -= len(old)
                evicted.append(old)
        return evicted


class Credentials:
    """The redactor's owner of one session's credential values."""

    __slots__ = ("__weakref__", "_budgets", "_lock", "_tick")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._budgets = (_Budget(MAX_BYTES), _Budget(MAX_COOKIE_BYTES))
        self._tick = itertools.count()

    def register(self, values: Iterable[str], *, cookies: bool = False) -> None:
        """Mask ``values`` from now on; returns once every form of each is registered."""
        budget = self._budgets[1 if cookies else 0]
        known = budget.values
        # One lock for the whole step: refreshing a known value's mark while another thread
        # evicts it would put it back as known but no longer registered with the redactor.
        with self._lock:
            fresh = []
            for value in values:
                if value in known:
                    known[value] = next(self._tick)  # recently sent: the last to be let go
                elif type(value) is str and len(value) >= MIN_VALUE_LENGTH:
                    fresh.append(value)
            if not fresh:
                return
            evicted: list[str] = []
            for value in fresh:
                evicted += budget.add(value, next(self._tick))
            if evicted:
                everything = [v for b in self._budgets for v in b.values]
                DEFAULT_REDACTOR.set_secrets(self, everything)
            else:
                DEFAULT_REDACTOR.add_secrets(self, fresh)

    def values(self) -> list[str]:
        """Every value registered (for tests and the proof)."""
        return [v for b in self._budgets for v in b.values]

    def close(self) -> None:
        """The session closed: the redactor keeps the values masked for its grace period."""
        with self._lock:
            for budget in self._budgets:
                budget.values.clear()
                budget.size = 0
            DEFAULT_REDACTOR.forget(self)

    # -- what a request carries ----------------------------------------------------------
    def register_headers(
        self, headers: Mapping[str, Any], secret_names: Container[str] = ()
    ) -> None:
        """Register the values of the sensitive-named ``headers`` (cookie pairs one by one).

        ``secret_names`` (lower-case) are secret whatever their name: the auth headers'.
        """
        sensitive = DEFAULT_REDACTOR.is_sensitive_name
        found: list[str] = []
        cookies: list[str] = []
        for key, value in headers.items():
            name = _header_name(key)
            if name is None:
                continue
            lowered = name.lower()
            secret = lowered in secret_names
            if not (secret or sensitive(name)):
                continue
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            if not isinstance(text, str):
                continue
            if lowered in ("cookie", "set-cookie"):
                cookies.append(text)
                cookies.extend(_cookie_values(text))
            elif secret or text.strip().lower() not in _FLAG_WORDS:
                found.append(text)
                if "=" in text and lowered in _PROOF_HEADERS:
                    found.extend(_PROOF.findall(text))
        self.register(found)
        if cookies:
            self.register(cookies, cookies=True)

    def register_auth(self, auth: object) -> None:
        """Register the password of a ``(user, password)`` tuple or an auth object."""
        if isinstance(auth, tuple) and len(auth) == 2:
            user, password = auth
        else:
            user, password = getattr(auth, "username", None), getattr(auth, "password", None)
        pair = [_text(user), _text(password)]
        if pair[1] is None:
            return
        values = [pair[1]]
        if pair[0] is not None:
            joined = f"{pair[0]}:{pair[1]}"
            values += [joined, "Basic " + _b64(joined)]
        self.register(values)

    def register_url(self, url: str | None) -> None:
        """Register the userinfo of ``url`` (a base URL, a request or a proxy URL)."""
        if not url or "@" not in url:
            return
        try:
            parts = urlsplit(url)
        except ValueError:
            return
        if parts.password is not None:
            self.register_auth((unquote(parts.username or ""), unquote(parts.password)))
            self.register([parts.password])
        elif parts.username:
            self.register([unquote(parts.username), parts.username])

    def register_query(self, url: str | None) -> None:
        """Register the values of ``url``'s sensitive-named query keys (``api_key=...``).

        Sent on the wire, they are credentials like a header's: a server that echoes one in
        an error body must not show it. Both the value as sent and decoded are registered.
        """
        if not url or "?" not in url:
            return
        found = _form_secrets(url.partition("?")[2].partition("#")[0])
        if found:
            self.register(found)

    def register_fields(self, *bodies: object) -> None:
        """Register string values under sensitive names in ``data=``/``json=`` bodies.

        A mapping, a list of ``(name, value)`` pairs (a form) or nested JSON: an OAuth
        ``client_secret`` or a login's ``password`` goes on the wire like a header's key. At
        most :data:`MAX_BODY_FIELDS` containers and pairs are looked at.
        """
        sensitive = DEFAULT_REDACTOR.is_sensitive_name
        found: list[str] = []
        stack: list[object] = []
        for body in bodies:
            if isinstance(body, (str, bytes)):  # an encoded form: ``a=1&client_secret=...``
                text = _text(body)
                if text is not None and "=" in text and len(text) <= MAX_BYTES:
                    found += _form_secrets(text)
            elif isinstance(body, (Mapping, list, tuple)):
                stack.append(body)
        budget = MAX_BODY_FIELDS
        while stack and budget > 0:
            budget -= 1
            body = stack.pop()
            if isinstance(body, Mapping):
                pairs: Iterable[Any] = body.items()
            elif isinstance(body, (list, tuple)):
                pairs = body
            else:
                continue
            for item in itertools.islice(pairs, budget):
                budget -= 1
                if isinstance(item, tuple) and len(item) == 2:  # (name, value): a field
                    name = _text(item[0])
                    if name is not None and sensitive(name):
                        found += _field_texts(item[1])
                    item = item[1]
                if isinstance(item, (Mapping, list, tuple)):
                    stack.append(item)
        if found:
            self.register(found)

    def register_proxies(self, proxies: Mapping[str, Any] | None) -> None:
        """Register the userinfo of every proxy URL."""
        for url in (proxies or {}).values():
            if isinstance(url, str) and "@" in url:
                self.register_url(url)

    def register_jar(self, jar: Iterable[Any]) -> None:
        """Register the value of every cookie in ``jar``."""
        values = [c.value for c in jar if isinstance(getattr(c, "value", None), str)]
        self.register([v for v in values if len(v) >= MIN_COOKIE_LENGTH], cookies=True)


def origin_bound(name: str | bytes) -> bool:
    """Whether a header called ``name`` is a credential held to the auth origin rule."""
    text = _header_name(name)
    return (
        text is not None
        and text.lower() not in _NOT_ORIGIN_BOUND
        and DEFAULT_REDACTOR.is_sensitive_name(text)
    )


def _header_name(name: object) -> str | None:
    """A header name as text: requests accepts ``str`` and ``bytes`` (and their subclasses)."""
    if isinstance(name, bytes):
        return name.decode("latin-1")
    return str(name) if isinstance(name, str) else None


def masked_unicode_error(exc: BaseException) -> UnicodeEncodeError | None:
    """A copy of a header-encoding error whose ``object`` (the whole value) is masked.

    ``http.client`` refuses a header value outside latin-1 with a ``UnicodeEncodeError``
    that carries the value in ``object`` (its ``repr`` and pickle show it). ``None`` when
    ``exc`` is something else or holds nothing to mask.
    """
    if not isinstance(exc, UnicodeEncodeError) or not isinstance(exc.object, str):
        return None
    masked = DEFAULT_REDACTOR.mask(exc.object)
    if masked == exc.object:
        return None
    end = min(exc.end, len(masked))
    copy = UnicodeEncodeError(exc.encoding, masked, min(exc.start, end), end, exc.reason)
    return copy.with_traceback(exc.__traceback__)


def masked_value_error(exc: BaseException) -> ValueError | None:
    """A copy of a bare ``ValueError`` whose message quoted a credential, masked.

    ``http.client`` refuses a header value it cannot send (an LF that requests 2.31 lets
    through) with ``ValueError("Invalid header value b'...'")``, quoting the value. ``None``
    when ``exc`` is something else or holds nothing to mask.
    """
    if type(exc) is not ValueError:
        return None
    text = str(exc)
    masked = DEFAULT_REDACTOR.mask(text)
    if masked == text:
        return None
    return ValueError(masked).with_traceback(exc.__traceback__)


def _field_texts(value: object) -> list[str]:
    """The text of a sensitive field's value: a string, or each string of a list of them."""
    values = value if isinstance(value, (list, tuple)) else (value,)
    texts = (_text(v) for v in values[:16])
    return [t for t in texts if t is not None and len(t) >= MIN_FIELD_LENGTH]


def _form_secrets(query: str) -> list[str]:
    """The values of sensitive-named keys of a query or form, as sent and decoded."""
    sensitive = DEFAULT_REDACTOR.is_sensitive_name
    found: list[str] = []
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and len(value) >= MIN_FIELD_LENGTH and sensitive(unquote_plus(name)):
            found.append(value)
            decoded = unquote_plus(value)
            if decoded != value:
                found.append(decoded)
    return found


def _cookie_values(header: str) -> list[str]:
    values = []
    for pair in header.split(";"):
        _, sep, value = pair.partition("=")
        value = value.strip().strip('"')
        if sep and len(value) >= MIN_COOKIE_LENGTH:
            values.append(value)
    return values


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("latin-1", "replace")).decode("ascii")
