"""Money and trust (issue 12): caps that hold for every kind of submit, nothing billed twice by accident, no paid
image dropped, the key never in a prompt. Every test runs against the real sandbox over HTTP, with a real journal.
"""

from __future__ import annotations

import _thread
import sqlite3
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kernels import HOLD, Kernel, release  # tests/kernels.py
from shell import Shell  # tests/shell.py
from waiting import wait_for

import kontext_nb as kx
from kontext_nb.config import RetryPolicy
from kontext_nb.errors import (
    BudgetError,
    DownloadFailed,
    ImageInputError,
    Interrupted,
    JournalError,
    SubmitUnconfirmed,
    ValidationError,
)
from kontext_nb.fal.transport import FalTransport
from kontext_nb.jobs import Job
from kontext_nb.journal import Journal
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
    scenario: str, sb: Any, session: Session | None, journal: str | None = None, budget: str | None = None
) -> None:
    """One row of the money table: what reached the sandbox (fal), what it would bill (completed images), what the
    journal and kx.budget() say. Read from the real sandbox and journal, never written by hand."""
    stats = sb.stats()
    wait_for(lambda: sb.stats()["in_queue"] + sb.stats()["in_progress"] == 0, timeout=30)
    stats = sb.stats()
    billed = f"${stats['completed'] * PRICE:.2f}"
    if journal is None and session is not None:
        rows = session.tracker.journal.search()
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        journal = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing written"
    if budget is None and session is not None:
        b = session.budget()
        budget = f"spent ${b['session']:.2f}, reserved ${b['session_reserved']:.2f}"
    MONEY[scenario] = (str(stats["submits"]), billed, journal or "nothing written", budget or "-")


# -- 1. a job's price is reserved at submit; a run that would cross a cap is refused whole -------------------------
def test_non_blocking_calls_reserve_their_price_until_they_end(make_session: MakeSession, sb: Any) -> None:
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


def test_ten_non_blocking_calls_stop_at_the_cap(make_session: MakeSession, sb: Any) -> None:
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


def test_a_sweep_over_the_cap_sends_nothing(shell: Shell, sb: Any) -> None:
    kx.configure(budget_session=0.20)
    message = shell.usage_error('sweep "a {cat|fox|owl} in snow" --seed 1,2,3 --yes')
    assert "$0.72" in message and "cap is $0.20" in message and "nothing was sent" in message
    assert sb.stats()["submits"] == 0 and kx.budget()["session_reserved"] == 0
    record_money("`%kontext sweep` of 9 images with `--yes` over a $0.20 cap", sb, kx.get_session())


def test_a_cell_batch_over_the_cap_sends_nothing(shell: Shell, sb: Any) -> None:
    kx.configure(budget_session=0.20)
    with pytest.raises(Exception, match=r"3 jobs \(3 images\) would cost \$0.24.*cap is \$0.20"):
        shell.cell("--seed 5", "a red fox\n---\na grey owl\n---\na white hare")
    assert sb.stats()["submits"] == 0
    record_money("`%%kontext` batch of 3 prompts over a $0.20 cap", sb, kx.get_session())


def test_a_panel_run_over_the_cap_sends_nothing(make_session: MakeSession, sb: Any) -> None:
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


