"""The run journal: SQLite in WAL mode, a row per job, migrations, corrupt files, processes and threads at once."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import kontext_nb.journal.db as journal_module
from kontext_nb.errors import JournalError
from kontext_nb.journal.db import DB_NAME, MIGRATIONS, SCHEMA_VERSION, JobRecord, Journal

T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
EDIT = "fal-ai/flux-pro/kontext"
DAY = 86400.0


@pytest.fixture
def journal(tmp_path: Path, journal_url: str | None) -> Iterator[Journal]:
    """On both backends: SQLite in the runs folder, and PostgreSQL."""
    j = Journal(tmp_path / "runs", journal_url)
    yield j
    j.close()


def add(
    journal: Journal,
    prompt: str,
    *,
    status: str = "done",
    endpoint: str = T2I,
    seed: int | None = None,
    tags: tuple[str, ...] = (),
    session: str | None = None,
    cache_key: str | None = None,
    files: tuple[str, ...] = (),
    cost: float = 0.0,
    parent_id: int | None = None,
) -> int:
    """A job driven to ``status`` (pending, submitted, or a final status)."""
    arguments: dict[str, object] = {"prompt": prompt} if seed is None else {"prompt": prompt, "seed": seed}
    job = journal.create(
        endpoint=endpoint, arguments=arguments, tags=tags, session=session, cache_key=cache_key, parent_id=parent_id
    )
    if status != "pending":
        journal.submitted(job, f"req-{job}")
    if status not in ("pending", "submitted"):
        journal.finished(job, status=status, cost=cost, num_images=len(files), files=files)
    return job


def set_created(journal: Journal, job_id: int, created: float) -> None:
    journal._db.execute("UPDATE jobs SET created = ? WHERE id = ?", (created, job_id))


def touch(folder: Path, name: str, data: bytes = b"image bytes") -> str:
    """A file in the runs folder; returns its path relative to the folder, as the journal stores files."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return name


def ids(records: list[JobRecord]) -> list[int]:
    return [r.id for r in records]


def schema(path: Path) -> tuple[list[tuple[object, ...]], list[str]]:
    """The jobs table's columns and the names of the indexes, read with a plain connection."""
    db = sqlite3.connect(path)
    try:
        columns = [tuple(row) for row in db.execute("PRAGMA table_info(jobs)")]
        indexes = sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'"))
    finally:
        db.close()
    return columns, indexes


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# -- a new journal --------------------------------------------------------------------------
def test_new_journal_file_wal_version_and_busy_timeout(tmp_path: Path) -> None:
    """A new journal is journal.sqlite3 in WAL mode, at the current schema version, with a busy timeout."""
    folder = tmp_path / "a" / "b" / "runs"  # parents are made too
    journal = Journal(folder)
    try:
        assert journal.folder == folder.resolve() and journal.path == folder.resolve() / DB_NAME
        assert journal.path.is_file() and DB_NAME == "journal.sqlite3"
        assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert journal._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
        assert journal._db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert journal.count() == 0 and journal.search() == [] and journal.uncollected() == []
    finally:
        journal.close()
    # WAL is a property of the file: a plain connection sees it too
    db = sqlite3.connect(folder / DB_NAME)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()
    assert user_version(folder / DB_NAME) == SCHEMA_VERSION


