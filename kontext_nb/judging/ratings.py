"""Star ratings: kept in the journal and written into the image files' embedded metadata."""

from __future__ import annotations

from ..errors import ValidationError
from ..journal import folder as store
from ..journal.db import JobRecord, Journal

MAX_STARS = 5


def check_stars(stars: object) -> int:
    """0-5 as an int (0 clears), or a one-line error naming the value."""
    if isinstance(stars, bool) or not isinstance(stars, int) or not 0 <= stars <= MAX_STARS:
        raise ValidationError(
            f"stars={stars!r} is not allowed: give a whole number from 0 to 5 (0 clears)", field="stars"
        )
    return stars


def rate(journal: Journal, record: JobRecord, stars: object) -> int | None:
    """Give a job 1-5 stars (0 clears); returns the rating now kept (None when cleared)."""
    value = check_stars(stars) or None
    if record.status != "done":
        raise ValidationError(f"{record.ref} cannot be rated: its status is {record.status} (only finished jobs)")
    journal.set_rating(record.id, value)
    for relative in record.files:
        try:
            store.update_metadata(journal.folder, relative, {"rating": value})
        except OSError:  # the file is gone or read-only: the journal still has the rating
            continue
    return value
