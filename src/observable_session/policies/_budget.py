"""The retry budget: gRPC's retry throttling (gRFC A6), one token bucket per origin.

The bucket of an origin starts full at ``max_tokens``. Every attempt that fails in a way the
retry policy would retry costs one token; every successful attempt adds ``token_ratio``
(never above ``max_tokens``). A retry is allowed only while the tokens are above
``max_tokens / 2``. So an isolated failure is always retried, while a sustained outage stops
retries after a handful of failures, however many requests the client sends: the budget
counts failures against successes, not against time.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import InvalidConfigError
from ._checks import positive_number

Origin = tuple[str, str, int]

#: Origins remembered per budget; beyond this the oldest bucket is dropped (it restarts full).
MAX_ORIGINS = 4096


class RetryBudget:
    """A thread-safe retry throttle per origin (gRFC A6: ``maxTokens``, ``tokenRatio``).

    Args:
        max_tokens: Size of each origin's bucket, > 0. Retries stop at half of it.
        token_ratio: Tokens one successful attempt gives back, > 0 and <= ``max_tokens``.

    One budget serves one session by default; handing the same object to several sessions
    makes them share the buckets (a fleet-wide budget within one process).
    """

    __slots__ = ("_lock", "_tokens", "max_tokens", "token_ratio")

    def __init__(self, max_tokens: float = 10, token_ratio: float = 0.1) -> None:
        self.max_tokens = positive_number("max_tokens", max_tokens)
        self.token_ratio = positive_number("token_ratio", token_ratio)
        if self.token_ratio > self.max_tokens:
            raise InvalidConfigError("token_ratio must not exceed max_tokens")
        self._lock = threading.Lock()
        self._tokens: dict[Origin, float] = {}

    def __repr__(self) -> str:
        return f"RetryBudget(max_tokens={self.max_tokens:g}, token_ratio={self.token_ratio:g})"

    def __getstate__(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "token_ratio": self.token_ratio}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A budget is settings plus live counts; an unpickled copy starts full.
        self.__init__(state["max_tokens"], state["token_ratio"])  # type: ignore[misc]

    def tokens(self, origin: Origin) -> float:
        """The tokens left in ``origin``'s bucket."""
        with self._lock:
            return self._tokens.get(origin, self.max_tokens)

    def allows_retry(self, origin: Origin) -> bool:
        """Whether a retry to ``origin`` may be made now (tokens > ``max_tokens / 2``)."""
        with self._lock:
            return self._tokens.get(origin, self.max_tokens) > self.max_tokens / 2

    def record_failure(self, origin: Origin) -> None:
        """An attempt failed in a way the retry policy would retry: one token less."""
        with self._lock:
            tokens = self._tokens.pop(origin, self.max_tokens)
            self._store(origin, max(0.0, tokens - 1.0))

    def record_success(self, origin: Origin) -> None:
        """An attempt succeeded: ``token_ratio`` more, capped at ``max_tokens``."""
        with self._lock:
            tokens = self._tokens.get(origin)
            if tokens is None:
                return  # a full bucket stays full: nothing to store
            self._tokens[origin] = min(self.max_tokens, tokens + self.token_ratio)

    def _store(self, origin: Origin, tokens: float) -> None:
        if len(self._tokens) >= MAX_ORIGINS:
            del self._tokens[next(iter(self._tokens))]
        self._tokens[origin] = tokens
