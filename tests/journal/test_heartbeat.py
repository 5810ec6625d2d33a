"""Owners alive by heartbeat rows on a shared journal (journal/heartbeat.py): alive while beating, gone once the beat
lapses, gone at once when its session closes, and alive again for a lapse after the server restarts (nobody could
beat while it was down)."""

from __future__ import annotations

from pathlib import Path

import pytest
from postgres import PostgresServer
from waiting import wait_for

from kontext_nb.journal import Journal
from kontext_nb.journal.heartbeat import EVERY_ENV, LAPSE_ENV, beat


def test_a_heartbeat_lapses_and_a_restart_forgives_it(
    pg_server: PostgresServer, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LAPSE_ENV, "2")
    monkeypatch.setenv(EVERY_ENV, "0.1")
    journal = Journal(tmp_path, pg_url)
    try:
        assert not journal.alive("never-beat:1:x") and not journal.alive(None)
        journal.keep_alive("kept:1:x")  # beats every 0.1 s on a thread of its own
        assert journal._pg is not None
        beat(journal._pg, "stopped:2:y")  # one beat, then nothing: a kernel killed with -9
        wait_for(lambda: not journal.alive("stopped:2:y"), timeout=30)
        assert journal.alive("kept:1:x")
        elsewhere = Journal(tmp_path / "elsewhere", pg_server.socket_url(pg_url.rsplit("/", 1)[1]))  # unix socket
        pg_server.restart()
        assert elsewhere.alive("stopped:2:y"), "nobody could beat while the server was down"
        elsewhere.close()
        wait_for(lambda: not journal.alive("stopped:2:y"), timeout=30)
        assert journal.alive("kept:1:x")  # it went on beating once the server was back
        journal.let_go("kept:1:x")
        assert not journal.alive("kept:1:x")  # a closed session's jobs are left behind at once
    finally:
        journal.let_go("kept:1:x")
        journal.close()
