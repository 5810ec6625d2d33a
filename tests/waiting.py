"""Waiting for something another thread does (a job, a widget), bounded so a hang fails instead of stalling.

The bound is a safety net, not a timed assertion: it is far above what the awaited thing takes.
Imported as ``from waiting import wait_for`` (tests/ is on sys.path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """The predicate's first truthy value, asked every ``interval`` seconds; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


def main_thread_in(function: str, file_suffix: str) -> bool:
    """Whether the main thread is inside ``function`` of a file ending in ``file_suffix`` now: a Ctrl-C test presses
    Ctrl-C (``_thread.interrupt_main``) only once the code that must catch it is waiting, never before."""
    import sys
    import threading

    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    while frame is not None:
        if frame.f_code.co_name == function and frame.f_code.co_filename.endswith(file_suffix):
            return True
        frame = frame.f_back
    return False
