"""The same intention billed once across kernels (issue 12, point 2): a seeded request identical to one in flight
in ANY kernel on the runs folder joins it, decided in the journal transaction that would reserve its price.

Every kernel here is a real separate Python process (tests/kernels.py) on one runs folder, talking to the real
sandbox over HTTP. The sandbox holds its queue (``queue_delay``) while the kernels line up, so "in flight" is a
fact the test arranges, not a race it hopes to win; nothing here asserts on time.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernels import HOLD, PROMPT, Kernel, Repl, all_ready, joiner_of, owner_with_a_queued_copy, release
from waiting import wait_for

from kontext_nb.config import JOURNAL_URL_ENV
from kontext_nb.errors import JobCancelled, TakenOver
from kontext_nb.jobs import Job
from kontext_nb.journal import Journal, following
from kontext_nb.journal.heartbeat import EVERY_ENV, LAPSE_ENV
from kontext_nb.request import build_request
from kontext_nb.sandbox import SandboxServer
from kontext_nb.session import Session

JOINED = "joined it"
OWN = "sending it itself"


@pytest.fixture
def kernels() -> Iterator[list[Kernel]]:
    started: list[Kernel] = []
    yield started
    for kernel in started:
        kernel.kill()


def updated_at(journal: Journal, journal_id: int) -> float:
    """When a row last changed (the journal keeps it; JobRecord does not show it)."""
    with sqlite3.connect(journal.path) as db:
        return float(db.execute("SELECT updated FROM jobs WHERE id = ?", (journal_id,)).fetchone()[0])


def shared(journal_url: str | None) -> dict[str, Any]:
    """A kernel's journal: its runs folder's (SQLite), or one PostgreSQL journal with a quick heartbeat lapse."""
    if journal_url is None:
        return {}
    return {"env": {JOURNAL_URL_ENV: journal_url, LAPSE_ENV: "4", EVERY_ENV: "0.2"}}


def files_of(journal: Journal, journal_id: int) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in journal.get(journal_id).paths]


# -- 1. two kernels, one seeded request, started together: one fal request ----------------------------------------
def test_two_kernels_sending_the_same_seeded_request_together_send_it_once(
    sb: SandboxServer, tmp_path: Path, kernels: list[Kernel], journal_url: str | None
) -> None:
    sb.configure(queue_delay=HOLD)
    runs, barrier = tmp_path / "runs", tmp_path / "barrier"
    barrier.mkdir()
    for name in ("a", "b"):
        kernels.append(Kernel(sb, runs, name=name, barrier=str(barrier), arguments={"seed": 42}, **shared(journal_url)))
    all_ready(kernels, barrier)
    (barrier / "go").touch()
    for kernel in kernels:
        kernel.await_line("STARTED")
    joiners = [k for k in kernels if any(JOINED in n for n in k.notices())]
    assert len(joiners) == 1, [k.lines for k in kernels]
    assert "in another kernel" in joiners[0].notices()[0] and len(joiners[0].notices()) == 1
    release(sb)
    outcomes = [k.finish() for k in kernels]
    assert outcomes[0][0] == "IMAGES" and outcomes[0] == outcomes[1]  # byte-identical images
    assert sb.stats()["submits"] == 1 and sb.stats()["completed"] == 1
    journal = Journal(runs, journal_url)
    try:
        assert journal.held() == (pytest.approx(0.08), 0.0)  # spent once, nothing left reserved
        (row,) = journal.search()  # the joiner wrote no row of its own: nothing reserved, nothing sent
        assert row.status == "done" and files_of(journal, row.id) == outcomes[0][1]
    finally:
        journal.close()
    owner, joiner = next(k for k in kernels if k is not joiners[0]).budget(), joiners[0].budget()
    assert (owner["session"], joiner["session"]) == (pytest.approx(0.08), 0.0)  # each kx.budget(): counted once
    assert owner["today"] == joiner["today"] == pytest.approx(0.08)


# -- 2. the owner kernel dies after fal accepted the job: the joiner collects it itself --------------------------
@pytest.mark.parametrize(
    "killed, backend",
    [("while the joiner waits", "sqlite"), ("before the joiner sends", "sqlite"), ("while the joiner waits", "pg")],
)
def test_a_joiner_whose_owner_kernel_is_killed_collects_the_job_itself(
    sb: SandboxServer, tmp_path: Path, kernels: list[Kernel], killed: str, backend: str, request: pytest.FixtureRequest
) -> None:
    """On PostgreSQL the joiner takes over once the owner's heartbeat has lapsed."""
    journal_url = str(request.getfixturevalue("pg_url")) if backend == "pg" else None
    sb.configure(queue_delay=HOLD)
    runs = tmp_path / "runs"
    owner = Kernel(sb, runs, name="owner", owner=True, arguments={"seed": 7}, **shared(journal_url))
    kernels.append(owner)
    owner.await_line("SUBMITTED")
    if killed == "before the joiner sends":
        os.kill(owner.process.pid, signal.SIGKILL)
        owner.process.wait(timeout=30)
    joiner = Kernel(sb, runs, name="joiner", arguments={"seed": 7}, **shared(journal_url))
    kernels.append(joiner)
    joiner.await_line("STARTED")
    if killed == "while the joiner waits":
        assert any(JOINED in n for n in joiner.notices()), joiner.lines
        os.kill(owner.process.pid, signal.SIGKILL)
        owner.process.wait(timeout=30)
    release(sb)
    word, hashes = joiner.finish()
    assert word == "IMAGES", hashes
    assert any("collecting it here" in n for n in joiner.notices()), joiner.lines
    assert sb.stats()["submits"] == 1 and sb.stats()["completed"] == 1
    journal = Journal(runs, journal_url)
    try:
        (row,) = journal.search()
        assert row.status == "done" and files_of(journal, row.id) == hashes
        assert journal.held() == (pytest.approx(0.08), 0.0)  # the owner's reservation became one real cost
        assert not journal.uncollected() and row.session is not None and str(joiner.process.pid) in row.session
    finally:
        journal.close()
    assert joiner.budget()["today"] == pytest.approx(0.08)


