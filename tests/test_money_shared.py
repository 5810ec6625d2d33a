"""Past one machine (issue 24): one journal on PostgreSQL (``journal_url``) shared by kernels on several "hosts" (real
processes, each with its own ``KONTEXT_HOST_ID`` and runs folder). One daily cap for all of them; an owner killed on
another host is taken over only once its heartbeat has lapsed; a server restarted mid-run loses nothing paid for.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kernels import CAPPED_KERNEL, HOLD, Kernel, release  # tests/kernels.py
from postgres import PostgresServer
from waiting import wait_for

from kontext_nb.config import JOURNAL_URL_ENV, RetryPolicy, Settings
from kontext_nb.errors import JournalError
from kontext_nb.jobs import Job
from kontext_nb.journal import Journal
from kontext_nb.journal.heartbeat import EVERY_ENV, HOST_ENV, LAPSE_ENV
from kontext_nb.session import Session

KEY = "test-key-0123456789abcdef"


def test_kernels_on_two_hosts_with_their_own_runs_folders_share_one_daily_cap(
    sb: Any, tmp_path: Path, pg_url: str
) -> None:
    """4 processes on 2 hosts (2 runs folders), 4 jobs each ($1.28) under one $0.40 daily cap: exactly 5 sent; the
    journal says which host wrote which files, and every job's images are found from a third place."""
    sb.configure(inference_time=0.3)
    kernels = []
    for n in range(4):
        host = "host-a" if n % 2 == 0 else "host-b"
        env = {**_env(), JOURNAL_URL_ENV: pg_url, HOST_ENV: host}
        kernels.append(
            subprocess.Popen(
                [sys.executable, "-c", CAPPED_KERNEL, sb.url, str(tmp_path / host), str(n)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    outputs = [k.communicate(timeout=120) for k in kernels]
    assert all(k.returncode == 0 for k in kernels), [err for _, err in outputs]
    assert sum(int(out.split()[0]) for out, _ in outputs) == 5 and sb.stats()["submits"] == 5
    journal = Journal(tmp_path / "reader", pg_url)
    try:
        assert journal.held() == (pytest.approx(0.40), 0.0)
        done = journal.search(status="done")
        assert len(done) == 5 and {r.host for r in done} <= {"host-a", "host-b"}  # which sent first: a race
        for record in done:
            assert record.folder == tmp_path / str(record.host)
            assert record.paths and all(p.is_file() for p in record.paths)
    finally:
        journal.close()


def test_an_owner_killed_on_another_host_is_taken_over_only_once_its_heartbeat_lapses(
    sb: Any, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite another host's process id says nothing (the bug: a live job taken over); here its heartbeat does."""
    monkeypatch.setenv(LAPSE_ENV, "5")  # generous: a loaded machine may be slow to open the session below
    sb.configure(queue_delay=HOLD)
    owner = Kernel(
        sb,
        tmp_path / "host-a",
        name="owner",
        owner=True,
        arguments={"seed": 3},
        env={JOURNAL_URL_ENV: pg_url, HOST_ENV: "host-a", EVERY_ENV: "0.2"},
    )
    try:
        owner.await_line("SUBMITTED")
        journal_id = int(owner.await_line("STARTED").split()[1])
    finally:
        owner.kill()  # SIGKILL: no goodbye, its heartbeat row stays until it lapses
    monkeypatch.setenv(HOST_ENV, "host-b")
    s = Session(_settings(sb, tmp_path / "host-b", pg_url), notice=lambda m: None)
    try:
        journal = s.tracker.journal
        record = journal.get(journal_id)
        assert record.session is not None and record.session.startswith("host-a:")
        assert journal.alive(record.session) and not s.tracker.unattended(record)
        assert s.resume(wait=False) == [] and journal.get(journal_id).session == record.session  # not yet
        release(sb)
        wait_for(lambda: not journal.alive(record.session), timeout=30)
        [result] = s.resume(wait=True)
        after = journal.get(journal_id)
        assert after.status == "done" and after.session == s.tracker.session_id and after.host == "host-b"
        assert all(p.is_file() for p in after.paths) and after.folder == tmp_path / "host-b"
        assert sb.stats()["submits"] == 1 and journal.held() == (pytest.approx(0.08), 0.0)
        assert result.journal_id == journal_id
    finally:
        s.close()


def test_the_server_restarted_mid_run(sb: Any, tmp_path: Path, pg_server: PostgresServer, pg_url: str) -> None:
    """A job in flight while the server restarts is recorded when it ends (the journal reconnects); a call while the
    server is down is one clear line and sends nothing; once it is back, work goes on; nothing paid is lost."""
    sb.configure(inference_time=0.5)
    s = Session(_settings(sb, tmp_path / "runs", pg_url, budget_daily=1.0), notice=lambda m: None)
    try:
        first = s.generate("before the restart", wait=False)
        assert isinstance(first, Job)
        wait_for(lambda: first.request_id)
        pg_server.restart()
        assert first.result(30).images
        pg_server.stop()
        try:
            with pytest.raises(JournalError) as down:
                s.generate("while it is down")
        finally:
            pg_server.start()
        text = str(down.value)
        assert "\n" not in text and "the database server is down, restarting or unreachable" in text
        assert sb.stats()["submits"] == 1
        assert s.generate("after the restart").images
        journal = s.tracker.journal
        assert [r.status for r in journal.search()] == ["done", "done"]
        assert journal.held() == (pytest.approx(0.16), 0.0) and sb.stats()["submits"] == 2
    finally:
        s.close()


def test_load_ext_on_another_host_collects_a_killed_kernels_job_once_its_heartbeat_lapses(
    sb: Any, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh IPython on host B, KONTEXT_JOURNAL_URL set: %load_ext finds the job a kernel killed on host A left
    on fal (its heartbeat lapsed) and collects it in the background, into B's runs folder; nothing sent again."""
    from test_money import FRESH_IPYTHON, KILLED_KERNEL, ended, fresh_ipython_env, python

    shared = {JOURNAL_URL_ENV: pg_url, LAPSE_ENV: "1", EVERY_ENV: "0.2"}
    monkeypatch.setenv(LAPSE_ENV, "1")  # this process judges the lapse too
    sb.configure(inference_time=1.0)
    kernel = python(KILLED_KERNEL, sb.url, str(tmp_path / "a"), env={**_env(), **shared, HOST_ENV: "host-a"})
    try:
        assert kernel.stdout is not None and kernel.stdout.readline().strip() == "submitted", ended(kernel)
    finally:
        kernel.kill()
        kernel.wait(10)
    journal = Journal(tmp_path / "reader", pg_url)
    try:
        (row,) = journal.search()
        wait_for(lambda: not journal.alive(row.session), timeout=30)
        env = {**fresh_ipython_env(sb, tmp_path / "b"), **shared, HOST_ENV: "host-b"}
        shell = python(FRESH_IPYTHON, env=env)
        try:
            assert shell.stdout is not None
            first = shell.stdout.readline()
            assert first.startswith(f"kontext_nb: collecting 1 job a stopped kernel left on fal (@{row.id})"), first
            wait_for(lambda: journal.get(row.id).status == "done", timeout=60)
        finally:
            ended(shell)
        done = journal.get(row.id)
        assert done.host == "host-b" and done.folder == tmp_path / "b" and all(p.is_file() for p in done.paths)
        assert sb.stats()["submits"] == 1 and journal.held() == (pytest.approx(0.08), 0.0)
    finally:
        journal.close()


def _settings(sb: Any, runs: Path, url: str, **changes: Any) -> Settings:
    return Settings(
        base_url=sb.url,
        key=KEY,
        runs_dir=str(runs),
        journal_url=url,
        retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.2),
        **changes,
    )


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
