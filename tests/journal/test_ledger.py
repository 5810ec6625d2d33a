"""The spend ledger (issue 20): append-only money entries that housekeeping never removes, on a real SQLite journal.

The property test drives random sequences of reserve, settle, release, unconfirmed, delete, prune, salvage and
runs-folder switches through the same cap check sessions use, and checks after every step: spend never goes down,
no cap is ever crossed, and the ledger says what a model of the money says.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from budget import examples  # tests/budget.py: KONTEXT_HYPOTHESIS=deep for the full budget
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kontext_nb.config import Settings
from kontext_nb.errors import BudgetError, ValidationError
from kontext_nb.journal import ledger
from kontext_nb.journal.caps import Kernel, cap_guard
from kontext_nb.journal.db import DB_NAME, MIGRATIONS, SCHEMA_VERSION, Journal, NewJob
from kontext_nb.journal.pruning import delete_record, prune

T2I = "fal-ai/flux-pro/kontext/max/text-to-image"


def reserve(journal: Journal, kernel: Kernel, price: float, caps: Settings | None = None) -> int:
    """One job written and its price reserved, checked against the caps in the same transaction (as _send does)."""
    row = NewJob(T2I, {"prompt": "a fox"}, session=kernel.id)
    guard = cap_guard(caps or Settings(), kernel, journal.folder, price, "1 image of max")
    kernel.folders.add(journal.folder)
    with kernel.lock:
        (job_id,) = journal.create_all([row], reserved=[price], guard=lambda h, _: guard(h))
    assert isinstance(job_id, int)
    return job_id


def test_an_existing_journal_brings_its_spend_into_the_ledger_once(tmp_path: Path) -> None:
    """Schema 4 -> 7: every row's cost becomes a settlement, its reservation a hold; opening again adds nothing."""
    folder = tmp_path / "old"
    folder.mkdir()
    db = sqlite3.connect(folder / DB_NAME)
    for script in MIGRATIONS[:4]:
        db.executescript(script)
    rows = [("done", 0.08, 0.0, "k1"), ("unconfirmed", 0.08, 0.0, "k1"), ("submitted", 0.0, 0.08, "k2")]
    for status, cost, reserved, session in rows:
        db.execute(
            "INSERT INTO jobs (created, updated, status, endpoint, prompt, arguments, session, cost, reserved)"
            " VALUES (0, 0, ?, ?, 'p', '{}', ?, ?, ?)",
            (status, T2I, session, cost, reserved),
        )
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()
    for _ in range(2):
        journal = Journal(folder)
        assert journal.held() == (pytest.approx(0.16), pytest.approx(0.08))
        assert journal.held(kernel="k1") == (pytest.approx(0.16), 0.0)
        assert [e.kind for e in journal.ledger_entries()] == ["reserve", "settle", "unconfirmed"]
        assert {e.day for e in journal.ledger_entries()} == {"1970-01-01"}  # the day of each job's row, in UTC
        journal.close()
    assert SCHEMA_VERSION == 8  # 5 billable units, 6 unsent, 7 the ledger, 8 host and folder


def test_delete_prune_and_salvage_keep_every_entry(tmp_path: Path) -> None:
    journal, kernel = Journal(tmp_path / "runs"), Kernel()
    done = reserve(journal, kernel, 0.08)
    journal.finished(done, status="done", cost=0.08, num_images=1)
    running = reserve(journal, kernel, 0.08)
    delete_record(journal, journal.get(running))  # deleted while it runs: its reservation stays
    assert journal.held() == (pytest.approx(0.08), pytest.approx(0.08))
    journal.finished(running, status="done", cost=0.06, num_images=1)  # it ends: settled although its row is gone
    assert prune(journal, older_than_days=0) == 1 and journal.count() == 0
    before = journal.ledger_entries()
    journal._salvaged(sqlite3.DatabaseError("test: a damaged page"))
    assert journal.ledger_entries() == before and journal.held() == (pytest.approx(0.14), 0.0)
    later = reserve(journal, kernel, 0.04)
    assert later > running  # a job id the ledger names is never given again (its money would look like the new one's)
    journal.close()


def test_spend_never_goes_down_when_an_unconfirmed_job_is_settled(tmp_path: Path, journal_url: str | None) -> None:
    journal, kernel = Journal(tmp_path / "runs", journal_url), Kernel()
    job = reserve(journal, kernel, 0.08)
    journal.unconfirmed(job, error="reply lost")
    assert journal.held() == (pytest.approx(0.08), 0.0)
    journal.finished(job, status="done", cost=0.05)  # found later, cheaper: spend stays at what was counted
    assert journal.held() == (pytest.approx(0.08), 0.0) and journal.overruns() == []


