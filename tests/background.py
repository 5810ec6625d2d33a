"""Slow checks that need no test's state, started as the run begins so they use the machine's other core, and
collected by their test (``result``). Only mypy (tests/test_lint.py): it takes half a minute of CPU and reads only
the source. A check not started in the background (its test run alone, say) runs when its test asks."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
MYPY = (sys.executable, "-m", "mypy")
_running: dict[tuple[str, ...], tuple[subprocess.Popen[bytes], IO[bytes]]] = {}


def start(command: tuple[str, ...]) -> None:
    """Start ``command`` in the repository root, its output kept in a temporary file."""
    if command not in _running:
        out = tempfile.TemporaryFile()  # noqa: SIM115 (kept open until result() or stop_all() reads and closes it)
        _running[command] = (subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT), out)


def result(command: tuple[str, ...], timeout: float = 280) -> tuple[int, str]:
    """(exit code, output) of ``command``: the background run's when one was started, else a run now."""
    start(command)
    process, out = _running.pop(command)
    try:
        code = process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    out.seek(0)
    text = out.read().decode(errors="replace")
    out.close()
    return code, text


def stop_all() -> None:
    """End whatever was started and not collected (a run stopped early, or the test deselected)."""
    for process, out in _running.values():
        if process.poll() is None:
            process.kill()
            process.wait()
        out.close()
    _running.clear()
