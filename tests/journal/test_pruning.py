"""Deleting jobs and pruning the runs folder: rows, their image files, shared files, what is still on its way."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from PIL import Image

from kontext_nb.errors import JournalError
from kontext_nb.journal.db import Journal
from kontext_nb.journal.pruning import delete_record, prune

T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
DAY = 86400.0


@pytest.fixture
def journal(tmp_path: Path, journal_url: str | None) -> Iterator[Journal]:
    """On both backends (the images in tmp_path either way)."""
    j = Journal(tmp_path, journal_url)
    yield j
    j.close()


def write_image(folder: Path, name: str, side: int = 32, seed: int = 0) -> str:
    """A real small PNG of noise under images/ (noise: its size grows with ``side``); returns its relative path."""
    (folder / "images").mkdir(exist_ok=True)
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (side, side), bytes(rng.randrange(256) for _ in range(side * side * 3)))
    image.save(folder / "images" / name)
    return f"images/{name}"


def add(
    journal: Journal,
    prompt: str,
    *,
    status: str = "done",
    files: Sequence[str] = (),
    parent_id: int | None = None,
    days_old: float = 0.0,
) -> int:
    """A job driven to ``status``; ``days_old`` moves its creation time back."""
    job = journal.create(endpoint=T2I, arguments={"prompt": prompt, "seed": 1}, parent_id=parent_id)
    if status != "pending":
        journal.submitted(job, f"req-{job}")
    if status not in ("pending", "submitted"):
        journal.finished(job, status=status, cost=0.08, num_images=len(files), files=files)
    if days_old:
        journal._db.execute("UPDATE jobs SET created = ? WHERE id = ?", (time.time() - days_old * DAY, job))
    return job


def images(folder: Path) -> set[str]:
    return {f"images/{p.name}" for p in (folder / "images").iterdir() if p.is_file()}


def images_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in (folder / "images").iterdir() if p.is_file())


def size(folder: Path, name: str) -> int:
    return (folder / name).stat().st_size


def ids(journal: Journal) -> set[int]:
    return {r.id for r in journal.search()}


def assert_no_row_lists_a_missing_file(journal: Journal) -> None:
    missing = [(r.ref, p.name) for r in journal.search() for p in r.paths if not p.exists()]
    assert missing == []


# -- delete_record --------------------------------------------------------------------------
def test_delete_record_removes_row_and_files(journal: Journal) -> None:
    folder = journal.folder
    doomed_files = [write_image(folder, "a.png", seed=1), write_image(folder, "b.png", seed=2)]
    doomed = add(journal, "doomed", files=doomed_files)
    kept = add(journal, "kept", files=[write_image(folder, "c.png", seed=3)])
    delete_record(journal, journal.get(doomed))
    assert ids(journal) == {kept}
    with pytest.raises(JournalError, match=f"@{doomed}"):
        journal.get(doomed)
    assert images(folder) == {"images/c.png"}


def test_delete_record_keeps_files_a_cached_row_still_lists(journal: Journal) -> None:
    """A cached answer shares its original's files: deleting either row keeps them until the last goes."""
    folder = journal.folder
    shared = write_image(folder, "shared.png", seed=1)
    own = write_image(folder, "own.png", seed=2)
    original = add(journal, "original", files=[shared, own])
    copy = journal.record_cached(journal.get(original), session=None, source=None, tags=())
    cached = journal.get(copy)
    assert cached.files == (shared, own)

    delete_record(journal, journal.get(original))
    assert ids(journal) == {copy}
    assert images(folder) == {shared, own}  # the cached row still lists both
    assert all(p.exists() for p in journal.get(copy).paths)
    delete_record(journal, journal.get(copy))
    assert journal.count() == 0 and images(folder) == set()


def test_delete_record_of_the_cached_row_keeps_the_original_files(journal: Journal) -> None:
    folder = journal.folder
    shared = write_image(folder, "shared.png")
    original = add(journal, "original", files=[shared])
    copy = journal.record_cached(journal.get(original), session=None, source=None, tags=())
    delete_record(journal, journal.get(copy))
    assert ids(journal) == {original} and images(folder) == {shared}
    assert all(p.exists() for p in journal.get(original).paths)


def test_delete_record_files_false_keeps_files(journal: Journal) -> None:
    folder = journal.folder
    name = write_image(folder, "a.png")
    job = add(journal, "keep my files", files=[name])
    delete_record(journal, journal.get(job), files=False)
    assert journal.count() == 0 and images(folder) == {name}


def test_delete_record_unlinks_children_and_tolerates_missing_files(journal: Journal) -> None:
    folder = journal.folder
    name = write_image(folder, "parent.png")
    parent = add(journal, "parent", files=[name, "images/already-gone.png"])
    child = add(journal, "child", parent_id=parent)
    grandchild = add(journal, "grandchild", parent_id=child)
    delete_record(journal, journal.get(parent))
    assert ids(journal) == {child, grandchild}
    assert journal.get(child).parent_id is None and journal.get(grandchild).parent_id == child
    assert images(folder) == set()


