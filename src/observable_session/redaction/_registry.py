"""The process-wide redactor every session registers with, and its module-level helpers."""

from __future__ import annotations

from typing import Final

from ._redactor import Redactor

__all__ = ["DEFAULT_REDACTOR", "mask", "mask_url"]

#: The redactor every :class:`observable_session.Session` registers its credentials with.
DEFAULT_REDACTOR: Final = Redactor()


def mask(text: str) -> str:
    """Mask ``text`` with :data:`DEFAULT_REDACTOR` (see :meth:`Redactor.mask`)."""
    return DEFAULT_REDACTOR.mask(text)


def mask_url(url: str) -> str:
    """Mask ``url`` with :data:`DEFAULT_REDACTOR` (see :meth:`Redactor.mask_url`)."""
    return DEFAULT_REDACTOR.mask_url(url)