def test_relative_folder_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative runs folder is resolved against the working directory at open time."""
    monkeypatch.chdir(tmp_path)
    journal = Journal("rel-runs")
    try:
        assert journal.folder == (tmp_path / "rel-runs").resolve() and journal.folder.is_absolute()
        assert (tmp_path / "rel-runs" / DB_NAME).is_file()
    finally:
        journal.close()


# -- a row's lifecycle ----------------------------------------------------------------------
def test_create_submitted_finished_round_trip(journal: Journal) -> None:
    """Every field written by create, submitted and finished comes back from get; paths are absolute."""
    before = time.time()
    arguments = {"prompt": "a red fox, «café» 日本語", "seed": 42, "guidance_scale": 3.5, "aspect_ratio": "16:9"}
    first = journal.create(
        endpoint=T2I,
        arguments=arguments,
        input_hashes=["abc123", "url:https://example.com/in.png"],
        tags=["snow", "fox", "snow"],
        source="cell 3",
        session="session-1",
        cache_key="key-1",
    )
    after = time.time()
    second = journal.create(endpoint=EDIT, arguments={"prompt": "make it claymation"}, parent_id=first)
    assert second > first > 0

    pending = journal.get(first)
    expected = JobRecord(
        id=first,
        created=pending.created,
        status="pending",
        endpoint=T2I,
        prompt="a red fox, «café» 日本語",
        arguments=arguments,
        seed=42,
        request_id=None,
        parent_id=None,
        tags=("fox", "snow"),  # sorted, without duplicates
        source="cell 3",
        session="session-1",
        input_hashes=("abc123", "url:https://example.com/in.png"),
        cache_key="key-1",
        cached=False,
        cost=0.0,
        num_images=0,
        timings=None,
        nsfw=(),
        output_prompt=None,
        files=(),
        error=None,
        error_type=None,
    )
    assert pending == expected
    assert before <= pending.created <= after
    assert (pending.ref, pending.model, pending.mode) == (f"@{first}", "max", "text-to-image")
    assert journal.get(second).parent_id == first and journal.get(second).seed is None

    journal.submitted(first, "req-abc")
    submitted = journal.get(first)
    assert (submitted.status, submitted.request_id) == ("submitted", "req-abc")
    assert submitted.created == pending.created

    timings = {"inference": 1.25, "queue": 0.5}
    files = ["images/one.png", "images/two.jpg"]
    journal.finished(
        first,
        status="done",
        seed=43,
        cost=0.16,
        num_images=2,
        timings=timings,
        nsfw=[False, True],
        output_prompt="a red fox in the snow, detailed",
        files=files,
    )
    done = journal.get(first)
    assert done == JobRecord(
        **{
            **expected.__dict__,
            "status": "done",
            "request_id": "req-abc",
            "seed": 43,
            "cost": 0.16,
            "num_images": 2,
            "timings": timings,
            "nsfw": (False, True),
            "output_prompt": "a red fox in the snow, detailed",
            "files": tuple(files),
        }
    )
    assert done.paths == [journal.folder / "images" / "one.png", journal.folder / "images" / "two.jpg"]
    assert all(p.is_absolute() and p.parent.parent == journal.folder for p in done.paths)
    updated, created = journal._db.execute("SELECT updated, created FROM jobs WHERE id = ?", (first,)).fetchone()
    assert updated >= created


def test_finished_failed_keeps_seed_and_records_error(journal: Journal) -> None:
    """A failed job keeps the seed it was created with and records its error and error type."""
    job = journal.create(endpoint=T2I, arguments={"prompt": "x", "seed": 7})
    journal.submitted(job, "req-1")
    journal.finished(job, status="failed", error="fal said no", error_type="JobFailed", request_id="req-2")
    record = journal.get(job)
    assert (record.status, record.seed, record.request_id) == ("failed", 7, "req-2")
    assert (record.error, record.error_type, record.files, record.paths) == ("fal said no", "JobFailed", (), [])
    assert (record.cost, record.num_images, record.timings, record.nsfw) == (0.0, 0, None, ())


def test_rows_survive_reopening(tmp_path: Path) -> None:
    """What one Journal wrote, another Journal of the same folder reads."""
    first = Journal(tmp_path)
    job = add(first, "kept", seed=5, files=("images/a.png",), cost=0.08)
    first.close()
    second = Journal(tmp_path)
    try:
        record = second.get(job)
        assert (record.prompt, record.seed, record.files, record.cost) == ("kept", 5, ("images/a.png",), 0.08)
        assert second.count() == 1
    finally:
        second.close()


# -- references -----------------------------------------------------------------------------
def test_nth_latest(journal: Journal) -> None:
    """n=1 is the latest job, n=2 the one before; going too far back names the count."""
    with pytest.raises(JournalError) as empty:
        journal.nth_latest(1)
    assert "empty" in str(empty.value) and "\n" not in str(empty.value)
    with pytest.raises(JournalError) as empty_two:
        journal.nth_latest(2)
    assert "0 jobs" in str(empty_two.value) and "@-2" in str(empty_two.value)

    a, b, c = add(journal, "a"), add(journal, "b", status="pending"), add(journal, "c", status="failed")
    assert journal.nth_latest(1).id == c
    assert journal.nth_latest(2).id == b
    assert journal.nth_latest(3).id == a
    with pytest.raises(JournalError) as far:
        journal.nth_latest(4)
    message = str(far.value)
    assert "@-4" in message and "3 jobs" in message and "\n" not in message

    journal.delete(b)
    journal.delete(c)
    with pytest.raises(JournalError) as one:
        journal.nth_latest(2)
    assert "1 job" in str(one.value) and "1 jobs" not in str(one.value)


def test_get_unknown_id(journal: Journal) -> None:
    add(journal, "only")
    with pytest.raises(JournalError) as info:
        journal.get(999)
    message = str(info.value)
    assert "@999" in message and "\n" not in message


# -- search ---------------------------------------------------------------------------------
def test_search_words_all_match_case_insensitively(journal: Journal) -> None:
    fox = add(journal, "A Red Fox in the snow")
    cat = add(journal, "a black cat in the snow")
    red_cat = add(journal, "RED cat on a wall")
    assert ids(journal.search(search="red")) == [red_cat, fox]  # newest first
    assert ids(journal.search(search="SNOW red")) == [fox]  # every word must match, in any order
    assert ids(journal.search(search="  cat   snow ")) == [cat]
    assert ids(journal.search(search="fox cat")) == []
    assert ids(journal.search(search="")) == [red_cat, cat, fox]
    assert ids(journal.search()) == [red_cat, cat, fox]


def test_search_percent_underscore_and_backslash_are_literal(journal: Journal) -> None:
    """LIKE wildcards in a search word match themselves only."""
    percent = add(journal, "100% cotton")
    underscore = add(journal, "snake_case name")
    plain = add(journal, "1000 cotton snakeXcase")
    backslash = add(journal, r"path C:\images\fox")
    assert ids(journal.search(search="100%")) == [percent]
    assert ids(journal.search(search="%")) == [percent]
    assert ids(journal.search(search="snake_case")) == [underscore]
    assert ids(journal.search(search="_")) == [underscore]
    assert ids(journal.search(search="0%c")) == []  # "%" is not "any characters"
    assert ids(journal.search(search="e_c")) == [underscore]
    assert ids(journal.search(search=r"C:\images")) == [backslash]
    assert ids(journal.search(search="\\")) == [backslash]
    assert plain not in ids(journal.search(search="snake_case"))


def test_search_is_case_insensitive_beyond_ascii(journal: Journal) -> None:
    """Prompts are written in any language: CAFÉ finds café, ÉTÉ finds été."""
    cafe = add(journal, "un café en été")
    assert ids(journal.search(search="CAFÉ")) == [cafe]
    assert ids(journal.search(search="Été")) == [cafe]


def test_search_filters(journal: Journal) -> None:
    """seed, endpoint, status, exact tag, since, session and limit; every filter at once too."""
    old = add(journal, "old fox", seed=1, tags=("fox",), session="s1")
    edit = add(journal, "edit fox", seed=2, endpoint=EDIT, tags=("foxes", "snow"), session="s1")
    failed = add(journal, "failed fox", seed=1, status="failed", tags=("fox", "x"), session="s2")
    pending = add(journal, "pending fox", seed=3, status="pending", session="s2")
    set_created(journal, old, time.time() - 10 * DAY)

    assert ids(journal.search(seed=1)) == [failed, old]
    assert ids(journal.search(seed=0)) == []
    assert ids(journal.search(endpoint=EDIT)) == [edit]
    assert ids(journal.search(endpoint=T2I)) == [pending, failed, old]
    assert ids(journal.search(status="failed")) == [failed]
    assert ids(journal.search(status="pending")) == [pending]
    assert ids(journal.search(tag="fox")) == [failed, old]  # not "foxes"
    assert ids(journal.search(tag="foxes")) == [edit]
    assert ids(journal.search(tag="fo")) == []  # exact tag, not a substring
    assert ids(journal.search(tag="FOX")) == []
    assert ids(journal.search(since=time.time() - DAY)) == [pending, failed, edit]
    assert ids(journal.search(since=time.time() + DAY)) == []
    assert ids(journal.search(session="s1")) == [edit, old]
    assert ids(journal.search(session="s3")) == []
    assert ids(journal.search(limit=2)) == [pending, failed]
    assert ids(journal.search(search="fox", seed=1, tag="fox", session="s2", status="failed", limit=5)) == [failed]
    assert ids(journal.search(search="fox", seed=1, since=time.time() - DAY)) == [failed]


# -- the cache ------------------------------------------------------------------------------
def test_find_cached(journal: Journal) -> None:
    """Only done rows whose files all exist; the newest such row; a deleted file is no hit."""
    folder = journal.folder
    assert journal.find_cached("k") is None
    older = add(journal, "p", seed=1, cache_key="k", files=(touch(folder, "images/old.png"),))
    hit = journal.find_cached("k")
    assert hit is not None and hit.id == older
    two = (touch(folder, "images/a.png"), touch(folder, "images/b.png"))
    newer = add(journal, "p", seed=1, cache_key="k", files=two)
    add(journal, "p", seed=1, cache_key="k", status="failed")
    add(journal, "p", seed=1, cache_key="k", status="pending")
    add(journal, "p", seed=1, cache_key="k", status="submitted")
    add(journal, "p", seed=1, cache_key="k")  # done, but without files
    add(journal, "p", seed=1, cache_key="other", files=("images/a.png",))

    hit = journal.find_cached("k")
    assert hit is not None and hit.id == newer and hit.status == "done"
    assert hit.paths == [folder / "images" / "a.png", folder / "images" / "b.png"]
    assert journal.find_cached("none") is None

    (folder / "images" / "b.png").unlink()
    assert journal.find_cached("k") is None  # one of the newest job's files is gone: no cache hit
    other = journal.find_cached("other")
    assert other is not None and other.files == ("images/a.png",)


def test_record_cached(journal: Journal) -> None:
    """A cached answer is its own done row: cached, no cost, the original's files and settings."""
    folder = journal.folder
    files = (touch(folder, "images/x.png"), touch(folder, "images/y.png"))
    parent = add(journal, "parent")
    original = journal.create(
        endpoint=EDIT,
        arguments={"prompt": "make it blue", "seed": 9},
        input_hashes=["h1"],
        parent_id=parent,
        tags=["orig"],
        source="cell 1",
        session="s-old",
        cache_key="key",
    )
    journal.submitted(original, "req-orig")
    journal.finished(
        original,
        status="done",
        cost=0.04,
        num_images=2,
        timings={"inference": 2.0},
        nsfw=[False, False],
        output_prompt="blue",
        files=files,
    )
    record = journal.get(original)
    copy = journal.record_cached(record, session="s-new", source="cell 9", tags=["b", "a", "b"])
    assert copy > original
    cached = journal.get(copy)
    assert (cached.status, cached.cached, cached.cost) == ("done", True, 0.0)
    assert cached.files == files and cached.paths == record.paths
    assert (cached.session, cached.source, cached.tags) == ("s-new", "cell 9", ("a", "b"))
    same = ("endpoint", "prompt", "arguments", "seed", "request_id", "parent_id", "input_hashes", "cache_key")
    same += ("num_images", "timings", "nsfw", "output_prompt")
    assert {k: getattr(cached, k) for k in same} == {k: getattr(record, k) for k in same}
    assert cached.created >= record.created
    assert journal.get(original) == record  # the original is untouched
    assert journal.spent() == pytest.approx(0.04)
    hit = journal.find_cached("key")
    assert hit is not None and hit.id == copy


