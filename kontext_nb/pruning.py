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


def _size(journal: Journal, record: JobRecord) -> int:
    return sum(p.stat().st_size for p in record.paths if p.exists())


def prune(journal: Journal, *, older_than_days: float | None = None, max_bytes: int | None = None) -> int:
    """Delete finished jobs older than a number of days, then the oldest until the images fit in
    ``max_bytes``. Jobs still pending or uncollected are never pruned. Returns how many went."""
    finished = [r for r in reversed(journal.search()) if r.status in FINAL]  # oldest first
    doomed: list[JobRecord] = []
    if older_than_days is not None:
        cutoff = time.time() - older_than_days * 86400
        doomed = [r for r in finished if r.created < cutoff]
    if max_bytes is not None:
        total = sum(f.stat().st_size for f in Path(journal.folder, "images").glob("*") if f.is_file())
        total -= sum(_size(journal, r) for r in doomed)
        for record in finished:
            if total <= max_bytes:
                break
            if record not in doomed:
                doomed.append(record)
                total -= _size(journal, record)
    for record in doomed:
        delete_record(journal, journal.get(record.id))
    return len(doomed)
