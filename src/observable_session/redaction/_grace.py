"""The grace pool: values of forgotten owners, kept masked for a while, in few objects.

A pool entry is allocated when its owner is let go, in a hole among the objects of owners
that die soon after: a pool of small objects (tuples, floats, lists) would pin one allocator
page per object long after everything else of those owners is gone (measured: ~90 MB for
1,024 closed sessions). So expiries live in one ``array`` and each entry is one object
(compacted into a block the system allocator holds, see :meth:`ValueIndex.compact`).
"""

from __future__ import annotations

import array
import collections
import itertools
from collections.abc import Callable

__all__ = ["GracePool"]


class GracePool:
    """Entries in expiry order (a monotonic clock): append at the end, drop from the front."""

    __slots__ = ("_entries", "_expiries", "_head", "filed")

    def __init__(self) -> None:
        self._entries: collections.deque[object] = collections.deque()
        self._expiries = array.array("d")
        self._head = 0
        #: How many of the oldest entries a search has filed in the grams (the rest wait).
        self.filed = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def append(self, expiry: float, entry: object) -> None:
        """Keep ``entry`` until ``expiry``."""
        self._entries.append(entry)
        self._expiries.append(expiry)

    def first_expiry(self) -> float:
        """When the oldest entry expires (the pool must not be empty)."""
        return self._expiries[self._head]

    def popleft(self) -> tuple[object, bool]:
        """Remove the oldest entry; return it and whether it was filed."""
        entry = self._entries.popleft()
        filed = self.filed > 0
        if filed:
            self.filed -= 1
        self._head += 1
        if self._head > 64 and self._head * 2 > len(self._expiries):
            del self._expiries[: self._head]  # amortized O(1): the front is dropped in bulk
            self._head = 0
        return entry, filed

    def replace_entries(self, change: Callable[[object], object]) -> None:
        """Replace every entry by ``change(entry)`` (in a fresh deque)."""
        self._entries = collections.deque(map(change, self._entries))
        self._expiries = array.array("d", self._expiries[self._head :])
        self._head = 0

    def waiting(self) -> list[object]:
        """The entries no search has filed yet."""
        return list(itertools.islice(self._entries, self.filed, None))
