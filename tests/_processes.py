"""Forking a child in a test, and waiting for it with a deadline (a hang fails the test)."""

from __future__ import annotations

import os
import signal
import time
import warnings


def fork() -> int:
    """``os.fork()``, without the warning Python 3.12+ gives when the process has threads."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return os.fork()


def reap(pid: int, timeout: float) -> int:
    """The exit code of child ``pid``; kills it and fails the test if it has not ended within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the child process did not finish within {timeout} seconds: it hung")
        time.sleep(0.005)