# -- prune by age ---------------------------------------------------------------------------
def test_prune_older_than_days_only_finished_jobs(journal: Journal) -> None:
    """Old done, failed and cancelled jobs go; old pending and submitted jobs and new jobs stay."""
    folder = journal.folder
    old_done = add(journal, "old done", files=[write_image(folder, "old.png", seed=1)], days_old=10)
    add(journal, "old failed", status="failed", days_old=10)
    add(journal, "old cancelled", status="cancelled", days_old=8)
    old_pending = add(journal, "old pending", status="pending", days_old=10)
    old_submitted = add(journal, "old submitted", status="submitted", days_old=10)
    recent = add(journal, "recent", files=[write_image(folder, "recent.png", seed=2)], days_old=2)
    new = add(journal, "new", files=[write_image(folder, "new.png", seed=3)], parent_id=old_done)

    assert prune(journal, older_than_days=5) == 3
    assert ids(journal) == {old_pending, old_submitted, recent, new}
    assert images(folder) == {"images/recent.png", "images/new.png"}
    assert journal.get(new).parent_id is None  # its parent was pruned
    assert {r.status for r in journal.uncollected()} == {"pending", "submitted"}

    assert prune(journal, older_than_days=5) == 0  # nothing left that old
    assert prune(journal, older_than_days=1) == 1  # now "recent" is old enough
    assert ids(journal) == {old_pending, old_submitted, new}
    assert images(folder) == {"images/new.png"}


def test_prune_on_a_shared_journal_takes_only_this_runs_folders_jobs(tmp_path: Path, pg_url: str) -> None:
    """Two hosts' runs folders on one PostgreSQL journal, the same image name in both: pruning one folder deletes
    its own jobs and files, never the other folder's rows or files."""
    here, there = Journal(tmp_path / "here", pg_url), Journal(tmp_path / "there", pg_url)
    try:
        mine = add(here, "mine", files=[write_image(here.folder, "same.png")], days_old=10)
        theirs = add(there, "theirs", files=[write_image(there.folder, "same.png")], days_old=10)
        assert prune(here, older_than_days=5) == 1
        assert ids(there) == {theirs} and mine not in ids(here)
        assert images(there.folder) == {"images/same.png"} and images(here.folder) == set()
        assert_no_row_lists_a_missing_file(there)
    finally:
        here.close()
        there.close()


def test_prune_with_nothing_to_do(journal: Journal) -> None:
    folder = journal.folder
    job = add(journal, "one", files=[write_image(folder, "a.png")], days_old=30)
    assert prune(journal) == 0
    assert prune(journal, older_than_days=60) == 0
    assert prune(journal, max_bytes=images_bytes(folder)) == 0
    assert ids(journal) == {job} and images(folder) == {"images/a.png"}


# -- prune by size --------------------------------------------------------------------------
def test_prune_max_bytes_deletes_oldest_finished_until_it_fits(journal: Journal) -> None:
    folder = journal.folder
    pending = add(journal, "oldest, pending", status="pending")
    submitted = add(journal, "old, submitted", status="submitted")
    add(journal, "a", files=[write_image(folder, "a.png", seed=1)])
    add(journal, "b", files=[write_image(folder, "b1.png", seed=2), write_image(folder, "b2.png", seed=3)])
    c = add(journal, "c", files=[write_image(folder, "c.png", seed=4)])
    d = add(journal, "d", files=[write_image(folder, "d.png", seed=5)])
    limit = size(folder, "images/c.png") + size(folder, "images/d.png")
    assert images_bytes(folder) > limit

    assert prune(journal, max_bytes=limit) == 2  # a, then b: then c and d fit exactly
    assert ids(journal) == {pending, submitted, c, d}
    assert images(folder) == {"images/c.png", "images/d.png"}
    assert images_bytes(folder) <= limit

    assert prune(journal, max_bytes=limit - 1) == 1  # c goes, d is left
    assert ids(journal) == {pending, submitted, d}
    assert prune(journal, max_bytes=0) == 1
    assert ids(journal) == {pending, submitted}  # never the jobs still on their way
    assert prune(journal, max_bytes=0) == 0
    assert ids(journal) == {pending, submitted}


def test_prune_age_and_size_together(journal: Journal) -> None:
    """Old jobs go first; then the oldest of the rest until the images fit."""
    folder = journal.folder
    old = add(journal, "old", files=[write_image(folder, "old.png", seed=1)], days_old=10)
    mid = add(journal, "mid", files=[write_image(folder, "mid.png", seed=2)])
    new = add(journal, "new", files=[write_image(folder, "new.png", seed=3)])
    limit = size(folder, "images/new.png")
    assert prune(journal, older_than_days=5, max_bytes=limit) == 2
    assert ids(journal) == {new} and images(folder) == {"images/new.png"}
    assert old not in ids(journal) and mid not in ids(journal)


