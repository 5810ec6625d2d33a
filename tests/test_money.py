"""Money and trust (issue 12): caps that hold for every kind of submit, nothing billed twice by accident, no paid
image dropped, the key never in a prompt. Every test runs against the real sandbox over HTTP, with a real journal.

A test whose promise is about the journal (caps, reservations, settle and release, joins, deletes and prunes that
keep money, collecting) takes ``journal_url`` and runs on both journals: SQLite, then PostgreSQL (issue 24). On
SQLite only, by nature:
- a damaged journal and its salvage (``test_a_damaged_journal_*``, ``test_a_salvage_while_*``): a file's pages;
- the full journal (``test_a_full_journal_*``, ``test_a_journal_full_*``): SQLITE_FULL from a page limit;
- ``test_a_join_after_a_folder_switch_gets_that_folders_job``: two runs folders' journals both numbering from @1
  (a journal_url is one journal for every folder: the ids never meet);
- the kernels judged alive by process id (``test_load_ext_*``, ``test_two_kernels_loading_at_once_*``): on
  PostgreSQL owners are judged by heartbeat rows, and tests/test_money_shared.py kills one on "another host".
Not about the journal, so once: misspelt subcommands, what fills a prompt, the key in a request (case 3 of
tests/test_money_cases.py runs on both, searching a PostgreSQL journal's rows for the key), huge images,
interrupts, retries and requests httpx refuses.
"""

from __future__ import annotations

import _thread
import errno
import json
import math
import os
import re
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from kernels import (  # tests/kernels.py
    CAPPED_KERNEL,
    HOLD,
    OWN,
    Kernel,
    Repl,
    ReplError,
    joiner_of,
    owner_with_a_queued_copy,
    release,
)
from shell import Shell  # tests/shell.py
from waiting import main_thread_in, wait_for

import kontext_nb as kx
from kontext_nb.config import JOURNAL_URL_ENV, RetryPolicy
from kontext_nb.errors import (
    BudgetError,
    ConfirmationRequired,
    DownloadFailed,
    ImageInputError,
    ImageTooLarge,
    Interrupted,
    JobTimeout,
    JournalError,
    SubmitUnconfirmed,
    ValidationError,
)
from kontext_nb.fal.transport import FalTransport
from kontext_nb.jobs import Job
from kontext_nb.journal import Journal, owner_alive
from kontext_nb.session import Session
from kontext_nb.widgets.create import CreateTab

MakeSession = Callable[..., Session]
T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
MONEY_START, MONEY_END = "<!-- money: written by tests/test_money.py -->", "<!-- /money -->"
PRICE = 0.08  # every job here is one image of [max]
MONEY: dict[str, tuple[str, str, str, str]] = {}
"""scenario -> (sent, billed, what the journal says, what kx.budget() says), filled by the tests below."""


def record_money(
    scenario: str,
    sb: Any,
    session: Session | None,
    journal: str | None = None,
    budget: str | None = None,
    billed: str | None = None,
) -> None:
    """One row of the money table: what reached the sandbox (fal), what it would bill (completed images), what the
    journal and kx.budget() say. Read from the real sandbox and journal, never written by hand."""
    stats = sb.stats()
    wait_for(lambda: sb.stats()["in_queue"] + sb.stats()["in_progress"] == 0, timeout=30)
    stats = sb.stats()
    billed = billed or f"${stats['completed'] * PRICE:.2f}"  # given where the images were not all [max]
    if journal is None and session is not None:
        rows = session.tracker.journal.search()
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        journal = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing written"
    if budget is None and session is None:
        budget = "-"
    elif budget is None and session is not None:
        b = session.budget()
        budget = f"spent ${b['session']:.2f}, reserved ${b['session_reserved']:.2f}"
    # a test on both journals records its SQLite run (the first): the table stays one table
    MONEY.setdefault(scenario, (str(stats["submits"]), billed, journal or "nothing written", budget or "-"))