CONCURRENT_KERNEL = """
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


def test_four_kernels_on_one_runs_folder_never_pass_the_daily_cap(sb: Any, tmp_path: Path) -> None:
    """Each of 4 processes tries 4 jobs ($1.28 in all) under a shared $0.40 daily cap: exactly 5 are sent."""
    sb.configure(inference_time=0.3)
    runs = tmp_path / "shared-runs"
    kernels = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_KERNEL, sb.url, str(runs), str(n)],
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
    journal = Journal(runs)
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
def test_an_identical_request_in_flight_joins_it(session: Session, sb: Any) -> None:
    sb.configure(inference_time=0.5)
    first = session.generate("one lighthouse", seed=8, wait=False)
    again = session.generate("one lighthouse", seed=8, wait=False)
    assert isinstance(first, Job) and isinstance(again, Job)
    assert again.result(30).images == first.result(30).images
    assert sb.stats()["submits"] == 1 and session.budget()["session"] == pytest.approx(0.08)
    record_money("the same seeded call twice while the first runs", sb, session)


def test_the_same_seeded_call_from_another_kernel_joins_it(sb: Any, tmp_path: Path) -> None:
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
    journal = Journal(runs)
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


def test_a_double_click_on_generate_sends_once(session: Session, sb: Any) -> None:
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


# -- 4. a submit that may have reached fal is never sent again -----------------------------------------------------
def test_a_lost_submit_reply_is_not_resent_and_is_counted(session: Session, sb: Any) -> None:
    sb.set_faults([{"route": "submit", "kind": "lost-reply", "count": 1}])
    with pytest.raises(SubmitUnconfirmed, match=r"fal may have accepted it; it may cost \$0.08") as info:
        session.generate("accepted in silence", seed=4)
    assert "\n" not in str(info.value)
    assert sb.stats()["submits"] == 1, "fal queued it once and was not asked again"
    row = session.record("@last")
    assert row.status == "unconfirmed" and row.cost == pytest.approx(0.08) and row.reserved == 0
    assert session.budget()["session"] == pytest.approx(0.08)
    record_money("submit accepted by fal, reply lost (`lost-reply` fault)", sb, session)


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
def test_a_failed_download_stays_collectable(session: Session, sb: Any, kind: str) -> None:
    sb.set_faults([{"route": "media", "kind": kind, "count": 1}])
    with pytest.raises(DownloadFailed, match=r"kx\.resume"):
        session.generate("paid for", seed=21)
    row = session.record("@last")
    assert row.status == "submitted" and row.request_id and row.reserved == pytest.approx(0.08)
    (collected,) = session.resume()
    assert collected.images and session.record("@last").status == "done"
    assert sb.stats()["submits"] == 1
    record_money(f"first image download fails (`{kind}`), then `kx.resume()`", sb, session)


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
    s = make_session(budget_daily=100.0)  # checking the cap reads every row of today
    with pytest.raises(
        JournalError, match=r"is damaged \(database disk image is malformed\): \d+ readable jobs"
    ) as info:
        s.generate("after the damage")
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    assert sb.stats()["submits"] == 0
    (aside,) = [p for p in runs.glob("journal.sqlite3.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert aside.name in str(info.value) and aside.stat().st_size > 0
    kept = s.tracker.journal.count()
    assert 200 < kept < 300 and s.record(1).prompt.startswith("job 0 ")
    assert s.generate("after the damage").images and s.tracker.journal.count() == kept + 1
    record_money("a damaged journal page, then two `generate` calls", sb, s, f"{kept} of 300 rows kept, 1 done")


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


# -- 9. an interrupt says one line --------------------------------------------------------------------------------
def test_an_interrupt_is_one_line(shell: Shell, sb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    sb.configure(inference_time=5.0)
    session = kx.get_session()

    def interrupt_when_running() -> None:
        wait_for(lambda: any(j.state == "running" for j in session.active_jobs()), timeout=30)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_running, daemon=True).start()
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
    sb.configure(inference_time=5.0)
    session = kx.get_session()

    def interrupt_when_running() -> None:
        wait_for(lambda: any(j.state == "running" for j in session.active_jobs()), timeout=30)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    capsys.readouterr()
    result = shell.ip.run_cell(cell)
    out = capsys.readouterr()
    assert isinstance(result.error_in_exec, Interrupted)
    text = out.out + out.err
    assert "Traceback" not in text and 'File "' not in text
    wait_for(lambda: not session.active_jobs(), timeout=30)
    assert sb.stats()["completed"] == 0 and {row.status for row in session.tracker.journal.search()} == {"cancelled"}


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
"billed" counts the images the sandbox completed, as fal bills completed outputs). A job's price is reserved
in the journal when it is submitted and counts against the caps until it ends: cancelled and failed jobs give it
back, finished ones turn it into their real cost, and a submit whose reply was lost stays counted as
`unconfirmed`. Reservations live in the runs folder's journal, so every kernel sharing it sees them, and a seeded
request identical to a job in flight in any of them joins that job instead of being sent.

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