def test_prune_max_bytes_counts_a_shared_file_once(journal: Journal) -> None:
    """A file shared by a job and its cached copy is freed only when both rows go: the folder must fit afterwards."""
    folder = journal.folder
    original = add(journal, "original", files=[write_image(folder, "shared.png", seed=1)])
    copy = journal.record_cached(journal.get(original), session=None, source=None, tags=())
    newest = add(journal, "newest", files=[write_image(folder, "newest.png", seed=2)])
    limit = size(folder, "images/newest.png")

    deleted = prune(journal, max_bytes=limit)
    assert images_bytes(folder) <= limit, f"{images(folder)} still there after deleting {deleted} jobs"
    assert ids(journal) == {newest} and deleted == 2
    assert copy not in ids(journal)
    assert_no_row_lists_a_missing_file(journal)


def test_prune_age_then_size_counts_a_shared_file_once(journal: Journal) -> None:
    """Old jobs sharing one file free it once, not twice: the size pass must still make the folder fit."""
    folder = journal.folder
    original = add(journal, "original", files=[write_image(folder, "big.png", side=64, seed=1)], days_old=10)
    copy = journal.record_cached(journal.get(original), session=None, source=None, tags=())
    journal._db.execute("UPDATE jobs SET created = ? WHERE id = ?", (time.time() - 9 * DAY, copy))
    middle = add(journal, "middle", files=[write_image(folder, "middle.png", side=32, seed=2)])
    newest = add(journal, "newest", files=[write_image(folder, "newest.png", side=32, seed=3)])
    assert size(folder, "images/big.png") > size(folder, "images/middle.png")
    limit = size(folder, "images/newest.png")

    deleted = prune(journal, older_than_days=5, max_bytes=limit)
    assert images_bytes(folder) <= limit, f"{images(folder)} still there after deleting {deleted} jobs"
    assert ids(journal) == {newest} and deleted == 3
    assert middle not in ids(journal)


# -- defects found while reorganising the package (issue 11) -------------------------------------------------
def test_pruning_removes_thumbnails_and_inputs_with_the_last_row_that_names_them(journal: Journal) -> None:
    from kontext_nb.journal import folder as runs

    folder = journal.folder
    image = write_image(folder, "a.png")
    runs.save_thumbnail(folder, image, (folder / image).read_bytes())
    kept_input = runs.save_input(folder, b"\x89PNG\r\n\x1a\nshared", "image/png", "ab" * 32)
    own_input = runs.save_input(folder, b"\x89PNG\r\n\x1a\nown", "image/png", "cd" * 32)
    old = journal.create(endpoint=T2I, arguments={"prompt": "old", "seed": 1}, input_hashes=["ab" * 32, "cd" * 32])
    journal.submitted(old, "req-old")
    journal.finished(old, status="done", cost=0.08, num_images=1, files=[image])
    journal._db.execute("UPDATE jobs SET created = ? WHERE id = ?", (time.time() - 9 * DAY, old))
    young = journal.create(endpoint=T2I, arguments={"prompt": "young", "seed": 1}, input_hashes=["ab" * 32])
    journal.submitted(young, "req-young")
    journal.finished(young, status="failed", cost=0.0, num_images=0, files=[])
    thumb = runs.thumbnail_path(folder, image)
    assert thumb.exists() and (folder / kept_input).exists() and (folder / own_input).exists()

    assert prune(journal, older_than_days=7) == 1
    assert not (folder / image).exists() and not thumb.exists(), "the image and its thumbnail went together"
    assert not (folder / own_input).exists(), "an input no row names any more goes too"
    assert (folder / kept_input).exists(), "an input another row still names stays"


def test_a_journal_path_outside_the_runs_folder_is_refused_and_nothing_is_deleted(
    journal: Journal, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "precious.txt"
    outside.write_text("not the runs folder's")
    relative = Path("..", "..", *outside.parts[1:]).as_posix()  # climbs out of the runs folder
    for name in (relative, str(outside), "images/../../x.png"):
        job = add(journal, f"tampered {name}", files=[name], days_old=30)
        with pytest.raises(JournalError, match="outside its runs folder"):
            delete_record(journal, journal.get(job))
        with pytest.raises(JournalError, match="outside its runs folder"):
            prune(journal, older_than_days=1)
        with pytest.raises(JournalError, match="outside its runs folder"):
            journal.get(job).paths  # noqa: B018  (reading the paths is what is refused)
        journal.delete(job)
    assert outside.read_text() == "not the runs folder's"


def test_prune_reads_the_journal_once_however_many_jobs_go(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(60):
        add(journal, f"job {i}", files=[write_image(journal.folder, f"{i}.png", side=8, seed=i)], days_old=10)
    searches = 0
    real = journal.search

    def counting(**filters: object) -> list[object]:
        nonlocal searches
        searches += 1
        return real(**filters)  # type: ignore[arg-type]

    monkeypatch.setattr(journal, "search", counting)
    assert prune(journal, older_than_days=5, max_bytes=0) == 60
    assert searches <= 2, f"the journal was read {searches} times for 60 deletions (once per file before)"
