"""Issue 22 point 4: a queued job's place is said in words, one way everywhere ("queue position 0" meant "next")."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from kontext_nb.jobs import Job, JobStatus, queue_place
from kontext_nb.views.status import status_text

positions = st.one_of(st.none(), st.integers(min_value=0, max_value=10_000))


@given(positions)
def test_every_status_line_says_the_place_the_same_way(position: int | None) -> None:
    words = queue_place(position)
    assert "position" not in words
    assert words == ("waiting to be sent" if position is None else "next in fal's queue" if position == 0 else
                     f"{position} ahead in fal's queue")  # fmt: skip
    status = JobStatus("queued", position=position)
    assert words in str(status)
    job = Job("fal-ai/flux-pro/kontext/max/text-to-image", {}, lambda job: False)
    job.update_status("queued", position=position)
    assert words in status_text([job], time.time())


def test_position_zero_is_next() -> None:
    assert queue_place(0) == "next in fal's queue" and queue_place(1) == "1 ahead in fal's queue"