# -- uncollected, lineage, children, spent --------------------------------------------------
def test_uncollected(journal: Journal) -> None:
    pending = add(journal, "p", status="pending")
    add(journal, "d")
    submitted = add(journal, "s", status="submitted")
    add(journal, "f", status="failed")
    add(journal, "c", status="cancelled")
    later = add(journal, "p2", status="pending")
    assert ids(journal.uncollected()) == [pending, submitted, later]  # oldest first
    journal.finished(submitted, status="done")
    assert ids(journal.uncollected()) == [pending, later]


def test_lineage_and_children(journal: Journal) -> None:
    original = add(journal, "original")
    edit = add(journal, "edit", parent_id=original)
    other = add(journal, "other edit", parent_id=original)
    edit2 = add(journal, "edit of edit", parent_id=edit)
    unrelated = add(journal, "unrelated")

    assert ids(journal.lineage(edit2)) == [original, edit, edit2]  # original first
    assert ids(journal.lineage(original)) == [original]
    assert ids(journal.children(original)) == [edit, other]
    assert ids(journal.children(edit)) == [edit2]
    assert journal.children(unrelated) == []

    journal._db.execute("UPDATE jobs SET parent_id = ? WHERE id = ?", (edit2, original))  # a cycle
    assert ids(journal.lineage(edit2)) == [original, edit, edit2]
    journal._db.execute("UPDATE jobs SET parent_id = ? WHERE id = ?", (unrelated, unrelated))  # its own parent
    assert ids(journal.lineage(unrelated)) == [unrelated]
    with pytest.raises(JournalError, match="@12345"):
        journal.lineage(12345)