# -- 3. the job joined ends without images: the joiner sends its own -------------------------------------------
@pytest.mark.parametrize("ending", ["cancelled", "failed"])
def test_when_the_joined_job_ends_without_images_the_joiner_sends_its_own(
    sb: SandboxServer, tmp_path: Path, kernels: list[Kernel], ending: str
) -> None:
    """Cancelled by its owner: the joiner's own request brings the images. Failed on fal: the joiner's own request
    is its own outcome (here it fails the same way, and says so in one line); failed jobs are not billed."""
    sb.configure(queue_delay=HOLD)
    runs = tmp_path / "runs"
    prompt = PROMPT if ending == "cancelled" else f"{PROMPT} [sandbox:runner_server_error]"
    owner = Kernel(sb, runs, name="owner", owner=True, prompt=prompt, arguments={"seed": 3})
    kernels.append(owner)
    owner.await_line("SUBMITTED")
    joiner = Kernel(sb, runs, name="joiner", prompt=prompt, arguments={"seed": 3})
    kernels.append(joiner)
    joiner.await_line("STARTED")
    assert any(JOINED in n for n in joiner.notices()), joiner.lines
    if ending == "cancelled":
        owner.tell("cancel")
        assert owner.await_line("CANCELLED") == "CANCELLED True"
        wait_for(lambda: any(OWN in n for n in joiner.notices()), timeout=60)
    release(sb)
    word, outcome = joiner.finish()
    owner_word, owner_outcome = owner.finish()
    assert owner_word == "ERROR"
    resend = next(n for n in joiner.notices() if OWN in n)
    assert f"{ending} in the other kernel" in resend and "\n" not in resend
    assert sb.stats()["submits"] == 2
    journal = Journal(runs)
    try:
        first, second = sorted(journal.search(), key=lambda r: r.id)
        assert first.status == ending and second.created >= updated_at(journal, first.id)  # sent once it had ended
        if ending == "cancelled":
            assert word == "IMAGES" and files_of(journal, second.id) == outcome
            assert "JobCancelled" in owner_outcome
            assert journal.held() == (pytest.approx(0.08), 0.0)
        else:
            assert word == "ERROR" and outcome.startswith("JobFailed fal reports the job failed")
            assert second.status == "failed" and journal.held() == (0.0, 0.0)
    finally:
        journal.close()


# -- 4. what has no cache key is never joined ---------------------------------------------------------------------
@pytest.mark.parametrize("arguments", [{}, {"seed": 5, "cache": False}], ids=["unseeded", "cache-off"])
def test_requests_without_a_cache_key_from_two_kernels_both_send(
    sb: SandboxServer, tmp_path: Path, kernels: list[Kernel], arguments: dict[str, Any]
) -> None:
    sb.configure(queue_delay=HOLD)
    runs, barrier = tmp_path / "runs", tmp_path / "barrier"
    barrier.mkdir()
    for name in ("a", "b"):
        kernels.append(Kernel(sb, runs, name=name, barrier=str(barrier), arguments=arguments))
    all_ready(kernels, barrier)
    (barrier / "go").touch()
    for kernel in kernels:
        kernel.await_line("STARTED")
    release(sb)
    outcomes = [k.finish() for k in kernels]
    assert all(word == "IMAGES" for word, _ in outcomes)
    assert not any(k.notices() for k in kernels)
    assert sb.stats()["submits"] == 2
    journal = Journal(runs)
    try:
        assert journal.held() == (pytest.approx(0.16), 0.0)
    finally:
        journal.close()


