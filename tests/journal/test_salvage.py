"""A salvage is coordinated (issue 20, point 5): every journal on the runs folder follows the journal to its new
file, carries over what it wrote that the new file lacks, and no journal ever moves a sound file aside.

Each ``Journal`` here stands for a kernel (its own connections, as another process has); tests/test_money.py
runs the issue's case with real kernel processes.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from budget import examples  # tests/budget.py: KONTEXT_HYPOTHESIS=deep for the full budget
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kontext_nb.errors import JournalError
from kontext_nb.journal import salvage
from kontext_nb.journal.db import DB_NAME, Journal

T2I = "fal-ai/flux-pro/kontext/max/text-to-image"


def fill(journal: Journal, n: int, *, words: int = 80) -> list[int]:
    return [
        journal.create(endpoint=T2I, arguments={"prompt": f"job {i} " + "words " * words}, session="gone:1:x")
        for i in range(n)
    ]


def checkpoint(folder: Path) -> None:
    db = sqlite3.connect(folder / DB_NAME, isolation_level=None)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def damage(path: Path) -> None:
    """Overwrite a page in the middle of the jobs table, so reading every row fails (as in test_money.py)."""
    pristine = path.read_bytes()
    size = int.from_bytes(pristine[16:18], "big")
    for page in range(len(pristine) // size // 2, len(pristine) // size):
        spoiled = bytearray(pristine)
        spoiled[(page - 1) * size : page * size] = b"\xde\xad\xbe\xef" * (size // 4)
        path.write_bytes(bytes(spoiled))
        if salvage.damaged(path):
            probe = sqlite3.connect(path)
            try:
                probe.execute("SELECT * FROM jobs WHERE id = 1").fetchall()
                return
            except sqlite3.DatabaseError:
                pass
            finally:
                probe.close()
    raise AssertionError("no page could be damaged as wanted")


def moved_aside(folder: Path) -> list[Path]:
    return [p for p in folder.glob(f"{DB_NAME}.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]


def test_two_kernels_meeting_one_damage_salvage_it_once(tmp_path: Path) -> None:
    a = Journal(tmp_path)
    fill(a, 200)
    a.add_vote(1, 2, tie=False, voter="ann")
    a.close()
    checkpoint(tmp_path)
    damage(tmp_path / DB_NAME)
    a, b = Journal(tmp_path), Journal(tmp_path)  # both open on the damaged file
    b.count()
    with pytest.raises(JournalError, match="is damaged"):
        a.search()
    kept = a.count()
    assert 100 < kept < 200 and len(moved_aside(tmp_path)) == 1
    assert len(b.search()) == kept  # B reads the new journal: it never meets the damage, never salvages
    new = b.create(endpoint=T2I, arguments={"prompt": "after the salvage"})
    assert new > 200 + salvage.ID_GAP - 1  # ids go on past the damaged file's: never one a row there had
    assert a.get(new).prompt == "after the salvage" and len(moved_aside(tmp_path)) == 1
    assert [(v.winner_id, v.voter) for v in a.votes()] == [(1, "ann")]  # every table is salvaged, not only jobs
    a.close()
    b.close()


def test_a_damage_report_about_a_file_already_salvaged_moves_nothing(tmp_path: Path) -> None:
    """A kernel that met the damage just before another kernel salvaged it: the file is no longer the one it found
    damaged, so it is left alone (the old code moved the healthy new journal aside)."""
    a = Journal(tmp_path)
    fill(a, 200)
    a.close()
    checkpoint(tmp_path)
    damage(tmp_path / DB_NAME)
    a, b = Journal(tmp_path), Journal(tmp_path)
    b.count()
    with pytest.raises(JournalError, match="is damaged"):
        a.search()
    error = b._salvaged(sqlite3.DatabaseError("database disk image is malformed"))  # what B's query would raise
    assert "salvaged into a new file meanwhile" in str(error)
    assert len(moved_aside(tmp_path)) == 1 and b.count() == a.count()
    a.close()
    b.close()


def test_a_sound_journal_is_never_moved_aside(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    fill(journal, 3)
    error = journal._salvaged(sqlite3.DatabaseError("database disk image is malformed"))  # a misread, say
    assert "nothing was moved" in str(error) and not moved_aside(tmp_path) and journal.count() == 3
    journal.close()


def test_a_kernel_whose_journal_was_moved_aside_carries_its_rows_over(tmp_path: Path) -> None:
    """The journal replaced under a kernel without the coordination (a copy put in place by hand, an older
    kontext_nb's salvage): rows it wrote to the old file after the copy was made are carried over at its next
    write, every table, and its later writes land in the new file."""
    b = Journal(tmp_path)
    first = b.create(endpoint=T2I, arguments={"prompt": "before the copy"}, reserved=0.08)
    snapshot = tmp_path / "snapshot.sqlite3"
    source, target = sqlite3.connect(tmp_path / DB_NAME), sqlite3.connect(snapshot)
    source.backup(target)
    source.close()
    target.close()
    late = b.create(endpoint=T2I, arguments={"prompt": "written after the copy"}, reserved=0.08)
    b.finished(first, status="done", cost=0.08, num_images=1)
    b.add_vote(first, late, tie=True, voter="bo")
    salvage.move_aside(tmp_path / DB_NAME)
    snapshot.rename(tmp_path / DB_NAME)
    time.sleep(0.01)  # the next change is later than the old file's (the 'updated' column decides)
    b.submitted(late, "req-late")  # B's next write: it follows the journal and carries its rows over
    fresh = Journal(tmp_path)
    try:
        assert fresh.get(first).status == "done" and fresh.get(first).cost == pytest.approx(0.08)
        assert (fresh.get(late).status, fresh.get(late).request_id) == ("submitted", "req-late")
        assert fresh.held() == (pytest.approx(0.08), pytest.approx(0.08))
        assert [(v.winner_id, v.loser_id, v.voter) for v in fresh.votes()] == [(first, late, "bo")]
    finally:
        fresh.close()
        b.close()


# -- any sequence: a hypothesis state machine ------------------------------------------------------------------------
class TwoKernelsAndDamage(RuleBasedStateMachine):
    """Two kernels write, finish and read jobs on one runs folder while pages of old rows are damaged: after every
    step every job either kernel wrote is in the live journal as that kernel last wrote it, and each damage moved
    exactly one file aside (the old code lost the rows of the kernel that did not salvage, and moved the healthy
    new journal aside when that kernel met the damage later)."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="kx-salvage-"))
        setup = Journal(self.folder)
        fill(setup, 120)
        setup.close()
        checkpoint(self.folder)
        self.kernels = [Journal(self.folder), Journal(self.folder)]
        self.expected: dict[int, str] = {}  # row -> the status its kernel last wrote
        self.damages = 0

    @rule(k=st.integers(0, 1))
    def write(self, k: int) -> None:
        row = self._try(lambda: self.kernels[k].create(endpoint=T2I, arguments={"prompt": "a kernel's job"}))
        if row is not None:
            self.expected[row] = "pending"

    @rule(k=st.integers(0, 1), data=st.data())
    def finish(self, k: int, data: st.DataObject) -> None:
        if self.expected:
            row = data.draw(st.sampled_from(sorted(self.expected)))
            if self._try(lambda: self.kernels[k].finished(row, status="done", cost=0.08)) is not None:
                self.expected[row] = "done"

    @rule(k=st.integers(0, 1))
    def read_everything(self, k: int) -> None:
        self._try(lambda: self.kernels[k].search())

    @precondition(lambda self: self.damages < 2)
    @rule(k=st.integers(0, 1))
    def damage_then_read(self, k: int) -> None:
        for kernel in self.kernels:
            kernel.close()  # their connections reopen on their next call (an idle kernel's file is all on disk)
        checkpoint(self.folder)
        if damage_old_rows(self.folder / DB_NAME, keep=sorted(self.expected)):
            self.damages += 1
            self.kernels[1 - k].nth_latest(1)  # the other kernel is open on the damaged file too, and stays so
            with pytest.raises(JournalError, match="is damaged"):
                self.kernels[k].search()

    def _try(self, call: Callable[[], Any]) -> Any:
        """The call's answer (True for None); a damage it meets is salvaged and it is tried once more, as the
        error tells a user to."""
        for _ in range(2):
            try:
                answer = call()
            except JournalError as exc:
                assert "damaged" in str(exc)
                continue
            return True if answer is None else answer
        return None

    @invariant()
    def every_job_is_in_the_live_journal(self) -> None:
        live = Journal(self.folder)
        try:
            for row, status in self.expected.items():
                assert live.get(row).status == status
            assert len(moved_aside(self.folder)) == self.damages
        finally:
            live.close()

    def teardown(self) -> None:
        for kernel in self.kernels:
            kernel.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def damage_old_rows(path: Path, keep: list[int]) -> bool:
    """Overwrite a page of the filler rows (never one holding a row in ``keep``); False if none could be."""
    pristine = path.read_bytes()
    size = int.from_bytes(pristine[16:18], "big")
    for page in range(3, len(pristine) // size // 2):
        spoiled = bytearray(pristine)
        spoiled[(page - 1) * size : page * size] = b"\xde\xad\xbe\xef" * (size // 4)
        path.write_bytes(bytes(spoiled))
        probe = sqlite3.connect(path)
        try:
            for row in keep:
                probe.execute("SELECT * FROM jobs WHERE id = ?", (row,)).fetchall()
            probe.execute("SELECT COUNT(*) FROM jobs WHERE prompt LIKE '%words%'").fetchall()
        except sqlite3.DatabaseError as exc:
            if "malformed" in str(exc) and all(_readable(probe, row) for row in keep):
                return True
        finally:
            probe.close()
    path.write_bytes(pristine)
    return False


def _readable(probe: sqlite3.Connection, row: int) -> bool:
    try:
        return probe.execute("SELECT status FROM jobs WHERE id = ?", (row,)).fetchone() is not None
    except sqlite3.DatabaseError:
        return False


TwoKernelsAndDamage.TestCase.settings = settings(
    max_examples=examples(ci=8, deep=25), stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
)
test_any_sequence_of_writes_reads_and_damage_keeps_every_job = TwoKernelsAndDamage.TestCase