def test_delete_unlinks_children(journal: Journal) -> None:
    parent = add(journal, "parent")
    child = add(journal, "child", parent_id=parent)
    journal.delete(parent)
    assert journal.count() == 1 and journal.get(child).parent_id is None
    with pytest.raises(JournalError):
        journal.get(parent)


def test_spent(journal: Journal) -> None:
    """Spend is the ledger's: by kernel (the row's session when nothing was reserved) and by the folder's day (the
    day money was committed, whatever a row's created time says)."""
    assert journal.spent() == 0.0
    old = add(journal, "old", cost=0.08, session="s1")
    add(journal, "new", cost=0.04, session="s1")
    add(journal, "other", cost=0.16, session="s2")
    add(journal, "failed", status="failed", session="s2")
    add(journal, "pending", status="pending", session="s1")
    set_created(journal, old, time.time() - 3 * DAY)
    today, zone = journal.today()
    assert zone == "UTC" and today == time.strftime("%Y-%m-%d", time.gmtime())
    assert journal.spent() == pytest.approx(0.28)
    assert journal.spent(kernel="s1") == pytest.approx(0.12)
    assert journal.spent(kernel="s2") == pytest.approx(0.16)
    assert journal.spent(kernel="none") == 0.0
    assert journal.spent(day=today) == pytest.approx(0.28)
    assert journal.spent(day=today, kernel="s1") == pytest.approx(0.12)
    assert journal.spent(day="2000-01-01") == 0.0


