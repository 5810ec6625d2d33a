"""Kernels as real separate processes on one runs folder, for tests of what kernels share (the journal).

``Kernel(sb, runs, name=..., arguments={"seed": 1})`` starts ``python -c KERNEL``: a Session on the sandbox that
sends one ``generate(wait=False)`` and prints what happened, one line each: STARTED, NOTICE (every notice),
SUBMITTED (an ``owner=True`` kernel, once the journal holds fal's request id; it then takes orders on stdin:
``cancel``, ``wait``), IMAGES (sha256 of each image's bytes) or ERROR, and BUDGET (``kx.budget()`` at the end).
``barrier=DIR``: it waits for DIR/go before sending, after touching DIR/ready-NAME.
``Repl(sb, runs, name=...)`` is a kernel process that runs the test's commands one at a time, like cells.
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

from kontext_nb.sandbox import SandboxServer

HOLD = 3600.0
"""A sandbox queue_delay that keeps every job waiting on the sandbox until ``release``."""
PROMPT = "two kernels, one lighthouse"


def release(sb: SandboxServer) -> None:
    """Let the sandbox run the jobs it holds."""
    sb.configure(queue_delay=0.0)


KERNEL = r"""
import hashlib, json, sys, time
from pathlib import Path
from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.session import Session

url, runs, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])


def say(*words):
    print(*words, flush=True)


s = Session(Settings(base_url=url, key="test-key-0123456789abcdef", runs_dir=runs,
                     retry=RetryPolicy(attempts=3, base_delay=0.01)),
            notice=lambda message: say("NOTICE", message))
s.tracker  # the journal is open before the start line
if spec.get("barrier"):
    Path(spec["barrier"], "ready-" + spec["name"]).touch()
    while not Path(spec["barrier"], "go").exists():
        time.sleep(0.002)
job = s.generate(spec["prompt"], wait=False, **spec.get("arguments", {}))
say("STARTED", job.journal_id)
if spec.get("owner"):  # wait until the journal knows fal's request id, then take orders from the test
    while s.record(job.journal_id).request_id is None:
        time.sleep(0.01)
    say("SUBMITTED", s.record(job.journal_id).request_id)
    for line in sys.stdin:
        if line.strip() == "cancel":
            say("CANCELLED", job.cancel())
        if line.strip() == "wait":
            break
try:
    result = job.result(120)
    say("IMAGES", json.dumps([hashlib.sha256(b).hexdigest() for b in result.image_bytes]))
except Exception as exc:
    say("ERROR", type(exc).__name__, str(exc))
say("BUDGET", json.dumps(s.budget()))
s.close()
"""


def all_ready(kernels: list[Kernel], barrier: Path, timeout: float = 60.0) -> None:
    """Wait until every kernel has touched its ready file; a kernel that ended first fails at once, with its stderr."""

    def ready() -> bool:
        for kernel in kernels:
            ended = kernel.process.poll() is not None
            assert not ended, f"{kernel.name} ended before it was ready: {kernel.lines} {kernel.stderr()}"
        return len(list(barrier.glob("ready-*"))) == len(kernels)

    wait_for(ready, timeout=timeout, interval=0.02)


CAPPED_KERNEL = """
import sys
from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.errors import BudgetError
from kontext_nb.session import Session

url, runs, me = sys.argv[1], sys.argv[2], sys.argv[3]
s = Session(Settings(base_url=url, key="test-key-0123456789abcdef", runs_dir=runs, budget_daily=0.40,
                     retry=RetryPolicy(attempts=3, base_delay=0.01)), notice=lambda m: None)
jobs, refused = [], 0
for i in range(4):
    try:
        jobs.append(s.generate(f"kernel {me} job {i}", wait=False))
    except BudgetError:
        refused += 1
for job in jobs:
    job.result(60)
