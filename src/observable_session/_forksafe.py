"""Shared locks made anew in a forked child.

A worker pool that forks (multiprocessing's ``fork`` start method, Celery's prefork, gunicorn)
copies every lock as it is at ``fork()``: one that another thread held then stays held in the
child for ever, and the child's first session or metric hangs on it. Each lock shared across
sessions (a module global, a class attribute, a module-wide object's) is registered here and
replaced by a fresh one in the child. Locks of one session or one call are left alone, as
requests and urllib3 leave theirs: a session in use while the process forks is not the child's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

__all__ = ["renew_after_fork"]


def renew_after_fork(
    owner: object, name: str, factory: Callable[[], object] = threading.Lock
) -> None:
    """Replace ``owner.<name>`` with ``factory()`` in every child forked from now on.

    ``owner`` is a module (for a global), a class, or a module-wide object; code must read
    the lock through ``owner`` each time (``with _lock:`` in the module, ``cls._lock``).
    """
    if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
        os.register_at_fork(after_in_child=lambda: setattr(owner, name, factory()))
