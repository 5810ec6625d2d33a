"""Issue 20's eight money cases, each a short scripted sequence through public calls only (``kx.*``, ``%kontext``
in an IPython shell, kernels as real processes) against the real sandbox and its bill log.

They repeat the other engineers' tests on purpose, black-box, so they keep holding after any refactor: the
question is only ever what the sandbox billed against the caps, what the journal says, and where the key went.

Every case runs on both journals (``journal_url``: SQLite in the runs folder, then PostgreSQL; issue 24), except
case 5, a salvage of a damaged SQLite file: SQLite's own by nature (a PostgreSQL journal has no file to damage).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from canary import new_canary  # tests/canary.py
from kernels import HOLD, release  # tests/kernels.py
from money_checks import (
    billed,
    database_rows,
    findable,
    key_nowhere,
    settled_bills,
    spent_at_least_billed,
    within_caps,
)
from money_worker import Worker
from PIL import Image
from shell import Shell  # tests/shell.py
from waiting import wait_for

import kontext_nb as kx
from kontext_nb.journal import Journal
from kontext_nb.session import Session

MakeSession = Callable[..., Session]
T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
KEY = "test-key-0123456789abcdef"


def tries(call: Callable[[int], Any], n: int) -> list[str]:
    """Make ``n`` calls; what each did ('sent' or the error's name). The caps decide, not the test."""
    outcomes = []
    for i in range(n):
        try:
            call(i)
            outcomes.append("sent")
        except kx.KontextError as exc:
            outcomes.append(type(exc).__name__)
    return outcomes


# -- 1. housekeeping never resets the caps --------------------------------------------------------------------------
@pytest.mark.parametrize("housekeeping", ["delete @last", "prune older_than_days=0"])
def test_1_delete_and_prune_keep_todays_spend(
    make_session: MakeSession, sb: Any, housekeeping: str, journal_url: str | None
) -> None:
    kx.set_session(make_session(budget_daily=0.16))
    kx.generate("a fox, first")
    kx.generate("a fox, second")
    if housekeeping.startswith("delete"):
        kx.delete("@last")
    else:
        kx.prune(older_than_days=0)
    after = tries(lambda i: kx.generate(f"a fox after {housekeeping}, {i}"), 2)
    within_caps(billed(sb), [0.16], f"after {housekeeping} ({after})")
    assert after == ["BudgetError", "BudgetError"]
    assert kx.budget()["today"] == pytest.approx(0.16), "housekeeping took money off today's spend"


def test_1_deleting_a_running_job_keeps_its_money(make_session: MakeSession, sb: Any, journal_url: str | None) -> None:
    kx.set_session(make_session())
    sb.configure(queue_delay=HOLD)
    job = kx.generate("a fox deleted while it runs", wait=False)
    assert isinstance(job, kx.Job)
    wait_for(lambda: job.request_id is not None, timeout=30)
    with contextlib.suppress(kx.KontextError):  # refusing to delete a running job is as good: its money stays
        kx.delete(job.journal_id)
    release(sb)
    with contextlib.suppress(kx.KontextError):  # however the job ends, its money is what is checked
        job.result(30)
    bills = settled_bills(sb)
    assert bills["total"] == pytest.approx(0.08)
    wait_for(lambda: kx.budget()["today_reserved"] == 0, timeout=30)
    spent_at_least_billed(kx.get_session(), bills["total"], "after deleting a running job")


# -- 2. a misspelt subcommand with arguments is not a paid prompt ---------------------------------------------------
MISSPELT = [
    "canel all",
    "Cancel all",
    "cancle all",
    "CANCEL ALL",
    "stauts all",
    "histroy fox",
    "hisotry --seed 42",
    "edti photo.jpg make it night",
    "swep 'a {cat|fox} in snow'",
    "sohw @1 big",
]


def test_2_misspelt_subcommands_with_arguments_send_nothing(shell: Shell, sb: Any, journal_url: str | None) -> None:
    sent = []
    for line in MISSPELT:
        try:
            shell.line(line)
            sent.append(line)
        except Exception as exc:  # a UsageError is the answer wanted; anything else must still send nothing
            assert "\n" not in str(exc), line
    assert sent == [], f"sent as prompts: {sent}"
    assert sb.stats()["submits"] == 0 and billed(sb) == 0


# -- 3. the key in no shape ------------------------------------------------------------------------------------------
@pytest.fixture
def canary_session(make_session: MakeSession, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    """A session whose fal key is a canary, its notices kept."""
    key, said = new_canary(), list[str]()
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    session = make_session(key=key)
    session.notice = said.append
    kx.set_session(session)
    yield key, said


@pytest.mark.parametrize("where", ["a LoRA URL's query", "a tag", "a nested LoRA dict", "a URL-encoded tag"])
def test_3_the_key_inside_a_request_is_refused(
    canary_session: tuple[str, list[str]], sb: Any, tmp_path: Path, where: str, journal_url: str | None
) -> None:
    key, said = canary_session
    lora = f"https://example.com/style.safetensors?key={key}"
    calls: dict[str, Callable[[], Any]] = {
        "a LoRA URL's query": lambda: kx.generate("a lighthouse", model="lora", loras=[lora]),
        "a tag": lambda: kx.generate("a lighthouse", tags=[key]),
        "a nested LoRA dict": lambda: kx.generate("a lighthouse", model="lora", loras=[{"path": lora, "scale": 1}]),
        "a URL-encoded tag": lambda: kx.generate("a lighthouse", tags=["k=" + key.replace("-", "%2D")]),
    }
    errors = []
    try:
        calls[where]()
    except kx.KontextError as exc:
        errors.append(str(exc))
    texts = errors + said
    history = kx.history()
    if len(history):
        texts.append(kx.report(history, tmp_path / "report.html").read_text())
    key_nowhere(
        [kx.get_session().runs_folder, tmp_path], texts + database_rows(journal_url), key, f"(the key in {where})"
    )
    assert sb.stats()["submits"] == 0, f"a request with the key in {where} was sent"


@pytest.mark.parametrize("tail", ["\r", " ", "\n"])
def test_3_a_key_with_surrounding_whitespace_works_and_never_shows(
    make_session: MakeSession,
    sb: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tail: str,
    journal_url: str | None,
) -> None:
    key, said = new_canary(), list[str]()
    monkeypatch.setenv("FAL_KEY", key + tail)
    session = make_session(key=None)
    session.notice = said.append
    kx.set_session(session)
    try:
        kx.generate("a lighthouse from a pasted key")
    except kx.KontextError as exc:
        said.append(str(exc))
    key_nowhere([session.runs_folder], said + database_rows(journal_url), key, f"(FAL_KEY ending in {tail!r})")
    bills = settled_bills(sb)
    assert bills["total"] == pytest.approx(0.08), f"FAL_KEY ending in {tail!r} was not stripped: {said}"
    assert kx.budget()["today"] == pytest.approx(bills["total"]), "spent differs from what was billed"


def test_3_a_key_with_an_inner_control_character_is_refused_without_repeating_it(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch, journal_url: str | None
) -> None:
    key = new_canary()
    monkeypatch.setenv("FAL_KEY", key[:14] + "\x01" + key[14:])
    said: list[str] = []
    refusal = None
    try:  # refused at load or at the first call, either is fine: in one line, before anything is sent
        session = make_session(key=None)
        session.notice = said.append
        kx.set_session(session)
        kx.generate("a lighthouse from a broken key")
    except Exception as exc:  # whichever error it is, its text is what is checked
        refusal = str(exc)
    assert refusal is not None, "a key with a control character inside was used"
    assert "\n" not in refusal
    texts = [refusal, *said, *database_rows(journal_url)]
    key_nowhere([kx.get_session().runs_folder], texts, key, "(a key with a control character)")
    assert sb.stats()["submits"] == 0
    assert kx.budget()["today"] == 0 and kx.budget()["today_reserved"] == 0, "nothing left: nothing is spent"


# -- 4. per-megapixel reservations are upper bounds -------------------------------------------------------------------
def _upload(sb: Any, image: Image.Image) -> str:
    """Put an image into the sandbox's storage (fal's upload protocol): a URL only the sandbox can read."""
    data = io.BytesIO()
    image.save(data, "PNG")
    with httpx.Client(base_url=sb.url, headers={"Authorization": f"Key {KEY}"}, trust_env=False, timeout=30) as http:
        slot = http.post("/storage/upload/initiate", json={"file_name": "big.png", "content_type": "image/png"})
        http.put(slot.json()["upload_url"], content=data.getvalue(), headers={"content-type": "image/png"})
    return str(slot.json()["file_url"])


def test_4_a_large_url_source_never_bills_above_the_caps(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    """3000x3000 (9 billed MP, $0.225 of [dev]) given as a URL, under a $0.20 session cap: priced as 2048x2048
    ($0.10) it went out and $0.225 was billed."""
    sb.configure(image_scale=1.0)
    url = _upload(sb, Image.new("RGB", (3000, 3000), (40, 90, 160)))
    kx.set_session(make_session(budget_session=0.20))
    tries(lambda i: kx.edit(url, "make it night", model="dev", seed=1), 1)
    bills = settled_bills(sb)
    within_caps(bills["total"], [0.20], "for a [dev] edit of a 3000x3000 URL")
    spent_at_least_billed(kx.get_session(), bills["total"])


def test_4_num_images_multiplies_and_confirm_above_sees_the_bound(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    sb.configure(image_scale=1.0)
    url = _upload(sb, Image.new("RGB", (3000, 3000), (40, 90, 160)))
    kx.set_session(make_session(confirm_above=0.50))
    outcome = tries(lambda i: kx.edit(url, "make it night", model="dev", seed=2, num_images=4), 1)
    bills = settled_bills(sb)
    assert outcome == ["ConfirmationRequired"], f"4 images of 9 MP ($0.90) went out unconfirmed: ${bills['total']}"
    assert bills["total"] == 0


# -- 5. a salvage never splits live kernels ---------------------------------------------------------------------------
def _damaged_journal(runs: Path) -> None:
    """A journal of 300 old, free rows with one page of them overwritten (a full scan fails, the header reads)."""
    from test_money import damage_a_page  # the one way the suite damages a journal

    journal = Journal(runs)
    for i in range(300):
        job = journal.create(endpoint=T2I, arguments={"prompt": f"old job {i} " + "words " * 80}, session="gone:1:x")
        journal.finished(job, status="failed", cost=0.0, num_images=0)
    journal.close()
    damage_a_page(runs / "journal.sqlite3")


def test_5_a_salvage_while_another_kernel_lives_keeps_the_cap_and_every_job(
    make_session: MakeSession, sb: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    _damaged_journal(runs)
    a = Worker(sb.url, runs, key=KEY, budget_daily=0.24)
    b = Worker(sb.url, runs, key=KEY, budget_daily=0.24)
    try:
        assert "ok" in b.kx("lineage", "@last")  # B has the journal open, and has not met the damage
        turns = []
        for i in range(4):
            turns.append(a.kx("generate", f"kernel A, job {i}"))
            turns.append(b.kx("generate", f"kernel B, job {i}"))
    finally:
        a.close()
        b.close()
    bills = settled_bills(sb)
    sent = [t.get("error", "sent") for t in turns]
    within_caps(bills["total"], [0.24], f"with two kernels across a salvage (A, B in turn: {sent})")
    checker = make_session()
    with contextlib.suppress(kx.KontextError):  # the first to read the damaged pages salvages them: "try again"
        checker.history()
    spent_at_least_billed(checker, bills["total"], "in the live journal after the salvage")
    findable(checker, bills, what="(the live journal after a salvage)")


# -- 6. joining never sends twice -------------------------------------------------------------------------------------
def test_6_a_joiner_whose_owner_lost_its_submit_reply_sends_nothing(
    sb: Any, tmp_path: Path, journal_url: str | None
) -> None:
    runs = tmp_path / "runs"
    sb.configure(slow_seconds=3.0)  # time enough for B to join while A is still sending
    a = Worker(sb.url, runs, key=KEY, journal_url=journal_url)
    b = Worker(sb.url, runs, key=KEY, journal_url=journal_url)
    try:
        sb.set_faults([{"route": "submit", "kind": "slow-lost-reply", "count": 1}])
        owner = a.kx("generate", "one seeded lighthouse", seed=77, wait=False)
        assert "ok" in owner, owner
        wait_for(lambda: sb.stats()["requests"].get("submit", 0) >= 1, timeout=30, interval=0.01)
        joiner = b.kx("generate", "one seeded lighthouse", seed=77, wait=False)
        if "ok" in joiner and isinstance(joiner["ok"], dict) and "job" in joiner["ok"]:
            b.order("wait", handle=joiner["ok"]["job"], timeout=60)
        a.order("wait", handle=owner["ok"]["job"], timeout=60)
    finally:
        a.close()
        b.close()
    bills = settled_bills(sb)
    assert sb.stats()["submits"] == 1, f"sent {sb.stats()['submits']} times: {b.output[-5:]}"
    assert bills["total"] == pytest.approx(0.08)


# -- 7. a session cap belongs to the kernel, whatever runs folder it writes to --------------------------------------
def test_7_switching_runs_folders_keeps_the_session_cap(
    make_session: MakeSession, sb: Any, tmp_path: Path, journal_url: str | None
) -> None:
    kx.set_session(make_session(budget_session=0.16))
    sent = []
    for folder in ("A", "B", "A"):
        kx.configure(runs_dir=str(tmp_path / folder))
        sent += tries(lambda i, f=folder: kx.generate(f"a fox in folder {f}, {i}"), 2)
    assert sent.count("sent") == 2, sent
    within_caps(billed(sb), [0.16], "across runs folders A -> B -> A")


def test_7_the_magics_runs_dir_setting_keeps_the_session_cap(
    shell: Shell, sb: Any, tmp_path: Path, journal_url: str | None
) -> None:
    kx.configure(budget_session=0.16)
    for folder in ("A", "B", "A"):
        shell.run(f"%config Kontext.runs_dir = {str(tmp_path / folder)!r}")
        for i in range(2):
            with contextlib.suppress(Exception):  # refused over the cap: what is wanted
                shell.line(f"a fox in folder {folder}, {i}")
    within_caps(billed(sb), [0.16], "across %config Kontext.runs_dir changes")


# -- 8. "today" is one day for the whole runs folder -------------------------------------------------------------------
def _zone_whose_midnight_was(at: float) -> str:
    """A POSIX TZ whose local midnight is at Unix time ``at`` (rounded to the second): a kernel far away."""
    east = (-int(at)) % 86400  # local = UTC + east seconds, 0 <= east < 24 h
    hours, rest = divmod(east, 3600)
    return f"KXZ-{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def test_8_kernels_in_two_time_zones_share_one_daily_cap(sb: Any, tmp_path: Path, journal_url: str | None) -> None:
    now = time.time()
    if now % 86400 > 86400 - 120:  # the UTC day ends within two minutes: start on the next one
        time.sleep(86400 - now % 86400 + 1)
    runs = tmp_path / "runs"
    a = Worker(sb.url, runs, key=KEY, tz="UTC", budget_daily=0.16, journal_url=journal_url)
    try:
        first = [a.kx("generate", f"kernel A, job {i}") for i in range(2)]
        assert all("ok" in x for x in first), first
    finally:
        a.close()
    b = Worker(
        sb.url, runs, key=KEY, tz=_zone_whose_midnight_was(time.time()), budget_daily=0.16, journal_url=journal_url
    )
    try:
        second = [b.kx("generate", f"kernel B, job {i}") for i in range(2)]
        budget = b.kx("budget")["ok"]
    finally:
        b.close()
    within_caps(billed(sb), [0.16], f"with kernels in two time zones ({[x.get('error') for x in second]})")
    assert "UTC" in json.dumps(budget), f"kx.budget() does not say which day it counts: {budget}"


# -- the baseline ----------------------------------------------------------------------------------------------------
def test_the_bill_log_agrees_with_the_journal_for_a_plain_run(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    """The baseline the cases above depart from: one image, billed once, spent once, findable, on disk."""
    kx.set_session(make_session())
    kx.generate("a plain lighthouse", seed=3)
    bills = settled_bills(sb)
    assert bills["total"] == pytest.approx(0.08) and kx.budget()["today"] == pytest.approx(0.08)
    findable(kx.get_session(), bills)
    assert len(kx.history()) == 1


# -- counterexamples the state machine found (bench/money_soak.py, shrunk), kept as scripted cases -------------------
def test_found_a_large_url_edit_whose_download_fails_is_held_at_its_bill(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    """fail_downloads(); edit_a_large_url(): the job stays collectable holding $0.10 (2048x2048 guessed) while fal
    billed $0.125 (2112x2112, 5 megapixels of [dev])."""
    sb.configure(image_scale=1.0, queue_delay=30.0)  # held in fal's queue until the downloads are set to fail
    url = _upload(sb, Image.new("RGB", (2100, 2100), (60, 90, 150)))
    kx.set_session(make_session())
    job = kx.edit(url, "make it night", model="dev", seed=5, wait=False)  # the URL's size is read here
    sb.set_faults([{"route": "media", "kind": "500"}])
    sb.configure(queue_delay=0.0)
    assert isinstance(job, kx.Job)
    with contextlib.suppress(kx.KontextError):
        job.result(30)
    bills = settled_bills(sb)
    assert bills["total"] > 0
    spent_at_least_billed(kx.get_session(), bills["total"], "(a [dev] edit of a URL whose download failed)")


def test_found_a_lost_submit_reply_is_found_again_by_resume(
    make_session: MakeSession, sb: Any, journal_url: str | None
) -> None:
    """lose_the_next_submit_reply(); a submit: fal has the job (and bills it), the journal only an unconfirmed row
    without a request id; kx.resume() must find it (fal's request history) so the paid image is not lost."""
    kx.set_session(make_session())
    sb.set_faults([{"route": "submit", "kind": "lost-reply", "count": 1}])
    tries(lambda i: kx.generate("a fox whose submit reply is lost", seed=6), 1)
    sb.set_faults([])
    bills = settled_bills(sb)
    assert bills["count"] == 1
    spent_at_least_billed(kx.get_session(), bills["total"], "(an unconfirmed submit)")
    with contextlib.suppress(kx.KontextError):
        kx.resume()
    findable(kx.get_session(), settled_bills(sb), what="(a lost submit reply, after kx.resume())")
