"""Deleting jobs and pruning the runs folder, without touching what is still on its way.

Files are counted once per call (every row that names an image or an input), so pruning thousands of jobs reads
the journal once, not once per file. A file goes with the last row that names it, its thumbnail with it. A journal
shared by hosts (journal_url) holds rows whose files are in other runs folders: files are counted per folder, and
prune only ever takes this runs folder's jobs.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from . import folder as runs
from .db import FINAL, JobRecord, Journal


class _Usage:
    """How many rows name each image file and each kept input."""

    def __init__(self, journal: Journal) -> None:
        records = journal.search()
        self.files = Counter((r.folder, name) for r in records for name in set(r.files))
        self.inputs = Counter((r.folder, identity) for r in records for identity in set(r.input_hashes))

    def release(self, record: JobRecord) -> list[Path]:
        """The row is going: the files no other row names (checked to lie inside its runs folder)."""
        folder = record.folder
        for name in record.files:
            runs.inside(folder, name)  # a tampered row is refused before anything is deleted
        going: list[Path] = []
        for name in set(record.files):
            self.files[(folder, name)] -= 1
            if self.files[(folder, name)] <= 0:
                going += [runs.inside(folder, name), runs.thumbnail_path(folder, name)]
        for identity in set(record.input_hashes):
            self.inputs[(folder, identity)] -= 1
            source = runs.input_source(folder, identity)
            if self.inputs[(folder, identity)] <= 0 and isinstance(source, Path):
                going.append(source)
        return going


def _remove(paths: list[Path]) -> int:
    freed = 0
    for path in paths:
        try:
            freed += path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            pass
    return freed


def delete_record(journal: Journal, record: JobRecord, *, files: bool = True) -> None:
    """Forget a job; with ``files``, also delete its images, thumbnails and inputs unless another job shares them."""
    going = _Usage(journal).release(record) if files else []
    journal.delete(record.id)
    _remove(going)


def prune(journal: Journal, *, older_than_days: float | None = None, max_bytes: int | None = None) -> int:
    """Delete finished jobs older than a number of days, then the oldest until the images fit in
    ``max_bytes``. Jobs still pending or uncollected are never pruned. Returns how many went."""
    usage = _Usage(journal)
    # oldest first; this runs folder's only (a shared journal holds other hosts' too)
    finished = [r for r in reversed(journal.search()) if r.status in FINAL and r.folder == journal.folder]
    deleted: set[int] = set()

    def drop(record: JobRecord) -> int:
        going = usage.release(record)
        journal.delete(record.id)
        deleted.add(record.id)
        images = _remove([p for p in going if p.parent.name == runs.RESULTS])
        _remove(going)  # thumbnails and inputs
        return images

    if older_than_days is not None:
        cutoff = time.time() - older_than_days * 86400
        for record in finished:
            if record.created < cutoff:
                drop(record)
    if max_bytes is not None:
        size = _folder_size(journal.folder / runs.RESULTS)
        for record in finished:
            if size <= max_bytes:
                break
            if record.id not in deleted:
                size -= drop(record)  # only images count towards max_bytes; shared files go with their last row
    return len(deleted)


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*") if f.is_file())