def test_an_overrun_is_kept_until_acknowledged(tmp_path: Path, journal_url: str | None) -> None:
    journal, kernel = Journal(tmp_path / "runs", journal_url), Kernel()
    job = reserve(journal, kernel, 0.035)
    assert journal.finished(job, status="done", cost=0.14) == pytest.approx(0.105)
    (entry,) = journal.overruns()
    assert (entry.job_id, entry.amount) == (job, pytest.approx(0.105))
    with pytest.raises(BudgetError, match=rf"@{job} \(\+\$0.1\d\) cost more than was reserved"):
        reserve(journal, kernel, 0.01)
    assert journal.acknowledge(kernel.id) == 1 and journal.overruns() == []
    reserve(journal, kernel, 0.01)
    assert journal.held() == (pytest.approx(0.14), pytest.approx(0.01))


def test_the_budget_timezone_is_the_folders(tmp_path: Path, journal_url: str | None) -> None:
    """The first zone set is kept in the folder; a kernel asking for another is told in one line, and counts the
    folder's day."""
    journal = Journal(tmp_path / "runs", journal_url)
    assert journal.today()[1] == "UTC"
    assert journal.agree_zone("Pacific/Kiritimati") == ("Pacific/Kiritimati", None)
    zone, notice = journal.agree_zone("America/New_York")
    assert zone == "Pacific/Kiritimati" and notice is not None and "\n" not in notice
    assert "counts budget_daily's days in Pacific/Kiritimati" in notice and "'America/New_York'" in notice
    assert journal.today() == (ledger.day_of(__import__("time").time(), "Pacific/Kiritimati"), "Pacific/Kiritimati")
    with pytest.raises(ValidationError, match=r"budget_timezone='Mars/Olympus' is not a time zone: give an IANA"):
        ledger.check_zone("Mars/Olympus")
    journal.close()


def test_a_jobs_money_belongs_to_the_day_it_was_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal_url: str | None
) -> None:
    """Midnight in the folder's zone starts a new daily cap; a job sent before it and settled after stays on the
    day it was sent."""
    import datetime as dt

    journal, kernel = Journal(tmp_path / "runs", journal_url), Kernel()
    journal.agree_zone("America/New_York")
    midnight = dt.datetime(2026, 12, 8, tzinfo=ZoneInfo("America/New_York")).timestamp()
    caps = Settings(budget_daily=0.10)
    monkeypatch.setattr(ledger, "clock", lambda: midnight - 1)
    late = reserve(journal, kernel, 0.08, caps)
    with pytest.raises(BudgetError, match=r"today's \(2026-12-07, America/New_York\) cap is \$0.10"):
        reserve(journal, kernel, 0.08, caps)
    monkeypatch.setattr(ledger, "clock", lambda: midnight + 1)
    journal.finished(late, status="done", cost=0.08)
    early = reserve(journal, kernel, 0.08, caps)  # a new day in New York (it was 05:00 UTC already)
    assert journal.held(day="2026-12-07") == (pytest.approx(0.08), 0.0)
    assert journal.held(day="2026-12-08") == (0.0, pytest.approx(0.08)) and early > late
    journal.close()


def test_kx_budget_says_which_day_and_zone(tmp_path: Path) -> None:
    from kontext_nb.session import Session

    notices: list[str] = []
    first = Session(Settings(runs_dir=str(tmp_path / "runs"), budget_timezone="Asia/Tokyo"), notice=notices.append)
    second = Session(Settings(runs_dir=str(tmp_path / "runs"), budget_timezone="Europe/Paris"), notice=notices.append)
    try:
        assert first.budget()["timezone"] == "Asia/Tokyo" and notices == []
        assert second.budget()["timezone"] == "Asia/Tokyo" and len(notices) == 1 and "Europe/Paris" in notices[0]
        assert second.budget()["day"] == ledger.day_of(__import__("time").time(), "Asia/Tokyo")
    finally:
        first.close()
        second.close()


def test_a_kernels_session_cap_spans_runs_folders(tmp_path: Path) -> None:
    """The property test's counterexample when the cap read only the folder in use: A, then B, under $0.10."""
    a, b, kernel = Journal(tmp_path / "A"), Journal(tmp_path / "B"), Kernel()
    caps = Settings(budget_session=0.10)
    reserve(a, kernel, 0.08, caps)
    with pytest.raises(BudgetError, match=r"this session's cap is \$0.10 and \$0.00 is spent \+ \$0.08 reserved"):
        reserve(b, kernel, 0.08, caps)
    assert reserve(b, Kernel(), 0.08, caps) > 0  # another kernel's session cap is its own
    a.close()
    b.close()


