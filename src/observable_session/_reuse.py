"""Immutable construction results shared by sessions built with equal settings.

An orchestrator builds a session per job, thousands of them, nearly always with the same
base URL and retry settings. Validating and parsing those again for every session costs more
than ``requests.Session()`` itself, so the results (immutable, so safely shared) are kept in
small bounded caches keyed by the exact arguments, their types included (``True`` is not
``1`` here: each is validated on its own first use).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Final, TypeVar

from ._forksafe import renew_after_fork

__all__ = ["MAX_ENTRIES", "reused"]

#: Distinct settings remembered per cache (beyond, the cache is emptied and starts again).
MAX_ENTRIES: Final = 64

_T = TypeVar("_T")
_lock = threading.Lock()
_caches: dict[str, dict[tuple[object, ...], object]] = {}


renew_after_fork(sys.modules[__name__], "_lock")


def _key(args: tuple[object, ...]) -> tuple[object, ...] | None:
    # Only plain immutable values make a key; anything else is built afresh every time.
    out: list[object] = []
    for arg in args:
        if arg is not None and type(arg) not in (str, int, float, bool):
            return None
        out.append((type(arg), arg))
    return tuple(out)


def reused(kind: str, build: Callable[..., _T], *args: object) -> _T:
    """``build(*args)``, or the result of an earlier call with equal ``args`` of equal types.

    ``build`` must return an immutable object and may raise (nothing is kept then). NaN
    never equals itself, so a NaN argument is always built (and refused) afresh.
    """
    key = _key(args)
    if key is None:
        return build(*args)
    cache = _caches.get(kind)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit  # type: ignore[return-value]
    value = build(*args)
    with _lock:
        cache = _caches.setdefault(kind, {})
        if len(cache) >= MAX_ENTRIES:
            cache.clear()
        cache[key] = value
    return value