print(len(jobs), refused)
s.close()
"""
"""A kernel under a $0.40 daily cap sending 4 jobs of $0.08 at once: ``python -c CAPPED_KERNEL URL RUNS NAME`` prints
how many were sent and how many refused (tests/test_money.py, tests/test_money_shared.py)."""


class Kernel:
    """One kernel process and the lines it has printed so far (read on a thread of its own)."""

    def __init__(self, sb: SandboxServer, runs: Path, **spec: Any) -> None:
        self.name = spec.setdefault("name", "kernel")
        self.owner = bool(spec.get("owner"))
        spec.setdefault("prompt", PROMPT)
        self.process = subprocess.Popen(
            [sys.executable, "-c", KERNEL, sb.url, str(runs), json.dumps(spec)],
            env={**os.environ, **spec.get("env", {})},  # KONTEXT_JOURNAL_URL, KONTEXT_HOST_ID: another "host"
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, word: str) -> str | None:
        """The first line that starts with ``word``, if printed yet."""
        return next((line for line in self.lines if line.startswith(word)), None)

    def await_line(self, word: str, timeout: float = 60.0) -> str:
        def seen() -> str | None:
            if self.process.poll() is not None and not self._reader.is_alive():
                line = self.said(word)
                assert line is not None, f"{self.name} ended without {word!r}: {self.lines} {self.stderr()}"
            return self.said(word)

        line: str = wait_for(seen, timeout=timeout, interval=0.02)
        return line

    def notices(self) -> list[str]:
        return [line for line in self.lines if line.startswith("NOTICE")]

    def tell(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def finish(self) -> tuple[str, Any]:
        """('IMAGES', [sha256 of each image's bytes]) or ('ERROR', 'Type message'), once the kernel has ended."""
        if self.owner:
            self.tell("wait")
        self.process.wait(timeout=120)
        self._reader.join(timeout=10)
        assert self.process.returncode == 0, (self.lines, self.stderr())
        line = next((x for x in self.lines if x.startswith(("IMAGES", "ERROR"))), None)
        assert line is not None, (self.lines, self.stderr())
        word, _, rest = line.partition(" ")
        return (word, json.loads(rest)) if word == "IMAGES" else (word, rest)

    def budget(self) -> dict[str, Any]:
        """What ``kx.budget()`` said in that kernel once its job had ended."""
        line = self.said("BUDGET")
        assert line is not None, (self.lines, self.stderr())
        budget: dict[str, Any] = json.loads(line.partition(" ")[2])
        return budget

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


REPL = r"""
import hashlib, json, sys, time
from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.journal import following
from kontext_nb.session import Session

url, runs, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])


def say(*words):
    print(*words, flush=True)


s = Session(Settings(base_url=url, key="test-key-0123456789abcdef", runs_dir=runs,
                     retry=RetryPolicy(attempts=3, base_delay=0.01), **settings),
            notice=lambda message: say("NOTICE", json.dumps(message)))
s.tracker  # the journal is open before the first command
jobs = {}


def start(name, prompt, **arguments):
    jobs[name] = s.generate(prompt, wait=False, **arguments)
    return jobs[name].journal_id


def wait_submitted(name):
    while s.record(jobs[name].journal_id).request_id is None:
        time.sleep(0.01)


def outcome(name):
    try:
        result = jobs[name].result(120)
    except Exception as exc:
        return ["ERROR", type(exc).__name__, str(exc)]
    return ["IMAGES", [hashlib.sha256(b).hexdigest() for b in result.image_bytes], result.request_id]


say("READY")
for line in sys.stdin:
    number, code = json.loads(line)
    try:
        try:
            compiled = compile(code, "<cell>", "eval")
        except SyntaxError:  # statements: run them, the value is None
            compiled = compile(code, "<cell>", "exec")
        value = eval(compiled)
        say("DONE", number, json.dumps(value))
    except Exception as exc:
        say("FAILED", number, json.dumps([type(exc).__name__, str(exc)]))
"""


class ReplError(Exception):
    """A command a Repl ran raised: ``kind`` is the exception's class name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class Repl:
    """A kernel as a real process on a runs folder that runs the test's commands, one at a time, like cells.

    ``Repl(sb, runs, name="a", concurrency=1)`` (Settings keywords); ``run("start('x', 'a fox', seed=1)")`` evaluates
    an expression (or executes statements) in it and returns its value (JSON), or raises ReplError. Helpers there:
    ``s`` (the Session), ``start(name, prompt, **arguments)`` (generate with wait=False; returns the journal id),
    ``wait_submitted(name)``, ``outcome(name)`` (['IMAGES', sha256s, request_id] or ['ERROR', type, message]),
    ``following`` (the module) and ``jobs``.
    """

    def __init__(self, sb: SandboxServer, runs: Path, *, name: str, **settings: Any) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-c", REPL, sb.url, str(runs), json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._sent = 0
        self._await(lambda: "READY" in self.lines)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def _await(self, seen: Any, timeout: float = 150.0) -> Any:
        def check() -> Any:
            found = seen()
            if not found and self.process.poll() is not None and not self._reader.is_alive():
                stderr = self.process.stderr.read() if self.process.stderr else ""
                raise AssertionError(f"{self.name} ended: {self.lines} {stderr}")
            return found

        return wait_for(check, timeout=timeout, interval=0.02)

    def run(self, code: str, timeout: float = 150.0) -> Any:
        assert self.process.stdin is not None
        self._sent += 1
        number = self._sent
        self.process.stdin.write(json.dumps([number, code]) + "\n")
        self.process.stdin.flush()
        prefixes = (f"DONE {number} ", f"FAILED {number} ")
        line: str = self._await(lambda: next((x for x in self.lines if x.startswith(prefixes)), None), timeout)
        word, _, rest = line.partition(" ")
        value = json.loads(rest.partition(" ")[2])
        if word == "FAILED":
            raise ReplError(*value)
        return value

    def notices(self) -> list[str]:
        return [json.loads(line.partition(" ")[2]) for line in self.lines if line.startswith("NOTICE ")]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def close(self) -> None:
        """End the kernel as a user closing it would (its session closed)."""
        if self.process.poll() is None:
            try:
                self.run("s.close()")
            finally:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=60)


SEEDED = "one seeded lighthouse, two kernels"
JOINED = "joined it"
OWN = "sending it itself"


def owner_with_a_queued_copy(sb: SandboxServer, runs: Path, repls: list[Repl], seed: int) -> tuple[Repl, int]:
    """A kernel (concurrency=1) whose seeded job waits in it behind a slow one the sandbox holds: its row is
    written, not sent. Returns the kernel and that job's row; ``release(sb)`` lets both go."""
    sb.configure(queue_delay=HOLD)
    owner = Repl(sb, runs, name="owner", concurrency=1)
    repls.append(owner)
    owner.run("start('slow', 'a slow job first')")
    owner.run("wait_submitted('slow')")
    row: int = owner.run(f"start('x', {SEEDED!r}, seed={seed})")
    return owner, row


def joiner_of(sb: SandboxServer, runs: Path, repls: list[Repl], seed: int, name: str = "joiner") -> Repl:
    """A second kernel sending the same seeded request: it joins the owner's job."""
    joiner = Repl(sb, runs, name=name)
    repls.append(joiner)
    joiner.run(f"start('x', {SEEDED!r}, seed={seed})")
    assert [n for n in joiner.notices() if JOINED in n], joiner.lines
    return joiner