@pytest.fixture
def kernels_journal(journal_url: str | None, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """Both journals for kernels as processes: they inherit KONTEXT_JOURNAL_URL (PostgreSQL), or keep SQLite in
    their runs folder; the test opens the same one with ``Journal(runs, kernels_journal)``."""
    if journal_url is not None:
        monkeypatch.setenv(JOURNAL_URL_ENV, journal_url)
    return journal_url


# -- 1. a job's price is reserved at submit; a run that would cross a cap is refused whole -------------------------
def test_non_blocking_calls_reserve_their_price_until_they_end(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    sb.configure(inference_time=1.5)
    s = make_session(budget_session=0.20)
    first, second = (s.generate(f"a fox {i}", wait=False) for i in range(2))
    with pytest.raises(BudgetError, match=r"cap is \$0.20 and \$0.00 is spent \+ \$0.16 reserved") as info:
        s.generate("a third fox", wait=False)
    assert "\n" not in str(info.value) and "nothing was sent" in str(info.value)
    assert s.budget()["session_reserved"] == pytest.approx(0.16) and s.budget()["session_left"] == pytest.approx(0.04)
    assert isinstance(first, Job) and isinstance(second, Job)
    wait_for(lambda: first.request_id and second.request_id)
    first.cancel()  # a cancelled job gives its reservation back
    wait_for(lambda: s.budget()["session_reserved"] == pytest.approx(0.08))
    second.result(30)  # a finished one turns it into its real cost
    assert s.budget()["session"] == pytest.approx(0.08) and s.budget()["session_reserved"] == 0
    assert sb.stats()["submits"] == 2
    record_money("3 × `generate(wait=False)` under a $0.20 session cap; the 1st cancelled", sb, s)


def test_ten_non_blocking_calls_stop_at_the_cap(make_session: MakeSession, sb: Any, journal_url: str | None) -> None:
    s = make_session(budget_session=0.20)
    sent, refused = [], 0
    for i in range(10):
        try:
            sent.append(s.generate(f"a lighthouse {i}", wait=False))
        except BudgetError:
            refused += 1
    assert len(sent) == 2 and refused == 8
    for job in sent:
        assert isinstance(job, Job)
        job.result(30)
    assert sb.stats()["submits"] == 2 and s.budget()["session"] == pytest.approx(0.16)
    record_money("10 × `generate(wait=False)` under a $0.20 session cap", sb, s)


def test_a_sweep_over_the_cap_sends_nothing(shell: Shell, sb: Any, journal_url: str | None) -> None:
    kx.configure(budget_session=0.20)
    message = shell.usage_error('sweep "a {cat|fox|owl} in snow" --seed 1,2,3 --yes')
    assert "$0.72" in message and "cap is $0.20" in message and "nothing was sent" in message
    assert sb.stats()["submits"] == 0 and kx.budget()["session_reserved"] == 0
    record_money("`%kontext sweep` of 9 images with `--yes` over a $0.20 cap", sb, kx.get_session())


def test_a_cell_batch_over_the_cap_sends_nothing(shell: Shell, sb: Any, journal_url: str | None) -> None:
    kx.configure(budget_session=0.20)
    with pytest.raises(Exception, match=r"3 jobs \(3 images\) would cost \$0.24.*cap is \$0.20"):
        shell.cell("--seed 5", "a red fox\n---\na grey owl\n---\na white hare")
    assert sb.stats()["submits"] == 0
    record_money("`%%kontext` batch of 3 prompts over a $0.20 cap", sb, kx.get_session())


def test_a_panel_run_over_the_cap_sends_nothing(make_session: MakeSession, sb: Any, journal_url: str | None) -> None:
    tab = CreateTab(make_session(budget_session=0.20))
    try:
        tab.prompt.value = "a lighthouse"
        tab.inputs.seed.value = "1-4"
        tab.generate_button.click()
        assert "cap is $0.20" in tab.error.value and "$0.32" in tab.error.value and tab.jobs == []
        assert sb.stats()["submits"] == 0
        record_money("panel sweep (seed 1-4) over a $0.20 cap", sb, tab.session)
    finally:
        tab.close()


def test_four_kernels_on_one_runs_folder_never_pass_the_daily_cap(
    sb: Any, tmp_path: Path, kernels_journal: str | None
) -> None:
    """Each of 4 processes tries 4 jobs ($1.28 in all) under a shared $0.40 daily cap: exactly 5 are sent."""
    sb.configure(inference_time=0.3)
    runs = tmp_path / "shared-runs"
    kernels = [
        subprocess.Popen(
            [sys.executable, "-c", CAPPED_KERNEL, sb.url, str(runs), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    outputs = [k.communicate(timeout=120) for k in kernels]
    assert all(k.returncode == 0 for k in kernels), [err for _, err in outputs]
    sent = sum(int(out.split()[0]) for out, _ in outputs)
    assert sent == 5 and sb.stats()["submits"] == 5
    journal = Journal(runs, kernels_journal)
    assert journal.held() == (pytest.approx(0.40), 0.0)
    done = len(journal.search(status="done"))
    journal.close()
    record_money(
        "4 kernels on one runs folder, 4 `wait=False` jobs each, $0.40 daily cap",
        sb,
        None,
        f"{done} done, $0.40 spent today (all kernels)",
    )


# -- 2. the same intention is sent once ------------------------------------------------------------------------------
def test_an_identical_request_in_flight_joins_it(session: Session, sb: Any, journal_url: str | None) -> None:
    sb.configure(inference_time=0.5)
    first = session.generate("one lighthouse", seed=8, wait=False)
    again = session.generate("one lighthouse", seed=8, wait=False)
    assert isinstance(first, Job) and isinstance(again, Job)
    assert again.result(30).images == first.result(30).images
    assert sb.stats()["submits"] == 1 and session.budget()["session"] == pytest.approx(0.08)
    record_money("the same seeded call twice while the first runs", sb, session)


def test_the_same_seeded_call_from_another_kernel_joins_it(
    sb: Any, tmp_path: Path, kernels_journal: str | None
) -> None:
    """Two processes on one runs folder (tests/test_join_kernels.py has the race, the killed owner, the failures)."""
    sb.configure(queue_delay=HOLD)
    runs = tmp_path / "shared-runs"
    first = Kernel(sb, runs, name="first", owner=True, arguments={"seed": 21})
    kernels = [first]
    try:
        first.await_line("SUBMITTED")
        kernels.append(second := Kernel(sb, runs, name="second", arguments={"seed": 21}))
        second.await_line("STARTED")
        release(sb)
        assert first.finish() == second.finish() and sb.stats()["submits"] == 1
    finally:
        for kernel in kernels:
            kernel.kill()
    journal = Journal(runs, kernels_journal)
    rows = journal.search()
    journal.close()
    assert [r.status for r in rows] == ["done"]
    spent = [k.budget() for k in kernels]
    assert [b["session"] for b in spent] == [pytest.approx(0.08), 0.0]
    record_money(
        "the same seeded call from a 2nd kernel on the runs folder while the 1st runs",
        sb,
        None,
        "1 done (the 2nd kernel joined it: no row, nothing reserved)",
        f"1st kernel spent ${spent[0]['session']:.2f}, 2nd ${spent[1]['session']:.2f}; "
        f"today ${spent[1]['today']:.2f} in both",
    )


def test_a_double_click_on_generate_sends_once(session: Session, sb: Any, journal_url: str | None) -> None:
    """The second click arrives while the first is being submitted (here: from inside the submit itself)."""
    tab = CreateTab(session)
    seen: list[bool] = []

    def second_click(job: Job) -> None:
        seen.append(tab.generate_button.disabled)
        if len(seen) == 1:
            tab.generate_button.click()

    session.on_job(second_click)
    try:
        tab.prompt.value = "a paper boat"  # the seed is drawn anew for each run: the cache cannot dedupe these
        tab.generate_button.click()
        assert seen == [True] and len(tab.jobs) == 1 and not tab.generate_button.disabled
        tab.jobs[0].result(30)
        assert sb.stats()["submits"] == 1
        record_money("double click on Generate", sb, session)
    finally:
        tab.close()


# issue 20, point 6: a joiner follows the owner until its outcome is known (real kernel processes, tests/kernels.py)
@pytest.fixture
def repls() -> Iterator[list[Repl]]:
    started: list[Repl] = []
    yield started
    for repl in started:
        repl.kill()


def test_a_joiner_of_a_submit_whose_reply_is_lost_is_unconfirmed_too_and_sends_nothing(
    sb: Any, tmp_path: Path, repls: list[Repl], kernels_journal: str | None
) -> None:
    """The owner's submit reply is lost; the joiner used to say "never confirmed... sending it itself", and fal got
    the job twice. Now it is unconfirmed too: fal may have it."""
    runs = tmp_path / "runs"
    owner, row = owner_with_a_queued_copy(sb, runs, repls, seed=21)
    joiner = joiner_of(sb, runs, repls, seed=21)
    # the seeded job's submit, once sent; fal's request history cannot tell at once whether it arrived
    sb.set_faults([{"route": "submit", "kind": "lost-reply", "count": 1}, {"route": "platform", "kind": "403"}])
    release(sb)
    assert owner.run("outcome('x')")[:2] == ["ERROR", "SubmitUnconfirmed"]
    word, kind, message = joiner.run("outcome('x')")
    assert (word, kind) == ("ERROR", "SubmitUnconfirmed") and f"@{row}, which this request joined" in message
    assert "nothing was sent here" in message and "\n" not in message
    assert sb.stats()["submits"] == 2  # the slow job and the seeded one, once
    assert not [n for n in joiner.notices() if OWN in n]
    journal = Journal(runs, kernels_journal)
    try:
        assert [r.status for r in journal.search(search="seeded lighthouse")] == ["unconfirmed"]
        # the slow job's images are saved (and its cost settled) after fal's slot is free for the next submit
        wait_for(lambda: [r.status for r in journal.search(search="a slow job first")] == ["done"], timeout=30)
        assert journal.held() == (pytest.approx(2 * PRICE), 0.0)  # the unconfirmed one counts as spent, once
    finally:
        journal.close()
    record_money(
        "a 2nd kernel joins a seeded job; the owner's submit reply is lost (`lost-reply`); a slow job ran first",
        sb,
        None,
        "1 done (the slow job), 1 unconfirmed; both kernels say unconfirmed, the 2nd sent nothing",
    )


def test_a_joiner_waits_for_a_live_kernel_whose_copy_is_queued_behind_a_slow_job(
    sb: Any, tmp_path: Path, repls: list[Repl], kernels_journal: str | None
) -> None:
    """The owner is alive, its copy waits behind a slow job; the joiner used to send its own after 120 s (here the
    old deadline is shortened to 0.3 s, so the old code fails in seconds) and the owner sent it too."""
    runs = tmp_path / "runs"
    owner, row = owner_with_a_queued_copy(sb, runs, repls, seed=22)
    joiner = joiner_of(sb, runs, repls, seed=22)
    joiner.run("following.SUBMIT_WAIT = 0.3")  # the old code's fixed deadline; the new code has none
    joiner.run("time.sleep(3)")  # the owner is alive and has not sent it: the joiner keeps following
    assert sb.stats()["submits"] == 1 and not [n for n in joiner.notices() if OWN in n]
    release(sb)
    owner_outcome, joiner_outcome = owner.run("outcome('x')"), joiner.run("outcome('x')")
    assert owner_outcome[0] == "IMAGES" and joiner_outcome == owner_outcome  # the same request, the same bytes
    assert sb.stats()["submits"] == 2  # the slow job and the seeded one, once
    journal = Journal(runs, kernels_journal)
    try:
        assert [(r.id, r.status) for r in journal.search(search="seeded lighthouse")] == [(row, "done")]
    finally:
        journal.close()
    record_money(
        "a 2nd kernel joins a seeded job that waits in a live kernel behind a slow job",
        sb,
        None,
        "2 done (the slow job, the seeded one); the 2nd kernel got the same images",
    )


# -- 3. a misspelt subcommand is not a paid prompt ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "meant"),
    [("histroy", "history"), ("comapre @1 @2", "compare @1 @2"), ("Panel", "panel"), ("rerun@1", "rerun @1")],
)
def test_a_misspelt_subcommand_sends_nothing(shell: Shell, sb: Any, line: str, meant: str) -> None:
    message = shell.usage_error(line)
    assert f"did you mean %kontext {meant}?" in message and "nothing was sent" in message
    assert sb.stats()["submits"] == 0
    record_money(f"`%kontext {line}` (a typo)", sb, kx.get_session())


def test_a_one_word_prompt_is_still_possible(shell: Shell, sb: Any) -> None:
    shell.line('"history" --seed 1')
    shell.line("--seed 2 -- panel")
    assert [r.prompt for r in kx.history(limit=2)] == ["panel", "history"]
    assert "%kontext -- snow" in shell.ip.find_line_magic("kontext").__doc__


def test_ten_misspelt_lines_with_arguments_send_nothing(shell: Shell, sb: Any) -> None:
    """Issue 20: the guard reads the first word whatever follows (tests/magics/test_typos.py tries generated ones)."""
    lines = ["canel all", "Cancel all", "cancle all", "CANCEL ALL", "stauts all", "histroy fox", "hisotry --seed 42"]
    lines += ["edti photo.jpg make it night", "swep 'a {cat|fox} in snow'", "sohw @1 big"]
    for line in lines:
        assert "did you mean %kontext" in shell.usage_error(line)
    with pytest.raises(UsageError, match="line 2 of the cell"):
        shell.cell("--seed 1", "a fox in snow\nCancel all")
    assert sb.stats()["submits"] == 0
    record_money(
        "`%kontext canel all`, `Cancel all`, `cancle all`, `CANCEL ALL`, `stauts all`, `histroy fox`, "
        "`hisotry --seed 42`, `edti photo.jpg make it night`, `swep 'a {cat\\|fox} in snow'`, `sohw @1 big`, "
        "and a `%%kontext` cell with a line `Cancel all`",
        sb,
        kx.get_session(),
    )


# -- 4. a submit that may have reached fal is never sent again -----------------------------------------------------
def test_a_lost_submit_reply_is_found_in_fals_history_and_collected(
    session: Session, sb: Any, journal_url: str | None
) -> None:
    sb.set_faults([{"route": "submit", "kind": "lost-reply", "count": 1}])
    result = session.generate("accepted in silence", seed=4)
    assert result.images and sb.stats()["submits"] == 1, "fal queued it once and was not asked again"
    assert session.record("@last").status == "done" and session.budget()["session"] == pytest.approx(0.08)
    record_money("submit accepted by fal, reply lost (`lost-reply` fault): found in fal's request history", sb, session)


def test_a_lost_submit_reply_is_not_resent_and_is_counted(session: Session, sb: Any, journal_url: str | None) -> None:
    history_refused = {"route": "platform", "kind": "403", "count": 1}  # the lookup at once cannot tell
    sb.set_faults([{"route": "submit", "kind": "lost-reply", "count": 1}, history_refused])
    with pytest.raises(SubmitUnconfirmed, match=r"fal may have accepted it; it may cost \$0.08") as info:
        session.generate("accepted in silence", seed=4)
    assert "\n" not in str(info.value)
    assert sb.stats()["submits"] == 1, "fal queued it once and was not asked again"
    row = session.record("@last")
    assert row.status == "unconfirmed" and row.cost == pytest.approx(0.08) and row.reserved == 0
    assert session.budget()["session"] == pytest.approx(0.08)
    record_money("submit accepted by fal, reply lost, fal's request history refused at first (`403`)", sb, session)
    (collected,) = session.resume()  # kx.resume() looks again: found, collected, never sent again
    assert collected.images and sb.stats()["submits"] == 1 and session.record("@last").status == "done"
    assert session.budget()["session"] == pytest.approx(0.08)
    record_money("… then `kx.resume()` finds it in fal's request history and collects it", sb, session)


def test_a_submit_that_never_reached_fal_is_released_after_the_window(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    sb.set_faults([{"route": "submit", "kind": "drop", "count": 1}])  # dropped before fal queued it
    with pytest.raises(SubmitUnconfirmed):
        make_session().generate("lost on the way", seed=6)
    later = make_session(unconfirmed_after=0.0)  # the window has passed: fal would list it by now
    assert later.resume() == [] and later.record("@last").status == "failed"
    assert sb.stats()["submits"] == 0 and later.budget()["today"] == 0
    record_money(
        "dropped submit (never reached fal), then `kx.resume()` once `unconfirmed_after` has passed", sb, later,
        budget=f"today ${later.budget()['today']:.2f}, reserved ${later.budget()['today_reserved']:.2f}",
    )  # fmt: skip


def test_a_result_fal_no_longer_keeps_is_collected_from_its_history(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    session = make_session(job_timeout=0.2)
    sb.configure(inference_time=0.8)
    with pytest.raises(JobTimeout):
        session.generate("a fox after a long break", seed=11)
    rid = session.record("@last").request_id
    wait_for(lambda: rid and sb.request_info(rid)["status"] == "COMPLETED", timeout=30)
    sb.configure(clock_offset=7200)  # two hours later: fal keeps a queue result one hour
    (result,) = session.resume()
    assert result.images and session.record("@last").status == "done" and sb.stats()["submits"] == 1
    record_money("a job collected by `kx.resume()` 2 h after fal finished it (its queue result expired)", sb, session)


def test_reconcile_names_a_job_fal_billed_that_the_journal_lacks(
    make_session: MakeSession, sb: Any, tmp_path: Path, journal_url: str | None
) -> None:
    # the same key, another journal: a SQLite one in another runs folder (a journal_url is one journal for all folders)
    ours, elsewhere = make_session(), make_session(runs_dir=str(tmp_path / "elsewhere"), journal_url=None)
    ours.generate("a fox", seed=1)
    elsewhere.generate("an owl", seed=2)
    found = ours.budget(reconcile=True)["reconcile"]
    (line,) = found.differences
    assert line.difference == pytest.approx(PRICE) and sb.stats()["submits"] == 2
    b = ours.budget()
    record_money(
        "`kx.budget(reconcile=True)` when fal billed a job this journal does not hold", sb, ours,
        budget=f"spent ${b['session']:.2f}; reconcile: fal ${line.fal:.2f}, difference +${line.difference:.2f} named",
    )  # fmt: skip


def test_a_refused_connection_is_retried(tmp_path: Path) -> None:
    """Connection refused provably never reached the server: safe to send again."""
    import asyncio

    import httpx

    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket closes
    transport = FalTransport(f"http://127.0.0.1:{port}", RetryPolicy(attempts=3, base_delay=0.01))

    async def post() -> None:
        async with httpx.AsyncClient(transport=transport) as client:
            await client.post("https://queue.fal.run/fal-ai/flux-pro/kontext/max/text-to-image", json={})

    with pytest.raises(Exception, match="tried 3 times"):
        asyncio.run(post())
    assert transport.requests_sent == 3


# -- 5. a paid image is not dropped after one failed download ------------------------------------------------------
@pytest.mark.parametrize("kind", ["403", "vanish"])
def test_a_failed_download_stays_collectable(session: Session, sb: Any, kind: str, journal_url: str | None) -> None:
    sb.set_faults([{"route": "media", "kind": kind, "count": 1}])
    with pytest.raises(DownloadFailed, match=r"kx\.resume"):
        session.generate("paid for", seed=21)
    row = session.record("@last")
    assert row.status == "submitted" and row.request_id and row.reserved == pytest.approx(0.08)
    (collected,) = session.resume()
    assert collected.images and session.record("@last").status == "done"
    assert sb.stats()["submits"] == 1
    record_money(f"first image download fails (`{kind}`), then `kx.resume()`", sb, session)


KILLED_KERNEL = """
import sys, time
from kontext_nb.config import Settings
from kontext_nb.session import Session

url, runs = sys.argv[1], sys.argv[2]
session = Session(Settings(base_url=url, key="anything", runs_dir=runs), notice=lambda message: None)
job = session.generate("paid for, then the kernel died", seed=55, wait=False)
journal = session.tracker.journal
while journal.get(job.journal_id).status != "submitted":
    time.sleep(0.01)
print("submitted", flush=True)
time.sleep(120)
"""
FRESH_IPYTHON = """
import sys
from IPython.core.interactiveshell import InteractiveShell

InteractiveShell.instance().run_line_magic("load_ext", "kontext_nb")
sys.stdout.write("loaded\\n")  # one write: the collecting thread prints too
sys.stdout.flush()
sys.stdin.read()  # a kernel idling after %load_ext: alive until the test closes stdin
"""


def python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def ended(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Close its stdin (it then ends; killed if it does not) and return everything else it printed."""
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def today(journal: Journal) -> str:
    """The runs folder's spending, as ``kx.budget()`` in any kernel on it counts it (all of it is today's here)."""
    spent, reserved = journal.held()
    return f"today (the runs folder): spent ${spent:.2f}, reserved ${reserved:.2f}"


def killed_kernel_job(sb: Any, runs: Path) -> int:
    """A kernel process submits one job and is killed (SIGKILL) before collecting it: its row stays submitted."""
    sb.configure(inference_time=1.0)
    kernel = python(KILLED_KERNEL, sb.url, str(runs))
    try:
        assert kernel.stdout is not None and kernel.stdout.readline().strip() == "submitted", ended(kernel)
    finally:
        kernel.kill()
        kernel.wait(10)
    (row,) = Journal(runs).search()
    assert row.status == "submitted" and row.request_id and not owner_alive(row.session)
    return row.id


def fresh_ipython_env(sb: Any, runs: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET")}
    return {**env, "KONTEXT_FAL_URL": sb.url, "KONTEXT_HOME": str(runs)}


def test_load_ext_collects_a_dead_kernels_job_whose_first_download_fails(sb: Any, tmp_path: Path) -> None:
    """Point 5: the next %load_ext retries it, in the background, without kx.resume()."""
    runs = tmp_path / "runs"
    job_id = killed_kernel_job(sb, runs)
    sb.set_faults([{"route": "media", "kind": "403", "count": 1}])  # the first download of its image fails
    shell = python(FRESH_IPYTHON, env=fresh_ipython_env(sb, runs))
    try:
        assert shell.stdout is not None
        first = shell.stdout.readline()
        assert first.startswith(f"kontext_nb: collecting 1 job a stopped kernel left on fal (@{job_id})"), first
        assert shell.stdout.readline().strip() == "loaded", "the load returned before the collecting ended"
        journal = Journal(runs)
        wait_for(lambda: journal.get(job_id).status == "done", timeout=60)
        said = shell.stdout.readline()
    finally:
        out, err = ended(shell)
    assert said.startswith(f"kontext_nb: collected @{job_id} (1 image)"), (said, out, err)
    assert "Traceback" not in out + err, err
    row = journal.get(job_id)
    assert row.files and all(p.is_file() for p in row.paths) and row.error is None
    assert row.cost == pytest.approx(PRICE) and row.reserved == 0
    stats = sb.stats()
    assert stats["submits"] == 1, "collected, never sent again"
    assert stats["faults_injected"] == {"403": 1} and stats["requests"]["media"] == 2
    record_money(
        "kernel killed after submit, first image download fails, then `%load_ext` in a fresh IPython (no"
        " `kx.resume()`)",
        sb,
        None,
        "1 done (collected by `%load_ext`, images saved)",
        today(journal),
    )


def test_load_ext_leaves_a_live_kernels_job_to_it(sb: Any, tmp_path: Path) -> None:
    """Only jobs whose kernel is gone are collected on load: a live kernel's job in flight is its own."""
    runs = tmp_path / "runs"
    sb.configure(inference_time=1.0)
    kernel = python(KILLED_KERNEL, sb.url, str(runs))
    try:
        assert kernel.stdout is not None and kernel.stdout.readline().strip() == "submitted", ended(kernel)
        shell = python(FRESH_IPYTHON, env=fresh_ipython_env(sb, runs))
        assert shell.stdout is not None
        assert shell.stdout.readline().strip() == "loaded"  # nothing said before: nothing to collect
        journal = Journal(runs)
        (row,) = journal.search()
        wait_for(lambda: journal.get(row.id).status == "done", timeout=60)  # collected by its own kernel
        out, _ = ended(shell)
    finally:
        kernel.kill()
        kernel.wait(10)
    assert "kontext_nb" not in out
    assert sb.stats()["requests"]["result"] == 1 and sb.stats()["submits"] == 1


def test_two_kernels_loading_at_once_collect_a_job_once(sb: Any, tmp_path: Path) -> None:
    """Both find the dead kernel's job; the journal's claim lets one collect it, the other leaves it (or, loading
    after it was collected, finds nothing): one download, one set of files, the row done."""
    runs = tmp_path / "runs"
    job_id = killed_kernel_job(sb, runs)
    shells = [python(FRESH_IPYTHON, env=fresh_ipython_env(sb, runs)) for _ in range(2)]
    try:
        journal = Journal(runs)
        wait_for(lambda: journal.get(job_id).status == "done", timeout=60)
    finally:
        outs = [ended(shell)[0] for shell in shells]
    said = " ".join(outs)
    assert said.count(f"kontext_nb: collected @{job_id} (1 image)") == 1, outs
    assert "not collected" not in said, outs
    row = journal.get(job_id)
    assert len(row.files) == 1 and row.paths[0].is_file() and len(list((runs / "images").iterdir())) == 1
    stats = sb.stats()
    assert stats["submits"] == 1 and stats["requests"]["result"] == 1 and stats["requests"]["media"] == 1, stats
    record_money(
        "a dead kernel's job, two fresh IPythons loading `%load_ext` at once",
        sb,
        None,
        "1 done (collected once)",
        today(journal),
    )


# -- 6. the key never reaches a prompt ---------------------------------------------------------------------------
@pytest.mark.parametrize("braces", ["{os.environ}", "{env}", "{os.sep}", "{In}", "{things}"])
def test_only_plain_values_fill_a_prompt(shell: Shell, sb: Any, braces: str) -> None:
    shell.run("import os\nenv = os.environ\nthings = ['a', 'b']")
    message = shell.usage_error(f"a poster of {braces} --seed 1")
    assert braces in message and "only text and numbers" in message
    assert sb.stats()["submits"] == 0
    record_money(f"`%kontext a poster of {braces}`", sb, kx.get_session())


def test_plain_values_and_attributes_still_fill(shell: Shell) -> None:
    shell.run("animal = 'fox'\nclass Scene: place = 'snow'\nn = 3")
    r = shell.line("{n} {animal}s in {Scene.place} --seed 1")
    assert r.arguments["prompt"] == "3 foxs in snow"


def test_a_request_holding_the_key_is_refused_and_nothing_written(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAL_KEY", "3f2a9c1e-aaaa-bbbb:0123456789abcdefsecret")
    s = make_session()
    journal = s.tracker.journal
    for prompt in ("a poster of 3f2a9c1e-aaaa-bbbb:0123456789abcdefsecret", "just 0123456789abcdefsecret"):
        with pytest.raises(ValidationError, match="prompt contains your fal key") as info:
            s.generate(prompt)
        assert "0123456789abcdefsecret" not in str(info.value)
    assert journal.count() == 0 and sb.stats()["submits"] == 0
    record_money("a prompt holding the fal key (or its secret half)", sb, s)


def test_a_key_pasted_with_a_trailing_cr_works_and_is_in_no_file(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 20: httpx refused the header and its error (shown, and in the journal) held the whole key."""
    key = "3f2a9c1e-aaaa-bbbb:0123456789abcdefsecret"
    monkeypatch.setenv("FAL_KEY", key + "\r")
    s = make_session(key=None)
    s.generate("a lighthouse at dusk", seed=3)
    files = b"".join(p.read_bytes() for p in (tmp_path / "runs").rglob("*") if p.is_file())
    assert sb.stats()["submits"] == 1 and b"0123456789abcdefsecret" not in files
    record_money("`FAL_KEY` pasted with a trailing `\\r`", sb, s, journal="1 done; the key in no file of the runs dir")


def test_the_key_in_a_lora_url_a_tag_or_encoded_is_refused(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import urllib.parse

    key = "3f2a9c1e-aaaa-bbbb:0123456789abcdefsecret"
    monkeypatch.setenv("FAL_KEY", key)
    s = make_session(key=None)
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAH2Fz"
    png += "hVAAAAAElFTkSuQmCC"
    calls: list[Callable[[], Any]] = [
        lambda: s.edit(png, "a fox", model="lora", loras=[{"path": f"https://h.test/a.safetensors?key={key}"}]),
        lambda: s.generate("a fox", tags=[key]),
        lambda: s.generate("a fox", webhook_url="https://h.test/?t=" + urllib.parse.quote(key, safe="")),
        lambda: s.generate("a fox " + base64.b64encode(key.encode()).decode()),
    ]
    for call in calls:
        with pytest.raises(ValidationError, match="contains your fal key") as info:
            call()
        assert "0123456789abcdefsecret" not in str(info.value)
    assert sb.stats()["submits"] == 0 and s.tracker.journal.count() == 0
    record_money("the key in a LoRA URL (`?key=`), a tag, a webhook, or base64 in a prompt", sb, s)


def test_a_submit_httpx_refuses_on_this_machine_is_not_sent(make_session: MakeSession, sb: Any) -> None:
    """An unsupported scheme (like an illegal header value) is raised by httpx before a byte leaves: not unconfirmed."""
    from kontext_nb.errors import NotSent

    s = make_session(base_url=sb.url.replace("http://", "ftp://"))
    with pytest.raises(NotSent, match="nothing was sent"):
        s.generate("a lighthouse at dusk", seed=4)
    assert s.record("@last").status == "failed" and sb.stats()["submits"] == 0
    record_money(
        "a submit httpx refuses on this machine (`UnsupportedProtocol`, an illegal header value)",
        sb,
        s,
        journal="1 failed (nothing was sent), its reservation released",
    )


# -- 7. a damaged journal is one line, salvaged and moved aside ----------------------------------------------------
def damage_a_page(path: Path) -> None:
    """Overwrite one page of the jobs table's rows, chosen so a full scan fails and the first row still reads."""
    pristine = path.read_bytes()
    size = int.from_bytes(pristine[16:18], "big")  # the page size, from the file's header
    for page in range(len(pristine) // size // 2, len(pristine) // size):
        spoiled = bytearray(pristine)
        spoiled[(page - 1) * size : page * size] = b"\xde\xad\xbe\xef" * (size // 4)
        path.write_bytes(bytes(spoiled))
        probe = sqlite3.connect(path)
        try:
            probe.execute("SELECT * FROM jobs WHERE id = 1").fetchall()
            probe.execute("SELECT SUM(cost) FROM jobs WHERE session = 'x'").fetchall()
        except sqlite3.DatabaseError as exc:
            if "malformed" in str(exc):
                return
        finally:
            probe.close()
    raise AssertionError("no page of the journal could be damaged as wanted")


def test_a_damaged_journal_is_one_line_then_salvaged(make_session: MakeSession, sb: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    journal = Journal(runs)
    for i in range(300):
        job = journal.create(endpoint=T2I, arguments={"prompt": f"job {i} " + "words " * 80}, session="gone:1:x")
        journal.finished(job, status="done", cost=PRICE, num_images=1)
    journal.close()
    damage_a_page(runs / "journal.sqlite3")
    s = make_session(budget_daily=100.0)
    with pytest.raises(
        JournalError, match=r"is damaged \(database disk image is malformed\): \d+ readable jobs"
    ) as info:
        s.history()  # reads every row (the caps read only the spend ledger, whose pages are whole)
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    assert sb.stats()["submits"] == 0
    (aside,) = [p for p in runs.glob("journal.sqlite3.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert aside.name in str(info.value) and aside.stat().st_size > 0
    kept = s.tracker.journal.count()
    assert 200 < kept < 300 and s.record(1).prompt.startswith("job 0 ")
    assert s.generate("after the damage").images and s.tracker.journal.count() == kept + 1
    assert s.budget()["total"] == pytest.approx(301 * PRICE)  # salvage keeps every ledger entry: no money is lost
    record_money("a damaged journal page, then two `generate` calls", sb, s, f"{kept} of 300 rows kept, 1 done")


# issue 20, point 5: a salvage while another kernel is alive (real kernel processes, tests/kernels.py)
def damage_old_rows(path: Path) -> None:
    """Overwrite one page of the jobs table's old rows: reading every row fails, while today's rows (the caps'
    reads, through the index on created) and new rows still work, as a bad sector far from the end would."""
    pristine = path.read_bytes()
    size = int.from_bytes(pristine[16:18], "big")
    for page in range(len(pristine) // size // 3, len(pristine) // size):
        spoiled = bytearray(pristine)
        spoiled[(page - 1) * size : page * size] = b"\xde\xad\xbe\xef" * (size // 4)
        path.write_bytes(bytes(spoiled))
        probe = sqlite3.connect(path, isolation_level=None)
        try:
            probe.execute("SELECT SUM(cost) FROM jobs WHERE created >= ?", (time.time() - 3600,)).fetchall()
            probe.execute("BEGIN IMMEDIATE")
            probe.execute(
                "INSERT INTO jobs (created, updated, status, endpoint, prompt, arguments, session, reserved)"
                " VALUES (?, ?, 'pending', ?, 'probe', '{}', 'probe', 0.08)",
                (time.time(), time.time(), T2I),
            )
            probe.execute("ROLLBACK")
            try:
                probe.execute("SELECT COUNT(*) FROM jobs WHERE prompt LIKE '%words%'").fetchall()
            except sqlite3.DatabaseError as exc:
                if "malformed" in str(exc):
                    return
        except sqlite3.DatabaseError:
            pass
        finally:
            probe.close()
    raise AssertionError("no page of the journal could be damaged as wanted")


def test_a_salvage_while_another_kernel_is_alive_keeps_every_paid_job_and_the_caps(
    sb: Any, tmp_path: Path, repls: list[Repl]
) -> None:
    """Kernel A meets a damaged page and salvages the journal while kernel B is alive (with a job in flight): B
    used to go on writing into the moved-aside file (its paid jobs missing from the live journal, the daily cap
    counted twice: 5 submits under a $0.24 cap), and later "salvaged" A's healthy new journal."""
    runs = tmp_path / "runs"
    journal = Journal(runs)
    for i in range(300):  # two days old: outside today's spending, on pages only a full read visits
        job = journal.create(endpoint=T2I, arguments={"prompt": f"old job {i} " + "words " * 80}, session="gone:1:x")
        journal.finished(job, status="failed", error="long ago")
    journal.close()
    db = sqlite3.connect(runs / "journal.sqlite3", isolation_level=None)
    db.execute("UPDATE jobs SET created = created - 172800, updated = updated - 172800")
    db.close()  # the last connection: everything is checkpointed into the main file
    damage_old_rows(runs / "journal.sqlite3")
    sb.configure(queue_delay=HOLD)
    a, b = (Repl(sb, runs, name=name, budget_daily=0.24) for name in ("a", "b"))
    repls.extend([a, b])

    def attempt(kernel: Repl, name: str, seed: int) -> list[Any]:
        try:
            kernel.run(f"start({name!r}, 'a fox, job {name}', seed={seed})")
        except ReplError as exc:
            return ["REFUSED", exc.kind]
        outcome: list[Any] = kernel.run(f"outcome({name!r})")
        return outcome

    b.run("start('b1', 'a fox, job b1', seed=1)")
    b.run("wait_submitted('b1')")  # B's job is in flight when A salvages
    with pytest.raises(ReplError, match=r"is damaged \(database disk image is malformed\)"):
        a.run("s.tracker.journal.search()")  # a full read meets the damage: A salvages
    release(sb)
    outcomes = [b.run("outcome('b1')"), attempt(a, "a1", 2), attempt(b, "b2", 3), attempt(a, "a2", 4)]
    outcomes.append(attempt(b, "b3", 5))
    try:  # B reads every row: of the new journal (the old code read the damaged file and salvaged A's new one)
        b_reads: Any = b.run("len(s.tracker.journal.search())")
    except ReplError as exc:
        b_reads = str(exc)
    paid = [o[2] for o in outcomes if o[0] == "IMAGES"]
    assert sb.stats()["submits"] == len(paid) == 3, outcomes  # $0.24: the cap holds across both kernels
    assert [o[1] for o in outcomes if o[0] != "IMAGES"] == ["BudgetError", "BudgetError"], outcomes
    aside = [p for p in runs.glob("journal.sqlite3.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1, aside  # the damaged file, once: never A's healthy new journal
    live = Journal(runs)
    try:
        done = {r.request_id: r for r in live.search(status="done")}
        assert set(paid) <= set(done), "a paid job is missing from the live journal"
        assert live.held() == (pytest.approx(0.24), 0.0) and not live.uncollected()
        assert b_reads == live.count()
    finally:
        live.close()
    for kernel in (a, b):  # what kx.budget() says in each kernel
        budget = kernel.run("s.budget()")
        assert (budget["today"], budget["today_reserved"]) == (pytest.approx(0.24), 0.0), budget
    record_money(
        "a damaged journal salvaged by kernel A while kernel B is alive with a job in flight; $0.24 daily cap",
        sb,
        None,
        "every paid job done in the live journal (3); 1 file moved aside",
        "today $0.24 spent, $0.00 reserved, in both kernels",
    )


class FullJournal:
    """A journal that really runs out of room: every connection the journal opens gets SQLite's
    ``PRAGMA max_page_count``, and ``fill`` packs its pages with rows until SQLite itself answers SQLITE_FULL
    ("database or disk is full"), as a full disk makes it answer; ``empty`` deletes them: room again."""

    PAGES = 48

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = Journal._connect

        def connect(journal: Journal) -> sqlite3.Connection:
            conn = real(journal)
            conn.execute(f"PRAGMA max_page_count = {self.PAGES}")
            return conn

        monkeypatch.setattr(Journal, "_connect", connect)

    def _db(self, path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute(f"PRAGMA max_page_count = {self.PAGES}")
        conn.execute("PRAGMA synchronous = OFF")  # filler: no need to reach the platter
        return conn

    def fill(self, path: Path) -> None:
        """Small rows, appended until SQLite has no page left; then the first of them grows until the page it
        shares with the newest job (rows are appended to the last page) has not a byte left: so even that job's
        row cannot grow any more."""
        conn = self._db(path)
        try:
            while self._fits(conn, "INSERT INTO jobs (created, updated, status, endpoint, prompt, arguments)"
                             " VALUES (0, 0, 'failed', '', 'filler', '{}')"):  # fmt: skip
                pass
            first = conn.execute("SELECT MIN(id) FROM jobs WHERE prompt LIKE 'filler%'").fetchone()[0]
            low, high = 0, 4096  # the longest prompt the first filler row can take
            while low < high:
                size = (low + high + 1) // 2
                if self._fits(conn, "UPDATE jobs SET prompt = 'filler' || ? WHERE id = ?", ("x" * size, first)):
                    low = size
                else:
                    high = size - 1
        finally:
            conn.close()

    @staticmethod
    def _fits(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> bool:
        try:
            conn.execute(sql, params)
            return True
        except sqlite3.OperationalError as exc:
            assert "database or disk is full" in str(exc)
            return False

    def empty(self, path: Path) -> None:
        conn = self._db(path)
        conn.execute("DELETE FROM jobs WHERE prompt LIKE 'filler%'")
        conn.close()


def test_a_full_journal_at_submit_is_one_line_and_sends_nothing(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Money first: nothing is sent that cannot be recorded."""
    full = FullJournal(monkeypatch)
    s = make_session()
    full.fill(s.tracker.journal.path)
    for call in (lambda: s.generate("no room to record it", seed=71), lambda: s.generate("nor this", wait=False)):
        with pytest.raises(JournalError, match=r"cannot use the journal .*: database or disk is full$") as info:
            call()
        assert "\n" not in str(info.value)
    assert sb.stats()["submits"] == 0 and s.budget()["session_reserved"] == 0
    record_money("the journal full at submit (SQLite answers SQLITE_FULL)", sb, s, "nothing written")
    full.empty(s.tracker.journal.path)
    assert s.generate("room again", seed=71).files and sb.stats()["submits"] == 1


def fill_once_submitted(monkeypatch: pytest.MonkeyPatch, full: FullJournal) -> None:
    """The journal fills up the moment a job's request id is recorded: fal has the job, the outcome finds no room."""
    real = Journal.submitted

    def submitted_then_full(journal: Journal, job_id: int, request_id: str) -> None:
        real(journal, job_id, request_id)
        full.fill(journal.path)

    monkeypatch.setattr(Journal, "submitted", submitted_then_full)


def test_a_journal_full_while_settling_keeps_the_images_and_resume_records_them(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = FullJournal(monkeypatch)
    notices: list[str] = []
    s = make_session()
    s.notice = notices.append
    journal = s.tracker.journal
    fill_once_submitted(monkeypatch, full)
    result = s.generate("paid for while the disk filled up", seed=72)
    assert isinstance(result, kx.Result) and result.images and result.image_bytes
    assert result.save_error and "database or disk is full" in result.save_error
    (said,) = [n for n in notices if "disk is full" in n]
    assert "\n" not in said and "still in result.images" in said and "kx.resume()" in said
    row = journal.get(result.journal_id or 0)
    assert row.status == "submitted" and row.request_id == result.request_id and row.reserved == pytest.approx(PRICE)
    assert s.budget()["session_reserved"] == pytest.approx(PRICE), "still held: fal bills it"
    record_money(
        "the journal fills up after submit, while the result is saved", sb, s, "1 submitted (images in memory)"
    )
    full.empty(journal.path)
    (again,) = s.resume()
    assert again is result and result.save_error is None and result.files and all(p.is_file() for p in result.files)
    row = journal.get(result.journal_id or 0)
    assert row.status == "done" and row.error is None and row.files and row.cost == pytest.approx(PRICE)
    stats = sb.stats()
    assert stats["submits"] == 1 and stats["requests"]["media"] == 1, "saved from memory: not sent or fetched again"
    record_money("… then room again and `kx.resume()`", sb, s)


def test_a_journal_full_before_the_request_id_is_written_keeps_it(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Full between the row and fal's answer: the request id cannot be written. The job runs on, the user is told
    in one line (no logged traceback), and once there is room resume records the job with its request id."""
    full = FullJournal(monkeypatch)
    notices: list[str] = []
    s = make_session()
    s.notice = notices.append
    journal = s.tracker.journal
    real = Journal.create_all

    def created_then_full(self: Journal, *args: Any, **kwargs: Any) -> list[int]:
        ids = real(self, *args, **kwargs)
        full.fill(self.path)
        return ids

    monkeypatch.setattr(Journal, "create_all", created_then_full)
    result = s.generate("accepted while the disk filled up", seed=75)
    err = capsys.readouterr().err
    assert result.images and "Traceback" not in err
    said = [n for n in notices if "disk is full" in n]
    assert len(said) == 2 and f"as request {result.request_id}" in said[0] and "kx.resume()" in said[1]
    assert journal.get(result.journal_id or 0).request_id is None
    full.empty(journal.path)
    (again,) = s.resume()
    row = journal.get(result.journal_id or 0)
    assert again is result and row.status == "done" and row.request_id == result.request_id and row.files
    assert sb.stats()["submits"] == 1 and s.budget()["session"] == pytest.approx(PRICE)
    record_money("the journal fills up before fal's request id is written; then room again and `kx.resume()`", sb, s)


def test_a_full_journal_through_the_magic_is_one_line(
    shell: Shell, sb: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    full = FullJournal(monkeypatch)
    session = kx.get_session()
    session.notice = print  # as a notebook's session says things
    session.tracker.journal.close()  # the journal's next connection is one with the page limit
    full.fill(session.tracker.journal.path)
    message = shell.usage_error("a poster nobody can record --seed 73")
    assert "database or disk is full" in message and sb.stats()["submits"] == 0
    full.empty(session.tracker.journal.path)
    fill_once_submitted(monkeypatch, full)
    capsys.readouterr()
    result = shell.ip.run_cell("%kontext a poster saved when there is room --seed 74")
    out = capsys.readouterr()
    assert result.error_in_exec is None and result.result.images
    text = out.out + out.err
    assert "database or disk is full; the images are still in result.images" in text
    assert "Traceback" not in text and 'File "' not in text
    full.empty(session.tracker.journal.path)
    shell.line("resume")
    assert session.record(result.result.journal_id).status == "done"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem of 2 MB (tmpfs) for a runs folder: once it is full, writes fail with ENOSPC as on a full
    disk. Mounting needs root (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a 2 MB tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill_disk(path: Path) -> None:
    """Write zeros until the filesystem says No space left on device."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, bytes(65536))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


def test_a_full_disk_while_saving_keeps_the_images_and_resume_saves_them(
    make_session: MakeSession, sb: Any, small_disk: Path, monkeypatch: pytest.MonkeyPatch, journal_url: str | None
) -> None:
    notices: list[str] = []
    s = make_session(runs_dir=str(small_disk / "runs"))
    s.notice = notices.append
    journal = s.tracker.journal
    filler = small_disk / "filler"
    real = Journal.submitted

    def submitted_then_disk_full(journal: Journal, job_id: int, request_id: str) -> None:
        real(journal, job_id, request_id)
        fill_disk(filler)

    monkeypatch.setattr(Journal, "submitted", submitted_then_disk_full)
    result = s.generate("paid for, and the disk is full", seed=76)
    assert isinstance(result, kx.Result) and result.images and result.files == []
    assert result.save_error and "No space left on device" in result.save_error and "\n" not in result.save_error
    (said,) = notices  # one line, saying both what failed and where the images are
    assert "No space left on device" in said and "still in result.images" in said and "kx.resume()" in said
    assert not list((small_disk / "runs" / "images").glob("*")), "no partial file left behind"
    row = journal.get(result.journal_id or 0)
    assert row.status == "submitted" and row.request_id == result.request_id
    record_money("a full disk (a real 2 MB filesystem) while the images are saved", sb, s, f"1 {row.status}")
    filler.unlink()  # room again
    (again,) = s.resume()
    assert again is result and result.save_error is None and all(p.is_file() for p in result.files)
    row = journal.get(result.journal_id or 0)
    assert row.status == "done" and row.error is None and row.cost == pytest.approx(PRICE)
    assert sb.stats()["submits"] == 1 and sb.stats()["requests"]["media"] == 1
    record_money("… then room again and `kx.resume()` (saved from memory)", sb, s)


# -- 8. small files that decode to huge images ---------------------------------------------------------------------
def huge_png(side: int = 13000) -> bytes:
    """A real, valid grey PNG of side x side pixels, a few hundred KB (made row by row: never held decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_a_source_of_too_many_pixels_is_refused_from_its_header(session: Session, sb: Any) -> None:
    data = huge_png()
    assert len(data) < 1_000_000
    with pytest.raises(ImageInputError, match=r"13000x13000 \(169 megapixels\); the largest accepted is 50") as info:
        session.edit(data, "make it blue")
    assert "\n" not in str(info.value)
    assert sb.stats()["submits"] == 0 and session.tracker.journal.count() == 0
    record_money("a PNG of 13000×13000 pixels (under 1 MB) as an edit source", sb, session)


HUGE_RUN = r"""
import json, sys
import kontext_nb.sandbox
from kontext_nb.config import Settings
from kontext_nb.session import Session

def peak_mb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))

url, runs, key = sys.argv[1:4]
notices = []
session = Session(Settings(base_url=url, key=key, runs_dir=runs), notice=notices.append)
warm = session.generate("warm up: engine, journal, encoders, thumbnails", seed=1)
warm._repr_mimebundle_()
before = peak_mb()
kontext_nb.sandbox.control(url).set_faults([{"route": "media", "kind": "huge", "count": 1}])
result = session.generate("a picture that decodes to 680 MB", seed=2)
bundle = result._repr_mimebundle_()
shown = session.result(result.ref)._repr_mimebundle_()["text/html"]  # read back from the runs folder (kx.load)
history = session.history()._repr_mimebundle_()["text/html"]  # its table draws thumbnails from the files
print(json.dumps({"before": before, "after": peak_mb(), "text": bundle["text/plain"], "html": bundle["text/html"],
                  "files": [str(f) for f in result.files], "notices": notices, "bytes": len(result.image_bytes[0]),
                  "loaded": shown, "history": history}))
"""


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (kind, body), read at the byte level (never decoded)."""
    found, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        found.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    return found


def test_a_huge_result_is_saved_as_received_and_never_decoded(sb: Any, tmp_path: Path) -> None:
    """A result PNG of 13000x13000 (half a megabyte; 680 MB decoded), as a broken or hostile server could send: the
    file is kept byte for byte (plus kontext_nb's metadata chunks), memory stays far below the decode, and the output
    says in one line where the file is and why there is no preview. Measured in a process of its own (VmHWM)."""
    from kontext_nb.journal.metadata import PNG_KEYS
    from kontext_nb.sandbox.render import oversized_png

    run = subprocess.run(
        [sys.executable, "-c", HUGE_RUN, sb.url, str(tmp_path / "runs"), "test-key-0123456789abcdef"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    grew = out["after"] - out["before"]
    assert grew < 150, f"peak memory grew by {grew:.0f} MB for a result that is 680 MB decoded"
    (file,) = out["files"]
    saved, served = Path(file).read_bytes(), oversized_png()
    ours = {b"iTXt", b"tEXt"}
    kept = [c for c in png_chunks(saved) if not (c[0] in ours and c[1].split(b"\0", 1)[0].decode() in PNG_KEYS)]
    assert kept == png_chunks(served), "the file on disk is not the image fal sent"
    assert out["bytes"] == len(saved)
    line = next(x for x in out["text"].splitlines() if "no preview" in x)
    assert "13000x13000" in line and "169 megapixels" in line and file in line
    assert "Traceback" not in out["text"] + run.stderr
    assert "<img" not in out["html"] and "no preview" in out["html"] and "13000x13000" in out["html"]
    assert "<img" not in out["loaded"] and "no preview" in out["loaded"]
    assert "a picture that decodes to 680 MB" in out["history"] and "no preview" in out["history"]
    assert not Path(tmp_path / "runs" / "thumbs").exists() or len(list((tmp_path / "runs" / "thumbs").iterdir())) == 1


def test_a_huge_result_in_the_magics_is_one_line(shell: Shell, sb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    sb.set_faults([{"route": "media", "kind": "huge", "count": 1}])
    result = shell.line("a picture that decodes to 680 MB --seed 2")
    out = capsys.readouterr()
    bundle = result._repr_mimebundle_()
    shown = out.out + out.err + bundle["text/plain"]
    assert "Traceback" not in shown and "Error" not in shown
    (file,) = result.files
    why = "13000x13000 (169 megapixels), more than the 50 megapixels kontext_nb decodes: no preview"
    assert f"{why}; the file is {file}" in shown
    assert "<img" not in bundle["text/html"] and str(file) in bundle["text/html"]
    assert file.read_bytes().startswith(b"\x89PNG") and result.sizes == [(13000, 13000)]
    with pytest.raises(ImageTooLarge, match=f"{re.escape(why)}; the file is ") as info:  # asked for in full: one line
        print(result.images)
    assert "\n" not in str(info.value)
    record_money("a result PNG of 13000×13000 pixels (`huge` media fault)", sb, kx.get_session())


# -- 9. an interrupt says one line --------------------------------------------------------------------------------
SLOW = 60.0
"""A job still running when the Ctrl-C comes, however loaded the machine (5 s was not always); and if it never
came, the cell still ends (a failure, not a hang)."""


def interrupt_once_running(sb: Any) -> None:
    """Press Ctrl-C (interrupt the main thread) as soon as a job runs on the sandbox and the main thread waits on a
    job (earlier, the KeyboardInterrupt could land before the cell's code that turns it into one line)."""

    def interrupt() -> None:
        wait_for(lambda: sb.stats()["in_progress"] and main_thread_in("result", "jobs.py"), timeout=50)
        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()


def test_an_interrupt_is_one_line(shell: Shell, sb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    sb.configure(inference_time=SLOW)
    session = kx.get_session()
    interrupt_once_running(sb)
    capsys.readouterr()
    result = shell.ip.run_cell("%kontext a very slow fox --seed 3")
    out = capsys.readouterr()
    assert isinstance(result.error_in_exec, Interrupted)
    text = out.out + out.err
    assert "Interrupted: cancelled 1 job on fal (nothing is charged for it)" in text
    assert "Traceback" not in text and 'File "' not in text  # the live status lines, then that one line
    wait_for(lambda: session.record("@last").status == "cancelled")
    record_money("kernel interrupt during a blocking `%kontext`", sb, session)


@pytest.mark.parametrize(
    "cell",
    ['%kontext sweep "a {cat|fox} in snow" --seed 1,2 --yes', "%%kontext --seed 4\na red fox\n---\na grey owl"],
    ids=["sweep", "cell-batch"],
)
def test_an_interrupt_stops_a_whole_run(shell: Shell, sb: Any, capsys: pytest.CaptureFixture[str], cell: str) -> None:
    """Ctrl-C during a sweep or a batch cancels every job of it still running, not just the one being waited on."""
    sb.configure(inference_time=SLOW)
    session = kx.get_session()
    interrupt_once_running(sb)
    capsys.readouterr()
    result = shell.ip.run_cell(cell)
    out = capsys.readouterr()
    assert isinstance(result.error_in_exec, Interrupted)
    text = out.out + out.err
    assert "Traceback" not in text and 'File "' not in text
    wait_for(lambda: not session.active_jobs(), timeout=30)
    assert sb.stats()["completed"] == 0 and {row.status for row in session.tracker.journal.search()} == {"cancelled"}


def test_collecting_an_earlier_kernels_job_does_not_spend_this_sessions_cap(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    """A job another kernel made and this one only collects (resume, %load_ext, a join whose kernel died) was that
    kernel's spending: it counts today, not against this session's budget_session, which would refuse a new run."""
    from kontext_nb.errors import JobTimeout

    sb.configure(inference_time=0.5)
    earlier = make_session(job_timeout=0.1)
    left = earlier.generate("a fox left on fal", seed=1, wait=False)
    assert isinstance(left, Job)
    with pytest.raises(JobTimeout):
        left.result(10)
    now = make_session(budget_session=0.10)
    collected = now.generate("a fox left on fal", seed=1)  # the same request: joins the job nobody collects
    assert collected.journal_id == left.journal_id and now.record(left.journal_id).status == "done"
    assert sb.stats()["submits"] == 1
    assert now.budget()["session"] == 0 and now.budget()["today"] == pytest.approx(PRICE)
    made = now.generate("a fox of this session", seed=2)  # $0.08 within the $0.10 cap: the collected job is not ours
    assert made.images and now.budget()["session"] == pytest.approx(PRICE)
    record_money("a new session collects a job an earlier kernel left, under a $0.10 session cap", sb, now)


# -- 5. the spend ledger (issue 20): housekeeping, runs folders and time zones never reset a cap ---------------------
HOUSEKEEPING = {"delete": "delete('@last')", "prune": "prune(older_than_days=0)"}


@pytest.mark.parametrize("housekeeping", ["delete", "prune"])
def test_housekeeping_never_resets_the_daily_cap(
    make_session: MakeSession, sb: Any, housekeeping: str, journal_url: str | None
) -> None:
    """Issue 20, point 1: deleting or pruning jobs removes their rows and files, never their money."""
    s = make_session(budget_daily=0.16)
    for i in range(2):
        s.generate(f"a fox {i}")
    if housekeeping == "delete":
        s.delete("@last")
    else:
        assert s.prune(older_than_days=0) == 2
    with pytest.raises(BudgetError, match=r"cap is \$0.16 and \$0.16 is spent"):
        s.generate("a third fox")
    assert sb.stats()["submits"] == 2 and s.budget()["today"] == pytest.approx(2 * PRICE)
    record_money(
        f"`budget_daily=0.16`, 2 images, then `kx.{HOUSEKEEPING[housekeeping]}`"
        f" and a 3rd (`test_housekeeping_never_resets_the_daily_cap[{housekeeping}]`)",
        sb,
        s,
        budget=f"today ${s.budget()['today']:.2f} of $0.16",
    )


def test_deleting_a_running_job_keeps_its_money(make_session: MakeSession, sb: Any, journal_url: str | None) -> None:
    """Issue 20, point 1: a job deleted while it runs still holds its price, and its settlement lands in the ledger."""
    sb.configure(inference_time=1.0)
    s = make_session(budget_daily=0.16)
    job = s.generate("a fox deleted in flight", wait=False)
    assert isinstance(job, Job)
    s.delete("@last")
    assert s.budget()["today_reserved"] == pytest.approx(PRICE)
    assert job.result(30).images
    assert s.budget()["today"] == pytest.approx(PRICE) and s.budget()["today_reserved"] == 0
    assert [e.kind for e in s.tracker.journal.ledger_entries(job.journal_id)] == ["reserve", "settle"]
    record_money(
        "a job deleted while it runs, then finished (`test_deleting_a_running_job_keeps_its_money`)",
        sb,
        s,
        budget=f"today ${s.budget()['today']:.2f}",
    )


def test_the_session_cap_spans_runs_folders(
    make_session: MakeSession, sb: Any, tmp_path: Path, journal_url: str | None
) -> None:
    """Issue 20, point 7: A -> B -> A under budget_session=0.16 sends two images, not three."""
    s = make_session(budget_session=0.16)
    for n, folder in enumerate(["A", "B"]):
        s.configure(s.settings.with_(runs_dir=str(tmp_path / folder)))
        s.generate(f"a fox in {folder}", seed=n)
    s.configure(s.settings.with_(runs_dir=str(tmp_path / "A")))
    with pytest.raises(BudgetError, match=r"this session's cap is \$0.16 and \$0.16 is spent"):
        s.generate("a third fox, back in A")
    assert sb.stats()["submits"] == 2 and s.budget()["session"] == pytest.approx(2 * PRICE)
    record_money(
        "`budget_session=0.16`, runs folder A → B → A, one image in each (`test_the_session_cap_spans_runs_folders`)",
        sb,
        s,
    )


def test_a_job_in_flight_across_a_folder_switch_is_not_taken_for_one_left_behind(
    make_session: MakeSession, sb: Any, tmp_path: Path, journal_url: str | None
) -> None:
    """The kernel keeps one id across runs folders (its session cap is its): back in A, a job it still runs there is
    its own in flight, not a job left behind to resume or to collect a second time."""
    sb.configure(inference_time=1.0)
    s = make_session()
    job = s.generate("a slow fox in A", seed=1, wait=False)
    assert isinstance(job, Job)
    wait_for(lambda: job.request_id)
    s.configure(s.settings.with_(runs_dir=str(tmp_path / "B")))
    s.configure(s.settings.with_(runs_dir=str(tmp_path / "runs")))
    assert s.tracker.resumable() == [] and s.resume() == []
    again = s.generate("a slow fox in A", seed=1)  # joins the job in flight: no second send, no second collector
    assert again.images == job.result(30).images and sb.stats()["submits"] == 1


def test_a_join_after_a_folder_switch_gets_that_folders_job(make_session: MakeSession, sb: Any, tmp_path: Path) -> None:
    """Job @1 of runs folder A and job @1 of B, both in flight in one kernel: the same request again in A joins A's."""
    sb.configure(inference_time=1.0)
    s = make_session()
    in_a = s.generate("an owl in A", seed=1, wait=False)
    s.configure(s.settings.with_(runs_dir=str(tmp_path / "B")))
    in_b = s.generate("a hare in B", seed=2, wait=False)
    assert isinstance(in_a, Job) and isinstance(in_b, Job) and in_a.journal_id == in_b.journal_id == 1
    s.configure(s.settings.with_(runs_dir=str(tmp_path / "runs")))
    again = s.generate("an owl in A", seed=1)
    assert again.prompt == "an owl in A" and again.images == in_a.result(30).images
    assert sb.stats()["submits"] == 2


@pytest.mark.parametrize("how", ["%config", "pyproject"])
def test_the_session_cap_spans_runs_folders_in_the_magics(
    shell: Shell, sb: Any, tmp_path: Path, how: str, journal_url: str | None
) -> None:
    """Issue 20, point 7: `%config Kontext.runs_dir` and a pyproject's runs_dir change folders, never the cap."""
    kx.configure(budget_session=0.16)
    shell.line('"a fox in the first folder" --seed 1')
    if how == "%config":
        shell.run(f"%config Kontext.runs_dir = {str(tmp_path / 'B')!r}")
    else:
        other = tmp_path / "other-notebooks"
        other.mkdir()
        (other / "pyproject.toml").write_text(f'[tool.kontext_nb]\nruns_dir = "{tmp_path / "B"}"\n')
        os.chdir(other)  # the shell fixture's monkeypatch.chdir takes it back
        shell.run("%reload_ext kontext_nb")
    assert kx.get_session().runs_folder == tmp_path / "B"
    shell.line('"a fox in the second folder" --seed 2')
    message = shell.usage_error('"a third fox" --seed 3')
    assert "cap is $0.16" in message and "nothing was sent" in message
    assert sb.stats()["submits"] == 2
    record_money(
        f"`budget_session=0.16`, folder changed by {'`%config Kontext.runs_dir`' if how[0] == '%' else 'pyproject'}"
        f" between images (`test_the_session_cap_spans_runs_folders_in_the_magics[{how}]`)",
        sb,
        kx.get_session(),
    )


def _zone_whose_day_began_at(moment: int) -> str:
    """A POSIX TZ string whose local midnight is ``moment`` (a whole second since the epoch)."""
    offset = (86400 - moment % 86400) % 86400  # local = UTC + offset: 00:00:00 at moment
    if offset > 43200:
        offset -= 86400
    sign = "-" if offset >= 0 else "+"  # POSIX TZ offsets are west-positive
    h, rest = divmod(abs(offset), 3600)
    return f"XXX{sign}{h:02d}:{rest // 60:02d}:{rest % 60:02d}"


def test_two_time_zones_on_one_runs_folder_count_one_day(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch, journal_url: str | None
) -> None:
    """Issue 20, point 8: a kernel whose local day just began and one whose day did not share one daily cap."""
    west = make_session(budget_daily=0.16)
    west.generate("a fox in the west", seed=1)
    west.generate("another fox in the west", seed=2)
    midnight = math.ceil(max(r.created for r in west.tracker.journal.search()) + 0.001)
    wait_for(lambda: time.time() > midnight)  # in the east, the day began after the west's two jobs
    monkeypatch.setenv("TZ", _zone_whose_day_began_at(midnight))
    time.tzset()
    try:
        east = make_session(budget_daily=0.16)
        with pytest.raises(BudgetError, match=r"today's \(\d{4}-\d\d-\d\d, UTC\) cap is \$0.16"):
            east.generate("a fox in the east", seed=3)
        budget = east.budget()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert sb.stats()["submits"] == 2 and budget["timezone"] == "UTC" and budget["today"] == pytest.approx(0.16)
    record_money(
        "two kernels on one runs folder, one whose local day began a second ago, `budget_daily=0.16` "
        "(`test_two_time_zones_on_one_runs_folder_count_one_day`)",
        sb,
        east,
        budget=f"today ({budget['timezone']}) ${budget['today']:.2f}",
    )


# -- 6. reservations are upper bounds (issue 20, point 4) ------------------------------------------------------------
DEV_PRICE = 0.025  # [dev], per megapixel


def stored_url(sb: Any, width: int, height: int) -> str:
    """An image of this size in the sandbox's storage (fal's upload protocol): a URL source fal fetches itself."""
    import httpx
    from PIL import Image

    buffer = __import__("io").BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(buffer, "PNG")
    with httpx.Client(timeout=30) as http:
        token = http.post(
            f"{sb.url}/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={},
            headers={"Authorization": "Key test-key-0123456789abcdef"},
        ).json()  # fmt: skip
        answer = http.post(
            token["base_url"].rstrip("/") + "/files/upload",
            content=buffer.getvalue(),
            headers={
                "Authorization": f"Bearer {token['token']}",
                "Content-Type": "image/png",
                "X-Fal-File-Name": "big.png",
            },
        )
    return str(answer.json()["access_url"])


def test_a_url_source_reserves_its_real_size(make_session: MakeSession, sb: Any, journal_url: str | None) -> None:
    """Issue 20, point 4: a [dev] edit of a 4096x4096 URL (match_input) is 16 MP, $0.40: a $0.20 cap refuses it."""
    url = stored_url(sb, 4096, 4096)
    s = make_session(budget_session=0.20)
    with pytest.raises(BudgetError, match=r"would cost \$0.40, but this session's cap is \$0.20"):
        s.edit(url, "make it night", model="dev", seed=1)
    assert sb.stats()["submits"] == 0
    record_money(
        "a [dev] edit of a 4096×4096 URL under a $0.20 session cap (`test_a_url_source_reserves_its_real_size`)",
        sb,
        s,
        billed="$0.00",
    )


def test_a_url_source_is_settled_within_its_reservation(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    """Issue 20, point 4: what is reserved for a URL source is what fal bills for it; num_images multiplies, and
    confirm_above applies to the reservation."""
    sb.configure(image_scale=1.0)  # the sandbox makes what fal makes: the source's own 4096x4096
    url = stored_url(sb, 4096, 4096)
    s = make_session(budget_session=2.00)
    with pytest.raises(ConfirmationRequired, match=r"\$1.60, more than \$1.00"):
        s.edit(url, "make it night", model="dev", seed=1, num_images=4)
    result = s.edit(url, "make it night", model="dev", seed=1)
    assert result.cost == pytest.approx(16 * DEV_PRICE) and result.images[0].size == (4096, 4096)
    kinds = [(e.kind, e.amount) for e in s.tracker.journal.ledger_entries(result.journal_id)]
    assert kinds == [("reserve", pytest.approx(0.40)), ("settle", pytest.approx(0.40))]
    assert s.budget()["session"] == pytest.approx(0.40) and s.budget()["overruns"] == []
    assert sb.stats()["submits"] == 1
    record_money(
        "a [dev] edit of a 4096×4096 URL, then with `num_images=4`"
        " (`test_a_url_source_is_settled_within_its_reservation`)",
        sb,
        s,
        billed="$0.40 (16 MP of [dev])",
    )


def test_an_unreadable_url_source_reserves_the_largest(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    """A URL whose header cannot be read is priced as fal's largest input, 14142 px a side (191 MP)."""
    s = make_session()
    request, _ = s.prepare_edit(f"{sb.url}/files/nothing-here/x.png", "make it night", model="dev")
    assert request.input_size is None and request.cost == pytest.approx(191 * DEV_PRICE)
    request, _ = s.prepare_edit(stored_url(sb, 1000, 500), "make it night", model="lora", num_images=2)
    assert request.input_size == (1000, 500) and request.cost == pytest.approx(2 * 0.035)


def test_a_settlement_above_its_reservation_stops_sending_until_acknowledged(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    """A defect of the estimate (here: a server returning twice the size) is flagged, said in one line, and nothing
    more is sent until kx.budget(acknowledge=True)."""
    notices: list[str] = []
    s = make_session()
    s.notice = notices.append
    sb.configure(image_scale=2.0)  # a server that makes twice the size asked for
    over = s.generate("a fox", model="lora", image_size="square_hd", seed=1)  # reserved 1 MP, 2048x2048 is 4 MP
    assert over.cost == pytest.approx(4 * 0.035)
    (line,) = [n for n in notices if "more than was reserved" in n]
    assert f"@{over.journal_id}" in line and "kx.budget(acknowledge=True)" in line and "\n" not in line
    assert s.budget()["overruns"] == [f"@{over.journal_id}"]
    sb.configure(image_scale=1.0)
    with pytest.raises(BudgetError, match=r"cost more than was reserved.*kx.budget\(acknowledge=True\)"):
        s.generate("another fox", seed=2)
    assert sb.stats()["submits"] == 1
    assert s.budget(acknowledge=True)["overruns"] == []
    assert s.generate("another fox", seed=2).images and sb.stats()["submits"] == 2
    record_money(
        "a result larger than reserved, then 2 more sends, acknowledged between them "
        "(`test_a_settlement_above_its_reservation_stops_sending_until_acknowledged`)",
        sb,
        s,
        billed="$0.22 (4 MP + 1 image of [max])",
    )


# -- the table (last: pytest runs tests in file order) ---------------------------------------------------------
def test_write_the_money_table() -> None:
    """docs/reliability.md's money section, between its markers (the fault matrix keeps it when it rewrites)."""
    assert len(MONEY) >= 15, f"only {len(MONEY)} scenarios ran: run the whole file"
    rows = [
        "| scenario | sent to fal | billed by fal | the journal says | `kx.budget()` says |",
        "|---|---|---|---|---|",
    ]
    rows += [f"| {scenario} | " + " | ".join(cells) + " |" for scenario, cells in MONEY.items()]
    section = f"""{MONEY_START}
## Money: what was sent, what was billed, what kontext_nb says

Produced by `pytest tests/test_money.py` against the offline sandbox over HTTP (one image of [max] is $0.08;
"billed" counts the images the sandbox completed, as fal bills completed outputs, or says what else was made).
A job's price (an upper bound: a per-megapixel source's size is read from its header, a URL's with one bounded
range request, or the largest fal takes) is reserved in the journal's append-only spend ledger when it is
submitted and counts against the caps until it ends: cancelled and failed jobs release it, finished ones settle
their real cost, and a submit whose reply was lost is looked up in fal's request history: found, it is collected;
else it stays counted as `unconfirmed` until `kx.resume()` finds it, or proves (after `unconfirmed_after`) that it
never arrived and releases its price. Delete, prune and salvage never remove a ledger entry. Every kernel sharing
the runs folder sees the ledger; `budget_session` adds the kernel's entries in every runs folder it has used;
"today" is the folder's day (UTC unless `budget_timezone`). A seeded request identical to a job in flight in any
kernel joins that job instead of being sent. Rows naming a test are issue 20's cases. The rows are the SQLite
journal's; the same tests hold on PostgreSQL (`journal_url`), where one journal serves every runs folder.

{chr(10).join(rows)}
{MONEY_END}"""
    old = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if MONEY_START in old:
        before, _, rest = old.partition(MONEY_START)
        _, _, after = rest.partition(MONEY_END)
        text = before + section + after
    else:
        text = old.rstrip("\n") + "\n\n" + section + "\n"
    if text != old:
        DOC.write_text(text, encoding="utf-8")
    assert all(scenario in DOC.read_text(encoding="utf-8") for scenario in MONEY)
