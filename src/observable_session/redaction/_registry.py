"""The process-wide redactor every session registers with, and its module-level helpers."""

from __future__ import annotations

import threading
from typing import Final

from .._forksafe import renew_after_fork
from ._redactor import Redactor

__all__ = ["DEFAULT_REDACTOR", "mask", "mask_url"]

#: The redactor every :class:`observable_session.Session` registers its credentials with.
DEFAULT_REDACTOR: Final = Redactor()
# Every session of the process takes these: a child forked while a thread held one would
# hang at its first session, log line or span.
renew_after_fork(DEFAULT_REDACTOR, "_lock", threading.RLock)
renew_after_fork(DEFAULT_REDACTOR._index, "_lock")


def mask(text: str) -> str:
    """Mask ``text`` with :data:`DEFAULT_REDACTOR` (see :meth:`Redactor.mask`)."""
    return DEFAULT_REDACTOR.mask(text)


def mask_url(url: str) -> str:
    """Mask ``url`` with :data:`DEFAULT_REDACTOR` (see :meth:`Redactor.mask_url`)."""
    return DEFAULT_REDACTOR.mask_url(url)
