"""The money state machine (issue 20): random sequences of everyday acts against the real sandbox and its bill log.

Kernels are Sessions on the sandbox (1-4 in this process; with ``Profile.processes`` also real kernel processes that
are killed with -9), one of them behind ``%kontext`` in an IPython shell. They submit, run ``--bg`` lines, sweeps,
reruns and seeded repeats (which join or are answered from the journal), edit a large image given as a URL, delete,
prune, switch runs folders, and meet lost submit replies, failed downloads, a journal damaged while they run, and a
clock that crosses midnight in another time zone. After every step:

- billed (the sandbox's bill log) is within every cap that held: each kernel's session cap, and the daily cap of each
  runs folder in use;
- what the journals say was spent or reserved today is at least what was billed;
- and at the end, with faults cleared and ``kx.resume()`` run: every billed image is in a journal with its files on
  disk (or was deleted by the user), and the key is in no file under the runs folders and in no output.

Used by tests/test_money_machine.py (a short, derandomized profile) and bench/money_soak.py (a long one).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from canary import new_canary  # tests/canary.py
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from money_checks import CENT, findable, key_nowhere, settled_bills
from PIL import Image
from waiting import wait_for

import kontext_nb as kx
import kontext_nb.sandbox
from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.session import Session

SESSION_CAP = 0.16
DAILY_CAP = 0.24
PROMPT = "the same fox"
"""Seeded requests share it, so repeats join a job in flight or are answered from the journal."""


@dataclass(frozen=True)
class Profile:
    """What the machine may do: real processes (slow to start), a damaged journal (needs 300 rows to damage)."""

    processes: bool = False
    damage: bool = False
    without: frozenset[str] = frozenset()
    """Acts left out (by rule name): to check the harness on what already holds, or to aim a soak."""
    pg: Any = None
    """A PostgreSQL server (tests/postgres.py): every sequence gets a fresh database as its journal_url."""


def allowed(name: str) -> Any:
    """A rule's precondition: the profile does not leave this act out."""
    return precondition(lambda self: name not in self.profile.without)