# -- migrations -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_older_journal_is_migrated(tmp_path: Path, version: int) -> None:
    """A file left by an older kontext_nb (user_version < SCHEMA_VERSION) is migrated on open."""
    fresh = Journal(tmp_path / "fresh")
    fresh.close()
    folder = tmp_path / "old"
    folder.mkdir()
    db = sqlite3.connect(folder / DB_NAME)
    db.executescript("CREATE TABLE scratch (x); DROP TABLE scratch;")  # a real, non-empty SQLite file
    for script in MIGRATIONS[:version]:
        db.executescript(script)
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()
    assert (folder / DB_NAME).stat().st_size > 0 and user_version(folder / DB_NAME) == version

    journal = Journal(folder)
    try:
        assert journal._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        job = add(journal, "after migration", seed=3, tags=("t",))
        assert journal.get(job).seed == 3 and ids(journal.search(tag="t")) == [job]
    finally:
        journal.close()
    assert user_version(folder / DB_NAME) == SCHEMA_VERSION
    assert schema(folder / DB_NAME) == schema(fresh.path)


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_newer_journal_is_refused_and_left_untouched(tmp_path: Path, mode: str) -> None:
    """A journal from a newer kontext_nb: a one-line error asking for an upgrade, the file byte for byte as it was."""
    path = tmp_path / DB_NAME
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA journal_mode = {mode}")
    db.executescript("CREATE TABLE jobs (id INTEGER PRIMARY KEY, future TEXT); INSERT INTO jobs VALUES (1, 'x');")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = path.read_bytes()

    with pytest.raises(JournalError) as info:
        Journal(tmp_path)
    message = str(info.value)
    assert "upgrade kontext_nb" in message and str(SCHEMA_VERSION + 1) in message and "\n" not in message
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.corrupt-*"))  # a newer journal is not "corrupt"


