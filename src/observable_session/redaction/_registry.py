"""The process-wide redactor every session registers with, and its module-level helpers."""

from __future__ import annotations

import os
from typing import Final

from ._redactor import Redactor

__all__ = ["DEFAULT_REDACTOR", "mask", "mask_url"]

#: The redactor every :class:`observable_session.Session` registers its credentials with.
DEFAULT_REDACTOR: Final = Redactor()


# Every session of the process takes the redactor's locks: a child forked while a thread
# held one would hang at its first session, log line or span. (Not _forksafe: redaction
# imports nothing from the rest of the package.)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=DEFAULT_REDACTOR._after_fork)


def mask(text: str) -> str:
    """Mask ``text`` with :data:`DEFAULT_REDACTOR` (see :meth:`Redactor.mask`)."""
    return DEFAULT_REDACTOR.mask(text)


def mask_url(url: str) -> str:
    """Mask ``url`` with :data:`DEFAULT_REDACTOR` (see :meth:`Redactor.mask_url`)."""
    return DEFAULT_REDACTOR.mask_url(url)