class MoneyMachine(RuleBasedStateMachine):
    """Set ``MoneyMachine.profile`` before running it. Each sequence has a sandbox of its own (nothing a sequence
    left in flight can be billed in the next one)."""

    profile = Profile()

    def __init__(self) -> None:
        super().__init__()
        self.sb = kontext_nb.sandbox.start(workers=4, inference_time=0.05, image_scale=1.0, slow_seconds=0.3)
        self.key = new_canary()
        self.root = Path(tempfile.mkdtemp(prefix="kx-money-"))
        self.folders = [self.root / "A", self.root / "B"]
        self.used: set[Path] = {self.folders[0]}
        self.kernels: list[Session] = []
        self.auditors: dict[Path, Session] = {}
        self.folder_of: list[Path] = []
        self.ever = 0
        """Kernels that ever ran (each has its own session cap); killed processes count."""
        self.workers: list[Any] = []
        self.outputs: list[str] = []
        self.forgotten: set[str] = set()
        self.tz = os.environ.get("TZ")
        self.counter = 0
        self.url_source: str | None = None
        self.damaged = False
        self.shell: Any = None
        self._database: Any = None
        self.journal_url: str | None = None
        if self.profile.pg is not None:
            self._database = self.profile.pg.database()
            self.journal_url = self._database.__enter__()
        if self.profile.damage:
            _prefill(self.folders[0])
        self._new_kernel()

    # -- kernels -------------------------------------------------------------------------------------------------
    def _new_kernel(self) -> Session:
        session = Session(
            Settings(
                base_url=self.sb.url,
                key=self.key,
                runs_dir=str(self.folders[0]),
                journal_url=self.journal_url,
                retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.2),
                budget_session=SESSION_CAP,
                budget_daily=DAILY_CAP,
            ),
            notice=self.outputs.append,
        )
        self.kernels.append(session)
        self.folder_of.append(self.folders[0])
        self.ever += 1
        return session

    def _attempt(self, call: Any) -> Any:
        """One act; a refusal (cap, confirmation, journal trouble) is an answer, its text kept to search for the key."""
        try:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                value = call()
            self.outputs.append(out.getvalue())
            return value
        except Exception as exc:  # every refusal is a possible answer; the invariants judge the money
            self.outputs.append(f"{type(exc).__name__}: {exc}")
            return None

    def _prompt(self) -> str:
        self.counter += 1
        return f"fox number {self.counter}"

    @initialize(bg=st.booleans())
    def begin(self, bg: bool) -> None:
        """With real processes, every sequence starts with one killed after sending: its job is left to the others."""
        if self.profile.processes:
            self.a_kernel_process_killed_after_sending(bg)

    @precondition(lambda self: len(self.kernels) < 4)
    @allowed("start_kernel")
    @rule()
    def start_kernel(self) -> None:
        self._new_kernel()

    # -- spending --------------------------------------------------------------------------------------------------
    @allowed("submit")
    @rule(k=st.integers(0, 3), n=st.integers(1, 2), seed=st.sampled_from([None, 1, 2]), wait=st.booleans())
    def submit(self, k: int, n: int, seed: int | None, wait: bool) -> None:
        session = self.kernels[k % len(self.kernels)]
        prompt = PROMPT if seed is not None else self._prompt()
        self._attempt(lambda: session.generate(prompt, seed=seed, num_images=n, wait=wait))

    @allowed("join")
    @rule(a=st.integers(0, 3), b=st.integers(0, 3), seed=st.integers(10, 12))
    def join(self, a: int, b: int, seed: int) -> None:
        """The same seeded request from two kernels at once: the second joins the first (one fal request)."""
        first, second = (self.kernels[i % len(self.kernels)] for i in (a, b))
        self._attempt(lambda: first.generate(PROMPT, seed=seed, wait=False))
        self._attempt(lambda: second.generate(PROMPT, seed=seed, wait=False))

    @allowed("magic_bg")
    @rule(seed=st.sampled_from([None, 1, 3]))
    def magic_bg(self, seed: int | None) -> None:
        shell = self._shell()
        line = f"{PROMPT} --seed {seed} --bg" if seed is not None else f"{self._prompt()} --bg"
        self._attempt(lambda: shell.run_line_magic("kontext", line))

    @allowed("sweep")
    @rule(bg=st.booleans())
    def sweep(self, bg: bool) -> None:
        shell = self._shell()
        self.counter += 1
        line = f"sweep 'a {{cat|owl}} number {self.counter}' --yes" + (" --bg" if bg else "")
        self._attempt(lambda: shell.run_line_magic("kontext", line))

    @allowed("rerun")
    @rule(k=st.integers(0, 3))
    def rerun(self, k: int) -> None:
        session = self.kernels[k % len(self.kernels)]
        self._attempt(lambda: session.rerun("@last", seed=self.counter + 1000, wait=False))
        self.counter += 1

    @allowed("edit_a_large_url")
    @rule(k=st.integers(0, 3))
    def edit_a_large_url(self, k: int) -> None:
        """[dev] at match_input of a 2100x2100 source given as a URL: 5 billed megapixels, not 4."""
        session = self.kernels[k % len(self.kernels)]
        url = self._large_url()
        self._attempt(lambda: session.edit(url, self._prompt(), model="dev", wait=False))

    # -- housekeeping ----------------------------------------------------------------------------------------------
    @allowed("delete_last")
    @rule(k=st.integers(0, 3))
    def delete_last(self, k: int) -> None:
        session = self.kernels[k % len(self.kernels)]
        record = self._attempt(lambda: session.record("@last"))
        if record is not None and record.request_id:
            self.forgotten.add(record.request_id)
        self._attempt(lambda: session.delete("@last"))

    @allowed("prune_all")
    @rule(k=st.integers(0, 3))
    def prune_all(self, k: int) -> None:
        session = self.kernels[k % len(self.kernels)]
        history = self._attempt(lambda: session.history())
        self.forgotten |= {r.request_id for r in history or [] if r.request_id}
        self._attempt(lambda: session.prune(older_than_days=0))

    @allowed("switch_runs_folder")
    @rule(k=st.integers(0, 3))
    def switch_runs_folder(self, k: int) -> None:
        index = k % len(self.kernels)
        session = self.kernels[index]
        folder = self.folders[1] if self.folder_of[index] == self.folders[0] else self.folders[0]
        session.configure(session.settings.with_(runs_dir=str(folder)))
        self.folder_of[index] = folder
        self.used.add(folder)

    # -- faults ----------------------------------------------------------------------------------------------------
    @allowed("lose_the_next_submit_reply")
    @rule()
    def lose_the_next_submit_reply(self) -> None:
        self.sb.set_faults([{"route": "submit", "kind": "lost-reply", "count": 1}])

    @allowed("fail_downloads")
    @rule()
    def fail_downloads(self) -> None:
        self.sb.set_faults([{"route": "media", "kind": "500"}])

    @allowed("heal")
    @rule()
    def heal(self) -> None:
        self.sb.set_faults([])

    @allowed("midnight_in_another_time_zone")
    @rule()
    def midnight_in_another_time_zone(self) -> None:
        """This process moves to a zone whose day began a second ago (what a kernel far away sees)."""
        now = time.time()
        east = (-int(now - 1)) % 86400
        hours, rest = divmod(east, 3600)
        os.environ["TZ"] = f"KXZ-{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
        time.tzset()

    @precondition(lambda self: self.profile.damage and not self.damaged)
    @allowed("damage_the_journal")
    @rule()
    def damage_the_journal(self) -> None:
        from test_money import damage_a_page  # the suite's one way to damage a journal

        self.damaged = True
        self._attempt(lambda: damage_a_page(self.folders[0] / "journal.sqlite3"))

    @precondition(lambda self: self.profile.processes and len(self.workers) < 2)
    @allowed("a_kernel_process_killed_after_sending")
    @rule(bg=st.booleans())
    def a_kernel_process_killed_after_sending(self, bg: bool) -> None:
        from money_worker import Worker

        worker = Worker(self.sb.url, self.folders[0], key=self.key, budget_session=SESSION_CAP, budget_daily=DAILY_CAP)
        self.workers.append(worker)
        self.ever += 1
        before = self.sb.bills()["count"]
        answer = worker.magic(f"{self._prompt()} --bg") if bg else worker.kx("generate", self._prompt(), wait=False)
        self.outputs.append(str(answer))
        if "ok" in answer:  # sent: kill it once fal has completed (and billed) the job, whatever the kernel did since
            wait_for(lambda: self.sb.bills()["count"] > before, timeout=30, interval=0.005)
        worker.kill()
        self.outputs.extend(worker.output)

    @allowed("resume")
    @rule(k=st.integers(0, 3))
    def resume(self, k: int) -> None:
        session = self.kernels[k % len(self.kernels)]
        self._attempt(lambda: session.resume(wait=False))

    # -- the invariants --------------------------------------------------------------------------------------------
    @invariant()
    def money_holds(self) -> None:
        """Once the jobs of the step have ended (so a replay of a sequence sees the same): within the caps, and the
        journals say at least what was billed."""
        self._settle()
        total = float(self.sb.bills()["total"])
        assert total <= SESSION_CAP * self.ever + CENT, (
            f"billed ${total:.2f} with {self.ever} kernel(s) under a ${SESSION_CAP:.2f} session cap each"
        )
        assert total <= DAILY_CAP * len(self.used) + CENT, (
            f"billed ${total:.2f} in {len(self.used)} runs folder(s) under a ${DAILY_CAP:.2f} daily cap each"
        )
        said = 0.0
        for folder in sorted(self.used):
            b = self._attempt(self._auditor(folder).budget)
            if b is not None:
                said += float(b["today"] or 0) + float(b.get("today_reserved") or 0)
        assert said + CENT >= total, f"the journals say ${said:.2f} today; ${total:.2f} was billed"

    def _settle(self) -> None:
        for session in self.kernels:
            wait_for(lambda s=session: not s.active_jobs(), timeout=60, interval=0.01)
        settled_bills(self.sb)

    def teardown(self) -> None:
        try:
            self._settle_and_check()
        finally:
            for worker in self.workers:
                worker.kill()
            for session in [*self.kernels, *self.auditors.values()]:
                session.close()
            if self.shell is not None:
                self.shell.run_line_magic("unload_ext", "kontext_nb")
                self.shell.config.pop("Kontext", None)
            kx.set_session(None)
            self.sb.stop()
            if self.tz is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = self.tz
            time.tzset()
            shutil.rmtree(self.root, ignore_errors=True)
            if self._database is not None:
                self._database.__exit__(None, None, None)

    def _settle_and_check(self) -> None:
        """Faults off, every job collected, then: every billed image findable, the key nowhere."""
        self.sb.set_faults([])
        self._settle()
        for folder in sorted(self.used):
            checker = Session(
                Settings(base_url=self.sb.url, key=self.key, runs_dir=str(folder), journal_url=self.journal_url),
                notice=self.outputs.append,
            )
            try:
                for _ in range(2):  # a damaged journal is salvaged by the first read ("try again"): then resume
                    if self._attempt(lambda c=checker: c.history()) is not None:
                        break
                self._attempt(lambda c=checker: c.resume(wait=True))
            finally:
                checker.close()
        bills = settled_bills(self.sb)
        rows: dict[str, Any] = {}
        checkers = []
        for folder in sorted(self.used):
            checker = Session(
                Settings(base_url=self.sb.url, key=self.key, runs_dir=str(folder), journal_url=self.journal_url),
                notice=lambda m: None,
            )
            checkers.append(checker)
            rows |= {r.request_id: checker for r in checker.history() if r.request_id}
        try:
            for bill in bills["bills"]:
                rid = bill["request_id"]
                if rid not in self.forgotten and rid in rows:
                    findable(rows[rid], {"bills": [bill]}, what="(after the sequence, faults cleared and resumed)")
            missing = [
                b["request_id"] for b in bills["bills"] if b["request_id"] not in rows | dict.fromkeys(self.forgotten)
            ]
            unconfirmed = sum(r.status == "unconfirmed" and not r.request_id for c in checkers for r in c.history())
            assert not missing, (
                f"{len(missing)} billed request(s) are in no runs folder's journal, after kx.resume() "
                f"({unconfirmed} row(s) unconfirmed without a request id: fal's request history resolves those)"
            )
        finally:
            for checker in checkers:
                checker.close()
        key_nowhere([self.root], self.outputs, self.key, "(after the sequence)")

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _auditor(self, folder: Path) -> Session:
        """A session that only reads a runs folder's journal (no caps of its own, sends nothing)."""
        if folder not in self.auditors:
            settings = Settings(base_url=self.sb.url, key=self.key, runs_dir=str(folder), journal_url=self.journal_url)
            self.auditors[folder] = Session(settings, notice=self.outputs.append)
        return self.auditors[folder]

    def _shell(self) -> Any:
        """IPython's test shell with %kontext on the first kernel (made on first use)."""
        if self.shell is None:
            from IPython.testing import globalipapp

            globalipapp.start_ipython()
            self.shell = globalipapp.get_ipython()
            kx.set_session(self.kernels[0])
            with contextlib.redirect_stdout(io.StringIO()):
                self.shell.run_line_magic("load_ext", "kontext_nb")
        return self.shell

    def _large_url(self) -> str:
        if self.url_source is None:
            data = io.BytesIO()
            Image.new("RGB", (2100, 2100), (60, 90, 150)).save(data, "PNG")
            with httpx.Client(base_url=self.sb.url, headers={"Authorization": f"Key {self.key}"}, trust_env=False) as h:
                slot = h.post("/storage/upload/initiate", json={"file_name": "big.png", "content_type": "image/png"})
                h.put(slot.json()["upload_url"], content=data.getvalue(), headers={"content-type": "image/png"})
            self.url_source = str(slot.json()["file_url"])
        return self.url_source


def _prefill(folder: Path) -> None:
    """300 free rows of a gone kernel, so that a page of them can be damaged (as tests/test_money.py does)."""
    from kontext_nb.journal import Journal

    journal = Journal(folder)
    for i in range(300):
        job = journal.create(
            endpoint="fal-ai/flux-pro/kontext/max/text-to-image",
            arguments={"prompt": f"old job {i} " + "words " * 80},
            session="gone:1:x",
        )
        journal.finished(job, status="failed", cost=0.0, num_images=0)
    journal.close()