# -- corrupt and unusable files -------------------------------------------------------------
def test_garbage_file_is_moved_aside_and_a_new_journal_starts(tmp_path: Path) -> None:
    garbage = b"this is not a database\x00\xff" * 400 + os.urandom(4096)
    (tmp_path / DB_NAME).write_bytes(garbage)

    with pytest.raises(JournalError) as info:
        Journal(tmp_path)
    message = str(info.value)
    assert "moved aside" in message and "\n" not in message
    aside = list(tmp_path.glob(f"{DB_NAME}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage
    assert aside[0].name in message

    journal = Journal(tmp_path)
    try:
        assert journal.count() == 0
        assert journal._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        add(journal, "fresh start")
        assert journal.count() == 1
    finally:
        journal.close()
    assert aside[0].read_bytes() == garbage


def test_two_corrupt_files_in_the_same_second_are_both_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Moving a second corrupt journal aside never overwrites the first one moved aside."""
    monkeypatch.setattr(journal_module.time, "strftime", lambda *args: "20260101-120000")
    first, second = b"first garbage " * 300, b"second garbage " * 300
    (tmp_path / DB_NAME).write_bytes(first)
    with pytest.raises(JournalError):
        Journal(tmp_path)
    (tmp_path / DB_NAME).write_bytes(second)
    with pytest.raises(JournalError):
        Journal(tmp_path)
    held = list(files_in(tmp_path).values())
    assert first in held, "the first corrupt journal was overwritten"
    assert second in held


def test_truncated_journal_never_loses_its_bytes(tmp_path: Path) -> None:
    """Half a real journal: SQLite may refuse it (moved aside) or open it, but the bytes stay on disk."""
    journal = Journal(tmp_path)
    for i in range(300):
        add(journal, f"a long prompt number {i} " + "x" * 200, seed=i, files=(f"images/{i}.png",))
    journal.close()
    assert {p.name for p in tmp_path.iterdir()} == {DB_NAME}  # checkpointed: all of it in the main file
    whole = (tmp_path / DB_NAME).read_bytes()
    half = whole[: len(whole) // 2]
    (tmp_path / DB_NAME).write_bytes(half)

    try:
        reopened = Journal(tmp_path)
    except JournalError as exc:
        assert "moved aside" in str(exc) and "\n" not in str(exc)
        assert any(p.read_bytes() == half for p in tmp_path.glob(f"{DB_NAME}.corrupt-*"))
        fresh = Journal(tmp_path)
        assert fresh.count() == 0
        fresh.close()
    else:
        with contextlib.suppress(sqlite3.DatabaseError):  # SQLite may find the damage only when reading
            reopened.search()
        reopened.close()
    assert half in files_in(tmp_path).values()


def test_unwritable_runs_folder(tmp_path: Path) -> None:
    """A runs folder that cannot be made: a one-line JournalError naming it."""
    if os.geteuid() == 0:  # root writes through chmod: a folder under a regular file fails for everyone
        (tmp_path / "afile").write_text("not a folder")
        blocked = tmp_path / "afile" / "runs"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        blocked = locked / "runs"
    try:
        with pytest.raises(JournalError) as info:
            Journal(blocked)
    finally:
        if os.geteuid() != 0:
            (tmp_path / "locked").chmod(0o700)
    message = str(info.value)
    assert str(blocked.resolve()) in message and "\n" not in message


def test_runs_folder_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "runs"
    target.write_bytes(b"a file, not a folder")
    with pytest.raises(JournalError) as info:
        Journal(target)
    assert str(target.resolve()) in str(info.value)
    assert target.read_bytes() == b"a file, not a folder"


# -- processes and threads at once ----------------------------------------------------------
WORKERS, CYCLES = 3, 200


def _hammer(folder: str, worker: int, cycles: int, start: threading.Barrier) -> None:
    """One process: open the journal and run create, submitted, finished as fast as it can."""
    try:
        journal = Journal(folder)
        start.wait(timeout=60)
        for i in range(cycles):
            job = journal.create(endpoint=T2I, arguments={"prompt": f"w{worker} c{i}", "seed": i}, session=f"w{worker}")
            journal.submitted(job, f"req-{worker}-{i}")
            journal.finished(job, status="done", cost=0.01, num_images=1, files=[f"images/{worker}-{i}.png"])
        journal.close()
    except BaseException:
        Path(folder, f"error-{worker}.txt").write_text(traceback.format_exc())
        raise


def _run_processes(folder: Path, workers: int, cycles: int, reader: Journal | None) -> None:
    """Start the workers at once (spawn), read while they write, and check they all exited cleanly."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(workers + 1)
    procs = [ctx.Process(target=_hammer, args=(str(folder), w, cycles, start)) for w in range(workers)]
    for p in procs:
        p.start()
    try:
        start.wait(timeout=60)
        reads = 0
        while any(p.is_alive() for p in procs):
            if reader is not None:
                found = reader.search(status="done", limit=50)
                assert all(r.status == "done" for r in found)
                reader.count()
                reads += 1
            else:
                time.sleep(0.01)
        if reader is not None:
            assert reads > 0
    finally:
        for p in procs:
            p.join(timeout=120)
            if p.is_alive():
                p.kill()
    errors = "".join(p.read_text() for p in folder.glob("error-*.txt"))
    assert [p.exitcode for p in procs] == [0] * workers, errors


def _check_all_done(journal: Journal, workers: int, cycles: int) -> None:
    total = workers * cycles
    assert journal.count() == total
    records = journal.search()
    assert len(records) == total and len({r.id for r in records}) == total
    assert {r.status for r in records} == {"done"}
    assert {r.request_id for r in records} == {f"req-{w}-{i}" for w in range(workers) for i in range(cycles)}
    assert journal.spent() == pytest.approx(0.01 * total)
    assert journal._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_processes_write_at_once(tmp_path: Path) -> None:
    """Several kernels on one runs folder: no "database is locked", nothing lost, the file intact."""
    journal = Journal(tmp_path)
    try:
        _run_processes(tmp_path, WORKERS, CYCLES, reader=journal)
        _check_all_done(journal, WORKERS, CYCLES)
    finally:
        journal.close()


@pytest.mark.slow
def test_processes_open_a_new_folder_at_once(tmp_path: Path) -> None:
    """Processes racing to create and migrate the same new journal all succeed."""
    folder = tmp_path / "new"
    _run_processes(folder, 3, 20, reader=None)
    journal = Journal(folder)
    try:
        _check_all_done(journal, 3, 20)
        assert journal._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        journal.close()


def test_threads_share_one_journal(journal: Journal) -> None:
    """One Journal used from many threads at once: a connection per thread, no errors, nothing lost."""
    threads, cycles = 8, 40
    start = threading.Barrier(threads)
    connections: list[sqlite3.Connection] = []
    lock = threading.Lock()

    def work(worker: int) -> list[int]:
        start.wait(timeout=30)
        with lock:
            connections.append(journal._db)
        made = []
        for i in range(cycles):
            job = journal.create(endpoint=T2I, arguments={"prompt": f"t{worker} {i}", "seed": i}, session=f"t{worker}")
            journal.submitted(job, f"req-{worker}-{i}")
            journal.finished(job, status="done", cost=0.01)
            assert journal.get(job).status == "done"
            journal.search(limit=5)
            made.append(job)
        journal.close()
        return made

    with ThreadPoolExecutor(threads) as pool:
        made = [job for jobs in pool.map(work, range(threads)) for job in jobs]
    assert len(made) == len(set(made)) == threads * cycles
    assert len({id(c) for c in connections}) == threads  # each thread had a connection of its own
    assert journal.count() == threads * cycles
    assert {r.status for r in journal.search()} == {"done"}
    assert all(len(journal.search(session=f"t{w}")) == cycles for w in range(threads))
    assert journal.spent() == pytest.approx(0.01 * threads * cycles)