PRICES = st.sampled_from([0.02, 0.035, 0.08])


class LedgerMachine(RuleBasedStateMachine):
    """Random housekeeping and money on real journals (two runs folders, one kernel with both caps)."""

    @initialize(session_cap=st.sampled_from([0.1, 0.2]), daily_cap=st.sampled_from([0.1, 0.2, 1.0]))
    def start(self, session_cap: float, daily_cap: float) -> None:
        memory = "/dev/shm" if Path("/dev/shm").is_dir() else None  # real SQLite files, without waiting on a disk
        self.root = Path(tempfile.mkdtemp(prefix="kx-ledger-", dir=memory))
        self.journals = [Journal(self.root / name) for name in ("A", "B")]
        self.here = 0
        self.kernel = Kernel()
        self.caps = Settings(budget_session=session_cap, budget_daily=daily_cap)
        self.open: dict[tuple[int, int], float] = {}  # (folder, job) -> price held
        self.spent = [0.0, 0.0]
        self.last_total = 0.0

    @property
    def journal(self) -> Journal:
        return self.journals[self.here]

    @rule(prices=st.lists(PRICES, min_size=1, max_size=3), switch=st.booleans())
    def reserve(self, prices: list[float], switch: bool) -> None:
        """A few sends (the runs folder switched first, or not)."""
        if switch:
            self.here = 1 - self.here
        for price in prices:
            try:
                job = reserve(self.journal, self.kernel, price, self.caps)
            except BudgetError:
                continue
            self.open[(self.here, job)] = price

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data(), share=st.sampled_from([0.0, 0.5, 1.0]))
    def settle(self, data: st.DataObject, share: float) -> None:
        folder, job = data.draw(st.sampled_from(sorted(self.open)))
        price = self.open.pop((folder, job))
        self.journals[folder].finished(job, status="done", cost=round(price * share, 4), num_images=1)
        self.spent[folder] += round(price * share, 4)

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data(), how=st.sampled_from(["failed", "cancelled", "unconfirmed"]))
    def end_without_images(self, data: st.DataObject, how: str) -> None:
        folder, job = data.draw(st.sampled_from(sorted(self.open)))
        price = self.open.pop((folder, job))
        if how == "unconfirmed":
            self.journals[folder].unconfirmed(job, error="the reply was lost")
            self.spent[folder] += price
        else:
            self.journals[folder].finished(job, status=how, error="x")

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        rows = self.journal.search()
        if rows:
            delete_record(self.journal, data.draw(st.sampled_from(rows)))

    @rule()
    def prune_everything_finished(self) -> None:
        prune(self.journal, older_than_days=0)

    @rule()
    def salvage(self) -> None:
        self.journal._salvaged(sqlite3.DatabaseError("test: a damaged page"))

    @invariant()
    def spend_never_goes_down_and_is_what_was_spent(self) -> None:
        if not hasattr(self, "journals"):
            return
        totals = [j.held() for j in self.journals]
        spent = sum(s for s, _ in totals)
        assert spent >= self.last_total - 1e-9
        self.last_total = spent
        for (s, h), model_spent, folder in zip(totals, self.spent, (0, 1), strict=True):
            assert s == pytest.approx(model_spent, abs=1e-9)
            assert h == pytest.approx(sum(p for (f, _), p in self.open.items() if f == folder), abs=1e-9)

    @invariant()
    def caps_are_never_crossed(self) -> None:
        if not hasattr(self, "journals"):
            return
        mine = [j.held(kernel=self.kernel.id) for j in self.journals]
        assert sum(s + h for s, h in mine) <= (self.caps.budget_session or 0) + 1e-9
        for j in self.journals:
            spent, held = j.held(day=j.today()[0])
            assert spent + held <= (self.caps.budget_daily or 0) + 1e-9

    def teardown(self) -> None:
        for j in getattr(self, "journals", []):
            j.close()
        if hasattr(self, "root"):
            shutil.rmtree(self.root, ignore_errors=True)


LedgerMachine.TestCase.settings = settings(
    max_examples=examples(ci=10, deep=30),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_no_sequence_of_operations_breaks_the_ledger = LedgerMachine.TestCase
