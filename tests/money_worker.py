"""A kernel as a real process that takes orders, for the money tests: ``Worker(url, runs, key=..., tz=...)``.

The process (this file run as a script) makes a Session on the sandbox, makes it the module-level one, loads
%kontext into an IPython shell and then reads one JSON order per line on stdin:
``{"op": "kx", "fn": "generate", "args": [...], "kwargs": {...}}`` (any ``kx.*`` call),
``{"op": "magic", "line": "...", "cell": null}``, ``{"op": "wait", "handle": 3}`` (a Job it returned),
``{"op": "exit"}``. It answers each with one line ``REPLY {json}``; everything else it prints (notices, magic
output) is kept as ``Worker.output`` so tests can search it for the key. Only public calls are used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from waiting import wait_for

REPLY = "REPLY "


def describe(value: Any, jobs: dict[int, Any]) -> Any:
    """A JSON summary of what a kx call returned: Results by journal id and cost, Jobs by a handle."""
    from kontext_nb.jobs import Job
    from kontext_nb.result import Result

    if isinstance(value, Result):
        return {"result": value.journal_id, "cost": value.cost, "images": len(value.image_bytes)}
    if isinstance(value, Job):
        jobs[len(jobs) + 1] = value
        return {"job": len(jobs)}
    if isinstance(value, (list, tuple)):
        return [describe(v, jobs) for v in value]
    if isinstance(value, dict):
        return {str(k): describe(v, jobs) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def serve(url: str, runs: str, key: str, settings: dict[str, Any]) -> None:
    """The process side: orders on stdin, replies on stdout."""
    from IPython.core.interactiveshell import InteractiveShell

    import kontext_nb as kx
    from kontext_nb.config import RetryPolicy

    session = kx.Session(
        kx.Settings(base_url=url, key=key, runs_dir=runs, retry=RetryPolicy(attempts=3, base_delay=0.01), **settings),
        notice=lambda message: print("NOTICE", message, flush=True),
    )
    kx.set_session(session)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "kontext_nb")
    jobs: dict[int, Any] = {}
    print(REPLY + json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        order = json.loads(line)
        try:
            if order["op"] == "exit":
                break
            if order["op"] == "kx":
                value = getattr(kx, order["fn"])(*order.get("args", []), **order.get("kwargs", {}))
            elif order["op"] == "magic":
                if order.get("cell") is None:
                    value = ip.run_line_magic("kontext", order["line"])
                else:
                    value = ip.run_cell_magic("kontext", order["line"], order["cell"])
            elif order["op"] == "wait":
                value = jobs[order["handle"]].result(order.get("timeout", 60))
            else:
                raise ValueError(f"unknown order {order['op']!r}")
            answer = {"ok": describe(value, jobs)}
        except BaseException as exc:  # every failure is an answer: the test decides what it means
            answer = {"error": type(exc).__name__, "message": str(exc)}
        print("\n" + REPLY + json.dumps(answer), flush=True)
    session.close()


class Worker:
    """The test side: one kernel process and everything it printed."""

    def __init__(self, url: str, runs: Path, *, key: str, tz: str | None = None, **settings: Any) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if tz is not None:
            env["TZ"] = tz
        self.process = subprocess.Popen(
            [sys.executable, __file__, url, str(runs), key, json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.output: list[str] = []
        self.replies: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._await(1, timeout=60)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            head, found, rest = line.partition(REPLY)
            if found:  # a status line written without a newline may share the line: keep both
                reply, end = json.JSONDecoder().raw_decode(rest)
                self.replies.append(reply)
                head += rest[end:]
            if head.strip():
                self.output.append(head.rstrip("\n"))

    def _await(self, n: int, timeout: float) -> dict[str, Any]:
        def arrived() -> bool:
            assert self.process.poll() is None or len(self.replies) >= n, f"the worker ended: {self.output[-20:]}"
            return len(self.replies) >= n

        wait_for(arrived, timeout=timeout, interval=0.01)
        return self.replies[n - 1]

    def order(self, op: str, timeout: float = 90, **fields: Any) -> dict[str, Any]:
        """Send one order and wait for its answer ({"ok": ...} or {"error": name, "message": ...})."""
        assert self.process.stdin is not None
        n = len(self.replies) + 1
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()
        return self._await(n, timeout)

    def kx(self, fn: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.order("kx", fn=fn, args=list(args), kwargs=kwargs)

    def magic(self, line: str, cell: str | None = None) -> dict[str, Any]:
        return self.order("magic", line=line, cell=cell)

    def kill(self) -> None:
        """kill -9: no clean-up of any kind (as a crashed kernel)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self._reader.join(timeout=10)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._reader.join(timeout=10)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
