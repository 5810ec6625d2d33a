"""Crash safety: a process killed with jobs in flight; a new session collects them all, submitting none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import kontext_nb.sandbox as sandbox
from kontext_nb.config import Settings
from kontext_nb.errors import JobTimeout
from kontext_nb.session import Session

WORKER = textwrap.dedent(
    """
    import sys, time
    from kontext_nb.config import Settings
    from kontext_nb.session import Session

    url, runs = sys.argv[1], sys.argv[2]
    session = Session(Settings(base_url=url, key="resume-test", runs_dir=runs), notice=lambda m: None)
    jobs = [session.generate(f"in flight {i}", seed=i, wait=False) for i in range(4)]
    journal = session.tracker.journal
    while not all(j.request_id for j in jobs) or any(journal.get(j.journal_id).status != "submitted" for j in jobs):
        time.sleep(0.01)
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_sigkill_with_four_jobs_in_flight_then_resume(sb: sandbox.SandboxServer, tmp_path: Path) -> None:
    sb.configure(workers=4, inference_time=1.5)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, sb.url, str(runs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert sb.stats()["submits"] == 4

    notices: list[str] = []
    session = Session(Settings(base_url=sb.url, key="resume-test", runs_dir=str(runs)), notice=notices.append)
    try:
        assert session.tracker.resumable() and any("4 jobs from an earlier run" in n for n in notices)
        results = session.resume()
        assert sorted(r.seed for r in results) == [0, 1, 2, 3]
        assert all(r.files and r.files[0].exists() for r in results)
        assert sb.stats()["submits"] == 4, "resume never submits again"
        assert {r.status for r in session.history()} == {"done"}
        assert session.resume() == [], "nothing left to collect"
    finally:
        session.close()


def test_a_timed_out_job_stays_collectable(make_session, sb: sandbox.SandboxServer) -> None:
    sb.configure(inference_time=1.0)
    impatient = make_session(job_timeout=0.2)
    job = impatient.generate("slow one", seed=1, wait=False)
    with pytest.raises(JobTimeout):
        job.result(timeout=10)
    row = impatient.record(job.journal_id)
    assert row.status == "submitted" and "not collected yet" in (row.error or "")
    impatient.configure(impatient.settings.with_(job_timeout=30))
    (collected,) = impatient.resume()
    assert collected.journal_id == job.journal_id and collected.images
    assert impatient.record(job.journal_id).status == "done"
    assert sb.stats()["submits"] == 1


def test_a_job_interrupted_before_submit_is_closed_not_resubmitted(make_session, sb: sandbox.SandboxServer) -> None:
    """Killed between sending and recording fal's answer: fal may have it. Never resent, never called 'nothing
    to collect': it is kept as unconfirmed, its price counted, and the user told where to look."""
    s = make_session()
    journal = s.tracker.journal
    orphan = journal.create(
        endpoint="fal-ai/flux-pro/kontext/max/text-to-image", arguments={"prompt": "x"}, session="gone:1:x",
        reserved=0.08,
    )  # fmt: skip
    assert journal.sending(orphan, "gone:1:x")  # its kernel had begun the submit when it was killed
    assert [r.id for r in s.tracker.resumable()] == [orphan]
    assert s.resume() == []
    row = journal.get(orphan)
    assert row.status == "unconfirmed" and "no request to collect" not in (row.error or "")
    assert "may have accepted" in (row.error or "") and "request history" in (row.error or "")
    assert row.cost == 0.08 and row.reserved == 0
    assert sb.stats()["submits"] == 0


def test_a_job_whose_kernel_died_before_sending_it_is_closed_as_never_sent(
    make_session, sb: sandbox.SandboxServer
) -> None:
    """Killed before it began the submit (waiting for a slot, uploading): provably nothing reached fal, so nothing
    is counted and the row says so (issue 20: only such a row may be taken over)."""
    s = make_session()
    journal = s.tracker.journal
    orphan = journal.create(
        endpoint="fal-ai/flux-pro/kontext/max/text-to-image", arguments={"prompt": "x"}, session="gone:1:x",
        reserved=0.08,
    )  # fmt: skip
    assert s.resume() == []
    row = journal.get(orphan)
    assert (row.status, row.error_type, row.cost, row.reserved) == ("failed", "never_sent", 0, 0)
    assert "nothing was sent" in (row.error or "") and journal.held() == (0.0, 0.0)
    assert sb.stats()["submits"] == 0


def test_a_failed_download_is_collected_later_by_resume(make_session, sb: sandbox.SandboxServer) -> None:
    s = make_session()
    sb.set_faults([{"route": "media", "kind": "500", "count": 100}])
    job = s.generate("paid for, not yet downloaded", seed=3, wait=False)
    with pytest.raises(Exception, match="HTTP 500"):
        job.result(timeout=20)
    row = s.record(job.journal_id)
    assert row.status == "submitted" and row.request_id == job.request_id, "kept for resume, not written off"
    sb.set_faults([])
    (collected,) = s.resume()
    assert collected.seed == 3 and collected.files[0].exists() and collected.cost == pytest.approx(0.08)
    assert sb.stats()["submits"] == 1


def test_two_sessions_resuming_one_runs_folder_collect_each_job_once(
    make_session, sb: sandbox.SandboxServer, journal_url: str | None
) -> None:
    """Two sessions (kernels) find the same job left behind by a dead one: one collects it, the other leaves it.
    Both collecting would download it twice, and the one that failed could write over the other's finished row."""
    first, second = make_session(), make_session()
    done = first.generate("left behind", seed=8)
    journal = first.tracker.journal
    journal._update(done.journal_id, status="submitted", session="gone:1:x", files="[]", cost=0.0, reserved=0.08)
    assert [r.id for r in second.tracker.resumable()] == [done.journal_id]
    (job,) = first.resume(wait=False)
    assert second.resume(wait=False) == [], "claimed by the first session while it collects"
    assert job.result(timeout=20).files and journal.get(done.journal_id).status == "done"
    assert second.resume() == [] and sb.stats()["requests"]["result"] == 2  # generate's, and one resume


def test_an_interrupt_while_resuming_cancels_nothing(make_session, sb: sandbox.SandboxServer) -> None:
    """Jobs made earlier are paid for (or about to be): Ctrl-C during kx.resume() stops waiting, never cancels them.

    Deterministic under load: the job is held on the sandbox until released (a 3 s job could finish before resume()
    waited on it, and resume() then returned without a Ctrl-C to catch), and the Ctrl-C is a real SIGINT to the main
    thread (what a kernel interrupt sends), sent once it waits in Job.result: it wakes that wait at once."""
    import signal
    import threading

    from kernels import HOLD, release  # tests/kernels.py
    from waiting import main_thread_in, wait_for

    from kontext_nb.errors import Interrupted

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "a Ctrl-C would not reach Python"
    sb.configure(queue_delay=HOLD)
    impatient = make_session(job_timeout=0.2)
    job = impatient.generate("slow one", seed=1, wait=False)
    with pytest.raises(JobTimeout):
        job.result(timeout=10)
    impatient.configure(impatient.settings.with_(job_timeout=60))  # the bound if the Ctrl-C never came
    stop, sent = threading.Event(), threading.Event()

    def interrupt_when_collecting() -> None:  # Ctrl-C while resume() waits on the job it collects (not mid-claim)
        wait_for(lambda: stop.is_set() or main_thread_in("result", "jobs.py"), timeout=50)
        if not stop.is_set():
            sent.set()
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    pressing = threading.Thread(target=interrupt_when_collecting, daemon=True)
    pressing.start()
    try:
        with pytest.raises(
            Interrupted, match=r"stopped waiting; 1 job still being collected .*nothing cancelled"
        ) as info:
            impatient.resume()
    finally:
        stop.set()  # never a Ctrl-C into a later test
        pressing.join(timeout=60)
    assert sent.is_set() and "\n" not in str(info.value)
    release(sb)
    wait_for(lambda: impatient.record(job.journal_id).status == "done", timeout=30)
    assert sb.stats()["submits"] == 1 and sb.stats()["completed"] == 1 and sb.stats()["cancelled"] == 0
