"""The state of one logical request, shared by its attempts and redirect hops.

Its own module so that ``_session`` (which opens calls) and ``_failures`` (which builds errors
from them) both import it, and neither imports the other.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import AttemptRecord

if TYPE_CHECKING:
    from urllib3.util.retry import Retry

    from . import _deadline
    from ._session import Session
    from .policies._pipeline import CallGuard, OverloadPolicy
    from .telemetry._record import CallRecorder

__all__ = ["ACTIVE", "PENDING", "Call", "CallOptions"]


@dataclass(slots=True)
class CallOptions:
    """What ``request()`` knows and ``send()`` needs: the route and the deadline."""

    url_template: str | None
    deadline: float | None
    overload: OverloadPolicy | None = None


@dataclass(slots=True)
class Call:
    """The state of one logical request, shared by its attempts and redirect hops."""

    session: Session
    method: str
    deadline: float | None
    deadline_at: float | None
    retry: Retry
    recorder: CallRecorder
    guard: CallGuard
    attempts: int = 0
    history: list[AttemptRecord] = field(default_factory=list)
    redirecting: bool = False
    watch: _deadline.Watch | None = None


PENDING: contextvars.ContextVar[CallOptions | None] = contextvars.ContextVar(
    "observable_session_pending", default=None
)
"""Options ``request()`` hands to the ``send()`` it is about to make."""

ACTIVE: contextvars.ContextVar[Call | None] = contextvars.ContextVar(
    "observable_session_active", default=None
)
"""The logical request open in this context (redirect hops join it)."""
