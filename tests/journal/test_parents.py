"""A multi-reference edit keeps every source as a parent: lineage and children see all of them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kontext_nb.journal.db import DB_NAME, MIGRATIONS, Journal
from kontext_nb.session import Session

T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
MULTI = "fal-ai/flux-pro/kontext/max/multi"


def test_a_multi_reference_edit_records_every_source(session: Session) -> None:
    a = session.generate("a cat", seed=1)
    b = session.generate("a sofa", seed=2)
    both = session.edit([a, b], "the cat on the sofa", seed=3)
    record = session.record(both)
    assert record.parents == (a.journal_id, b.journal_id)
    assert record.parent_id == a.journal_id  # kept for older readers
    assert [c.id for c in session.children(b)] == [both.journal_id]


def test_parents_are_kept_written_and_cleared(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "runs")
    try:
        a = journal.create(endpoint=T2I, arguments={"prompt": "a"})
        b = journal.create(endpoint=T2I, arguments={"prompt": "b"})
        c = journal.create(endpoint=MULTI, arguments={"prompt": "c"}, parent_id=a, parents=[a, b])
        assert journal.get(c).parents == (a, b)
        assert [r.id for r in journal.children(b)] == [c]
        journal.delete(b)
        assert journal.get(c).parents == (a,)
    finally:
        journal.close()


def test_an_older_journal_gets_its_parent_as_parents(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    db = sqlite3.connect(folder / DB_NAME)
    db.executescript(MIGRATIONS[0])
    db.execute(
        "INSERT INTO jobs (created, updated, status, endpoint, prompt, arguments) VALUES (1, 1, 'done', ?, 'a', '{}')",
        (T2I,),
    )
    db.execute(
        "INSERT INTO jobs (created, updated, status, endpoint, prompt, arguments, parent_id)"
        " VALUES (2, 2, 'done', ?, 'b', '{}', 1)",
        (T2I,),
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    journal = Journal(folder)
    try:
        assert journal.get(2).parents == (1,)
        assert journal.get(1).parents == ()
    finally:
        journal.close()