# -- within one process: a batch holding one request twice, and an identical job still being submitted ------------
def test_one_batch_holding_the_same_seeded_request_twice_sends_it_once(session: Session, sb: SandboxServer) -> None:
    request = build_request("text-to-image", "twice in one batch", seed=11)
    first, second = session.submit_all([(request, None), (request, None)])
    assert first.result(30).image_bytes == second.result(30).image_bytes
    assert sb.stats()["submits"] == 1 and session.budget()["session"] == pytest.approx(0.08)


def test_a_joiner_waits_while_the_identical_job_is_being_submitted(
    make_session: Any, sb: SandboxServer, tmp_path: Path
) -> None:
    """The other kernel has written its row but has no request id yet (uploading, or waiting for a slot): the joiner
    waits; when that job fails before fal accepted it, the joiner sends its own."""
    other, joiner = make_session(), make_session()
    notices: list[str] = []
    joiner.notice = notices.append
    request = build_request("text-to-image", "a row without a request id", seed=12)
    (row_id,) = other.tracker.begin_all([(request.endpoint.id, request.arguments, None, request.cost)], tags=[])
    job = joiner.generate("a row without a request id", seed=12, wait=False)
    assert any(JOINED in n for n in notices) and sb.stats()["submits"] == 0
    other.tracker.journal.finished(row_id, status="failed", error="the upload failed")
    result = job.result(30)
    assert sb.stats()["submits"] == 1 and result.journal_id != row_id
    assert any(OWN in n and "failed in the other kernel" in n for n in notices), notices


def test_a_joiner_waits_without_deadline_while_the_other_kernel_is_alive(make_session: Any, sb: SandboxServer) -> None:
    """A kernel that stays alive and has not sent its job yet (its slots are busy) holds the joiner as long as it
    takes: the joiner never sends a second copy; it can stop waiting (cancel), which sends nothing either."""
    other, joiner = make_session(), make_session()
    notices: list[str] = []
    joiner.notice = notices.append
    request = build_request("text-to-image", "a row that waits for a slot", seed=13)
    other.tracker.begin_all([(request.endpoint.id, request.arguments, None, request.cost)], tags=[])
    job = joiner.generate("a row that waits for a slot", seed=13, wait=False)
    assert isinstance(job, Job) and any(JOINED in n for n in notices)
    with pytest.raises(TimeoutError):
        job.result(3 * following.POLL + 1.0)  # many looks at the row; the old code gave up after a fixed wait
    assert sb.stats()["submits"] == 0 and not job.done()
    assert job.cancel() and sb.stats()["submits"] == 0 and [n for n in notices if OWN in n] == []


def test_a_row_whose_kernel_died_before_fal_answered_is_never_joined(session: Session, sb: SandboxServer) -> None:
    """fal may or may not have accepted it, and nobody can collect it: the request is sent (kx.resume() reports
    that row as unconfirmed)."""
    request = build_request("text-to-image", "a row left mid-submit", seed=14)
    dead = f"{socket.gethostname()}:{2**22 + 12345}:gone"  # above Linux's largest pid: no such process
    journal = session.tracker.journal
    journal.create(
        endpoint=request.endpoint.id,
        arguments=request.arguments,
        session=dead,
        cache_key=session.tracker.cache_key(request.endpoint.id, request.arguments),
        reserved=request.cost,
    )
    notices: list[str] = []
    session.notice = notices.append
    result = session.generate("a row left mid-submit", seed=14)
    assert result.images and sb.stats()["submits"] == 1 and not notices


def test_cancelling_a_joined_job_stops_waiting_and_the_other_kernel_keeps_its_job(
    make_session: Any, sb: SandboxServer
) -> None:
    sb.configure(queue_delay=HOLD)
    owner, joiner = make_session(), make_session()  # two sessions: to each other, another kernel
    first = owner.generate("one job, two callers", seed=15, wait=False)
    assert isinstance(first, Job)
    wait_for(lambda: first.request_id)
    joined = joiner.generate("one job, two callers", seed=15, wait=False)
    assert isinstance(joined, Job) and joined.cancel()
    with pytest.raises(JobCancelled, match=r"stopped waiting for @1, which goes on in the other kernel"):
        joined.result(10)
    release(sb)
    assert first.result(30).images and sb.stats()["submits"] == 1


def test_closing_a_session_stops_following(make_session: Any, sb: SandboxServer) -> None:
    sb.configure(queue_delay=HOLD)
    owner, joiner = make_session(), make_session()
    first = owner.generate("followed until close", seed=16, wait=False)
    joined = joiner.generate("followed until close", seed=16, wait=False)
    assert isinstance(first, Job) and isinstance(joined, Job)
    joiner.close()
    with pytest.raises(JobCancelled, match="this session was closed while it waited"):
        joined.result(10)
    release(sb)
    assert first.result(30).images and sb.stats()["submits"] == 1


