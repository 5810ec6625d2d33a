"""``kontext-nb journal copy``: a SQLite journal into PostgreSQL and back, every row and id kept; and the one line a
SQLite journal on a network filesystem gets (from a mounts table given to it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kontext_nb.cli import main
from kontext_nb.config import Settings
from kontext_nb.journal import Journal
from kontext_nb.journal.mounts import filesystem, network_notice
from kontext_nb.session import Session


def fill(journal: Journal) -> None:
    journal.agree_zone("Europe/Berlin")
    first = journal.create(endpoint="fal-ai/flux-pro/kontext", arguments={"prompt": "Ein Fuchs", "seed": 3})
    journal.finished(first, status="done", cost=0.04, num_images=1, files=["images/a.png"])
    second = journal.create(
        endpoint="fal-ai/flux-pro/kontext", arguments={"prompt": "a hare"}, reserved=0.04, parent_id=first
    )
    journal.submitted(second, "req-2")
    journal.add_vote(first, second, tie=False, voter="ana")


def snapshot(journal: Journal) -> tuple[object, ...]:
    jobs = [(r.id, r.status, r.prompt, r.seed, r.cost, r.files, r.parents, r.request_id) for r in journal.search()]
    return jobs, journal.ledger_entries(), journal.votes(), journal.today(), journal.held()


def test_a_sqlite_journal_into_postgresql_and_back(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = Journal(tmp_path / "runs")
    fill(source)
    before = snapshot(source)
    source.close()
    assert main(["journal", "copy", str(tmp_path / "runs"), pg_url]) == 0
    said = capsys.readouterr().out.strip()
    assert said.startswith("copied 2 jobs, 1 votes, ") and "\n" not in said
    shared = Journal(tmp_path / "elsewhere", pg_url)
    try:
        assert snapshot(shared) == before
        assert shared.search(search="fuchs")[0].folder == tmp_path / "runs"  # its images stay where they were
        assert shared.create(endpoint="fal-ai/flux-pro/kontext", arguments={"prompt": "new"}) == 3
    finally:
        shared.close()
    assert main(["journal", "copy", pg_url, str(tmp_path / "back" / "journal.sqlite3")]) == 0
    back = Journal(tmp_path / "back")
    try:
        assert snapshot(back)[1:] == before[1:] and len(back.search()) == 3
    finally:
        back.close()


def test_a_copy_into_a_journal_in_use_writes_nothing(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = Journal(tmp_path / "runs")
    fill(source)
    source.close()
    shared = Journal(tmp_path, pg_url)
    shared.create(endpoint="fal-ai/flux-pro/kontext", arguments={"prompt": "already here"})
    shared.close()
    secret_url = pg_url.replace("kontext@", "kontext:hunter2-pass@")
    assert main(["journal", "copy", str(tmp_path / "runs"), secret_url]) == 1
    err = capsys.readouterr().err.strip()
    assert "already holds 1 row(s) in jobs" in err and "nothing was copied" in err
    assert "hunter2" not in err and "kontext:***@" in err and "\n" not in err
    assert main(["journal", "copy", str(tmp_path / "runs"), str(tmp_path / "other")]) == 1
    assert "give a runs folder and a postgresql:// URL" in capsys.readouterr().err
    assert main(["journal", "copy", str(tmp_path / "nothing-here"), pg_url]) == 1
    assert "no journal at" in capsys.readouterr().err


MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
server:/export/home /home nfs4 rw,vers=4.2 0 0
//nas/lab /mnt/lab\\040share cifs rw 0 0
sshfs#me@host: /mnt/remote fuse.sshfs rw 0 0
fuse-overlayfs /var/lib/containers fuse.fuse-overlayfs rw 0 0
/dev/sdb1 /home/ana/local ext4 rw 0 0
"""


@pytest.mark.parametrize(
    "folder, kind",
    [
        ("/home/ana/kontext-runs", "nfs4"),
        ("/mnt/lab share/runs", "cifs"),
        ("/mnt/remote/runs", "fuse.sshfs"),
        ("/home/ana/local/runs", None),  # a local disk mounted inside the NFS home
        ("/var/lib/containers/runs", None),
        ("/tmp/runs", None),
    ],
)
def test_a_runs_folder_on_a_network_filesystem_is_said_once(folder: str, kind: str | None) -> None:
    notice = network_notice(Path(folder), MOUNTS)
    if kind is None:
        assert notice is None
        return
    assert notice is not None and f"({kind})" in notice and "journal_url" in notice and "\n" not in notice
    assert filesystem(Path(folder), MOUNTS) is not None


def test_a_session_on_a_network_runs_folder_hears_it_once(
    sb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kontext_nb.journal import mounts

    table = tmp_path / "mounts"
    table.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/x {tmp_path / 'nfs'} nfs rw 0 0\n")
    monkeypatch.setattr(mounts, "MOUNTS", str(table))
    said: list[str] = []
    for _ in range(2):
        settings = Settings(base_url=sb.url, key="k" * 24, runs_dir=str(tmp_path / "nfs" / "runs"))
        session = Session(settings, notice=said.append)
        assert session.generate("a fox").images
        session.close()
    assert len([n for n in said if "is on a network filesystem (nfs)" in n]) == 1
