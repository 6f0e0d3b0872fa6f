"""Overload protection: the policies the send loop consults before it sends or retries.

- :class:`RetryBudget`: gRPC A6 retry throttling per origin (on by default);
- :class:`CircuitBreaker`: closed / open / half-open per origin (off by default);
- idempotency keys and the ``Retry-After`` rule are session options (``idempotency_key=``,
  ``retry_after_exceeded=``), implemented in ``_idempotency`` and ``_pipeline``.
"""

from __future__ import annotations

from ._breaker import BreakerState, CircuitBreaker
from ._budget import RetryBudget

__all__ = ["BreakerState", "CircuitBreaker", "RetryBudget"]
