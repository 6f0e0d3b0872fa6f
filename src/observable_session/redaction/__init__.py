"""One redactor that every path uses: logs, traces, metrics and exception messages.

It knows three things:

- **secret values**: every credential a live session sends (its auth headers, sensitive
  headers, ``auth`` passwords, proxy userinfo, cookie values), registered by value with
  :meth:`Redactor.set_secrets`/:meth:`Redactor.add_secrets`, and kept masked for a grace
  period after :meth:`Redactor.forget` or the owner's collection. Each value yields a few
  atoms (:mod:`._forms`); escaped spellings are found by decoding the text (:mod:`._decode`);
  the atoms are found through a fingerprint index whose cost does not grow with their
  number (:mod:`._index`).
- **sensitive names** (:mod:`._names`), matched case-insensitively (``-`` and ``_`` ignored).
- **shapes** (:mod:`._structure`): URL userinfo, sensitive query values, and
  ``<scheme> <credential>`` after ``Bearer``, ``Basic`` or ``Token``.

Limits: numbers are not masked (a secret made only of digits inside an ``int`` stays), dict
keys are not masked, and anything that writes outside logging (for example
``http.client.HTTPConnection.debuglevel``, which prints headers to stdout) is out of reach; see
:mod:`observable_session.logs`.

The package imports nothing from :mod:`observable_session.telemetry`: it stands below it.
"""

from __future__ import annotations

from ._exceptions import MaskedException
from ._forms import MIN_FORM_LENGTH, derived_forms
from ._names import (
    REDACTED,
    SENSITIVE_FRAGMENTS,
    SENSITIVE_NAMES,
    SENSITIVE_QUERY_KEYS,
)
from ._redactor import GRACE_MAX_OWNERS, GRACE_SECONDS, Redactor
from ._registry import DEFAULT_REDACTOR, mask, mask_url
from ._spans import RedactingSpanExporter
from ._structlog import EventRedactor, redact_event

__all__ = [
    "DEFAULT_REDACTOR",
    "GRACE_MAX_OWNERS",
    "GRACE_SECONDS",
    "MIN_FORM_LENGTH",
    "REDACTED",
    "SENSITIVE_FRAGMENTS",
    "SENSITIVE_NAMES",
    "SENSITIVE_QUERY_KEYS",
    "EventRedactor",
    "MaskedException",
    "RedactingSpanExporter",
    "Redactor",
    "derived_forms",
    "mask",
    "mask_url",
    "redact_event",
]
