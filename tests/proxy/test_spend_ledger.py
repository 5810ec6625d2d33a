"""The proxy's spend ledger (proxy/spend.py): quotas are sums of append-only reserve/settle/release entries, checked
and reserved in one write transaction, whichever instance (here: Classroom handle) admits.

Both backends: a SQLite state folder and a fresh PostgreSQL database."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kontext_nb.proxy import ProxyServer
from kontext_nb.proxy.classroom import Classroom, StateError, today
from kontext_nb.proxy.limits import Limits
from kontext_nb.sandbox import SandboxServer

from .conftest import auth

SESSION = "s1"


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "state") if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
def rooms(state: str) -> Iterator[tuple[Classroom, Classroom]]:
    """Two handles on one state: what two instances hold."""
    a, b = Classroom(state), Classroom(state)
    yield a, b
    a.close()
    b.close()


def job(student: str, images: int = 1, cost: int = 40_000) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "student": student,
        "session": SESSION,
        "day": today(),
        "endpoint": "fal-ai/flux-pro/kontext/text-to-image",
        "prompt": "x",
        "arguments": {},
        "body": {},
        "headers": {},
        "num_images": images,
        "images": images,
        "cost_reserved": cost,
        "cost": cost,
        "state": "waiting",
        "created": 0.0,
    }


def test_two_instances_admitting_at_once_never_pass_a_quota(rooms: tuple[Classroom, Classroom]) -> None:
    limits = Limits(images_per_day=13, dollars_per_session=None, jobs_in_flight=None)
    accepted: list[bool] = []

    def admit(room: Classroom) -> None:
        for _ in range(10):
            accepted.append(room.admit(job("Ada"), limits) is None)
        room.close()  # this thread's connection

    threads = [threading.Thread(target=admit, args=(rooms[k % 2],)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(accepted) == 13 and len(accepted) == 40
    assert rooms[1].student_usage("Ada", today(), SESSION).images_today == 13


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 1), st.integers(1, 3), st.integers(0, 3), st.booleans(), st.booleans()),
        max_size=12,
    )
)
def test_the_quota_is_what_the_ledger_says_through_either_handle(
    rooms: tuple[Classroom, Classroom], steps: list[tuple[int, int, int, bool, bool]]
) -> None:
    """Admit through either handle, end jobs through either (twice, as racing instances would): the counted images
    are always the model's (reserved while running, made once ended) and never above the cap."""
    student = "s-" + uuid.uuid4().hex[:8]  # one per example: the state outlives examples
    limits = Limits(images_per_day=6, dollars_per_session=None, jobs_in_flight=None)
    running: list[tuple[str, int]] = []
    counted = 0
    for handle, images, made, end_one, twice in steps:
        room = rooms[handle]
        if end_one and running:
            job_id, reserved = running.pop(0)
            ok = made > 0
            ended = room.finish(job_id, made if ok else 0, made * 40_000, ok, outcome="ok" if ok else "failed")
            assert ended
            counted += (made if ok else 0) - reserved
            if twice:  # the other instance ends it too: nothing more is counted
                assert not rooms[1 - handle].finish(job_id, 3, 120_000, True, outcome="ok")
        else:
            new = job(student, images, images * 40_000)
            fits = counted + images <= 6
            assert (room.admit(new, limits) is None) == fits
            if fits:
                running.append((new["id"], images))
                counted += images
        for either in rooms:
            assert either.student_usage(student, today(), SESSION).images_today == counted


def test_an_old_state_folders_jobs_enter_the_ledger_once_and_deleting_jobs_gives_nothing_back(tmp_path: Path) -> None:
    state = tmp_path / "state"
    room = Classroom(state)
    limits = Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None)
    ids = []
    for images in (1, 2, 3):
        new = job("Ada", images, images * 40_000)
        assert room.admit(new, limits) is None
        ids.append(new["id"])
    room.finish(ids[0], 1, 40_000, True, outcome="ok")
    room.finish(ids[1], 0, 0, False, outcome="failed")
    before = room.student_usage("Ada", today(), SESSION)
    assert (before.images_today, before.spent_micros) == (4, 160_000)  # 1 made + 3 reserved; the failed one given back
    room.close()
    with sqlite3.connect(state / "classroom.db") as db:  # a state folder from before the ledger
        db.execute("DROP TABLE ledger")
    for _ in range(2):  # filled once, from the jobs: the same counts
        again = Classroom(state)
        assert again.student_usage("Ada", today(), SESSION) == before
        again.close()
    with sqlite3.connect(state / "classroom.db") as db:
        db.execute("DELETE FROM jobs")  # the rows go (pruned, damaged): the money they counted does not
    last = Classroom(state)
    after = last.student_usage("Ada", today(), SESSION)
    assert (after.images_today, after.spent_micros) == (before.images_today, before.spent_micros)
    last.close()


def test_a_journals_database_is_refused_with_one_line(pg_url: str, tmp_path: Path) -> None:
    """The journal and the proxy both have jobs and ledger tables: the proxy asks for a database of its own."""
    from kontext_nb.journal.db import Journal

    Journal(tmp_path / "runs", pg_url).close()
    with pytest.raises(StateError) as caught:
        Classroom(pg_url)
    assert "holds a kontext_nb journal: give the proxy a database of its own" in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


def test_a_job_caught_half_sent_stays_counted_as_spent(
    state: str, make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    """An instance died during a submit: fal may have the job and bill it, so the instance that takes it over ends it
    with one line and keeps its reservation counted (an 'unconfirmed' entry), never gives it back."""
    room = Classroom(state)
    token = room.add_student("Ada")
    half = job("Ada", 2, 80_000)
    assert room.admit(half, Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None)) is None
    assert isinstance(room.claim(half["id"], "a-host-that-died:8900", None), int)  # sending when it died
    server = make_proxy(state_dir=state, session=SESSION)  # takes the dead instance's jobs over at its start
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        answer = client.get(f"{server.url}/fal-ai/flux-pro/requests/{half['id']}/status", headers=auth(token))
    assert answer.status_code == 200 and answer.json()["error_type"] == "proxy_restarted"
    assert "cannot tell whether fal received it: it still counts against your limits" in answer.json()["error"]
    usage = room.student_usage("Ada", today(), SESSION)
    assert (usage.images_today, usage.spent_micros, usage.in_flight) == (2, 80_000, 0)
    kinds = [r[0] for r in room.query("SELECT kind FROM ledger WHERE job_id = ? ORDER BY id", half["id"])]
    assert kinds == ["reserve", "unconfirmed"]
    room.close()
