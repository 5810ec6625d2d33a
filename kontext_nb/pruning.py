"""Deleting jobs and pruning the runs folder, without touching what is still on its way."""

from __future__ import annotations

import time
from pathlib import Path

from .journal import FINAL, JobRecord, Journal


def _still_used(journal: Journal, files: tuple[str, ...], except_id: int) -> set[str]:
    """Files another row also lists (a cached answer shares its original's files)."""
    used: set[str] = set()
    for record in journal.search():
        if record.id != except_id:
            used.update(set(record.files) & set(files))
    return used


def delete_record(journal: Journal, record: JobRecord, *, files: bool = True) -> None:
    """Forget a job; with ``files``, also delete its images unless another job shares them."""
    keep = _still_used(journal, record.files, record.id) if files else set(record.files)
    journal.delete(record.id)
    for name in record.files:
        if name not in keep:
            (journal.folder / name).unlink(missing_ok=True)


def prune(journal: Journal, *, older_than_days: float | None = None, max_bytes: int | None = None) -> int:
    """Delete finished jobs older than a number of days, then the oldest until the images fit in
    ``max_bytes``. Jobs still pending or uncollected are never pruned. Returns how many went."""
    deleted = 0
    if older_than_days is not None:
        cutoff = time.time() - older_than_days * 86400
        for record in _finished_oldest_first(journal):
            if record.created < cutoff:
                delete_record(journal, record)
                deleted += 1
    if max_bytes is not None:
        images = Path(journal.folder, "images")
        for record in _finished_oldest_first(journal):
            if _folder_size(images) <= max_bytes:
                break
            delete_record(journal, record)  # measured again after each: shared files go with their last row
            deleted += 1
    return deleted


def _finished_oldest_first(journal: Journal) -> list[JobRecord]:
    return [r for r in reversed(journal.search()) if r.status in FINAL]


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*") if f.is_file())
