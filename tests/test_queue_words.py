"""Issue 22 point 4: a queued job's place is said in words, one way everywhere ("queue position 0" meant "next")."""

from __future__ import annotations

import re
import time

from hypothesis import given
from hypothesis import strategies as st

from kontext_nb.jobs import Job, JobStatus, queue_place
from kontext_nb.views.status import status_text, usual_time

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


@given(st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), max_size=40))
def test_the_usual_time_is_the_middle_half_of_earlier_runs(times: list[float]) -> None:
    """Issue 22 point 6: 'usually 6–9 s' from the journal's timings; nothing said from fewer than three runs."""
    said = usual_time(times)
    if len(times) < 3:
        assert said == ""
        return
    numbers = [int(n) for n in re.findall(r"\d+", said)]
    assert said.startswith("usually") and said.endswith(" s") and 1 <= len(numbers) <= 2
    assert numbers == sorted(numbers) and max(1, round(min(times))) <= numbers[0]
    assert numbers[-1] <= max(1, round(max(times)))


def test_usual_time_examples() -> None:
    assert usual_time([6.2, 7.0, 8.9, 9.1]) == "usually 7–9 s"
    assert usual_time([5.0, 5.1, 4.9]) == "usually about 5 s"
    assert usual_time([5.0, 6.0]) == ""