# -- issue 20, point 6: joins never double-send ------------------------------------------------------------------
# The owner kernel runs with concurrency=1 and first sends a job the sandbox holds: its seeded job then waits in
# that kernel for a slot, its row written but not sent, and a second kernel joins it there. Real processes, the
# real sandbox; what is counted is the sandbox's submits. The two cases of the issue are in test_money.py
# (section 2), which puts them in docs/reliability.md's money table.


@pytest.fixture
def repls() -> Iterator[list[Repl]]:
    started: list[Repl] = []
    yield started
    for repl in started:
        repl.kill()


def test_when_the_owner_dies_before_sending_one_joiner_claims_and_sends_it_once(
    sb: SandboxServer, tmp_path: Path, repls: list[Repl]
) -> None:
    """The owner is killed while its copy still waits for a slot (provably never sent): of two joiners, exactly one
    takes the row over (atomically, in the journal) and sends it; the other joins that one."""
    runs = tmp_path / "runs"
    owner, row = owner_with_a_queued_copy(sb, runs, repls, seed=23)
    first, second = joiner_of(sb, runs, repls, 23, "first"), joiner_of(sb, runs, repls, 23, "second")
    owner.kill()
    release(sb)
    outcomes = [first.run("outcome('x')"), second.run("outcome('x')")]
    assert outcomes[0][0] == "IMAGES" and outcomes[0] == outcomes[1]
    assert sb.stats()["submits"] == 2  # the slow job (the dead kernel's) and the seeded one, once
    senders = [r for r in (first, second) if any("was never sent" in n and OWN in n for n in r.notices())]
    assert len(senders) >= 1, [first.lines, second.lines]
    journal = Journal(runs)
    try:
        old, new = sorted(journal.search(search="seeded lighthouse"), key=lambda r: r.id)
        assert (old.id, old.status, old.error_type, old.cost, old.reserved) == (row, "failed", "never_sent", 0, 0)
        assert new.status == "done" and new.cost == pytest.approx(0.08)
    finally:
        journal.close()


def test_when_the_owner_dies_while_sending_the_joiner_is_unconfirmed_and_sends_nothing(
    sb: SandboxServer, tmp_path: Path, repls: list[Repl]
) -> None:
    """The owner's process ends the moment fal accepted its copy, before it could write the request id: fal has
    the job, nobody knows its id, so the joiner sends nothing and says it is unconfirmed."""
    runs = tmp_path / "runs"
    owner, row = owner_with_a_queued_copy(sb, runs, repls, seed=24)
    joiner = joiner_of(sb, runs, repls, seed=24)
    owner.run(DIES_AFTER_SUBMIT)
    release(sb)
    owner.process.wait(timeout=120)
    word, kind, message = joiner.run("outcome('x')")
    assert (word, kind) == ("ERROR", "SubmitUnconfirmed") and f"@{row}" in message
    assert "while it was being sent" in message and "nothing was sent here" in message
    assert sb.stats()["submits"] == 2  # the slow job and the seeded one, once
    assert not [n for n in joiner.notices() if OWN in n]


DIES_AFTER_SUBMIT = """
import os
from kontext_nb.fal.engine import Engine
submit = Engine._submit
async def submit_then_die(self, run, body):
    await submit(self, run, body)
    os._exit(9)
Engine._submit = submit_then_die
"""


def test_a_kernel_whose_unsent_job_was_taken_over_does_not_send_it(make_session: Any, sb: SandboxServer) -> None:
    """The claim is atomic against the owner too: a kernel judged gone (wrongly: another host, a stale heartbeat)
    whose job was taken over before it began sending finds that out in the journal and sends nothing."""
    sb.configure(queue_delay=HOLD)
    owner = make_session(concurrency=1)
    slow = owner.generate("a slow job first", wait=False)
    assert isinstance(slow, Job)
    wait_for(lambda: slow.request_id)
    queued = owner.generate("taken over before it was sent", seed=31, wait=False)
    assert isinstance(queued, Job) and queued.journal_id is not None
    journal = owner.tracker.journal
    taken = journal.claim_unsent(journal.get(queued.journal_id), "elsewhere:1:joiner")
    assert taken is not None and taken.session == "elsewhere:1:joiner"
    release(sb)
    with pytest.raises(TakenOver, match=r"took over @\d+ before it was sent .* nothing was sent here"):
        queued.result(30)
    assert slow.result(30).images and sb.stats()["submits"] == 1
    row = journal.get(queued.journal_id)  # the other kernel's row, as it left it: this kernel wrote nothing
    assert (row.status, row.session, row.unsent) == ("pending", "elsewhere:1:joiner", True)
