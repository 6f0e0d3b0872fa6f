"""Forking while another thread is stopped inside the library: what the child then does.

A child starts with a copy of every lock, and of every half-done step, as they were at
``fork()``; the thread that held or did them does not exist there.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

CHILD_SECONDS = 5.0


def child_status(inside: Callable[[threading.Event, threading.Event], None], then: Any) -> int:
    """Fork while a thread is stopped in ``inside``; the child runs ``then``: its exit code.

    ``inside(entered, release)`` sets ``entered`` once it holds the lock and waits for
    ``release``. -1: the child was still running after CHILD_SECONDS (it hung).
    """
    entered, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=inside, args=(entered, release), daemon=True)
    thread.start()
    try:
        assert entered.wait(5)
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            code = 1
            try:
                then()
                code = 0
            finally:
                os._exit(code)
        until = time.monotonic() + CHILD_SECONDS
        while time.monotonic() < until:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.01)  # polling the child, bounded by CHILD_SECONDS
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return -1
    finally:
        release.set()
        thread.join(5)
