"""Idempotency keys: one ``Idempotency-Key: <uuid4>`` per logical POST or PATCH.

As in stripe-python and draft-ietf-httpapi-idempotency-key-header: the key is made once per
logical request and sent, unchanged, on every attempt and redirect hop, so the server can
recognise a retry of a request it already processed. A header the caller set is kept. With
a key, a POST or PATCH whose read failed (the server may have processed it) may be retried.
"""

from __future__ import annotations

import re
import uuid

from requests import PreparedRequest

from ..errors import InvalidConfigError

DEFAULT_HEADER = "Idempotency-Key"
#: The methods that get a key: the ones that are not idempotent by definition.
KEYED_METHODS = frozenset({"POST", "PATCH"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name token


def header_name(idempotency_key: object) -> str | None:
    """The header to send the key in (``None``: off) from ``False``, ``True`` or a name."""
    if idempotency_key is False or idempotency_key is None:
        return None
    if idempotency_key is True:
        return DEFAULT_HEADER
    if isinstance(idempotency_key, str) and _TOKEN.fullmatch(idempotency_key):
        return idempotency_key
    raise InvalidConfigError(
        "idempotency_key must be False, True or a header name (an RFC 9110 token)"
    )


def with_key(request: PreparedRequest, header: str) -> tuple[PreparedRequest, str]:
    """``request`` carrying a key in ``header``: the caller's own, or a copy with a new one.

    The copy keeps the caller's prepared request untouched, so sending it again is a new
    logical request with a new key.
    """
    existing = request.headers.get(header)
    if existing:
        value = existing.decode("latin-1") if isinstance(existing, bytes) else str(existing)
        return request, value
    keyed = request.copy()
    key = str(uuid.uuid4())
    keyed.headers[header] = key
    return keyed, key
