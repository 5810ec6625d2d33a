"""The caps, read from the spend ledger only: the session cap belongs to the kernel, the daily cap to the folder.

``budget_session`` is what one kernel (one ``Session``) may spend, whatever runs folder it writes to: the Session
keeps one ``Kernel`` (its id and every runs folder it has used) across ``runs_dir`` changes, every ledger entry
names the kernel whose spending it is, and the cap adds this kernel's entries in every folder it has used.
``budget_daily`` is what every kernel on one runs folder (on a journal_url: on every host naming it) may spend on the
folder's day (its ``budget_timezone``, UTC when none is kept). Both are checked inside the write transaction that
reserves (``Journal.create_all``), and the kernel's lock keeps two of its own threads from checking two folders at
once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from ..endpoints import format_cost
from ..errors import BudgetError
from . import ledger
from .db import DB_NAME, Holdings, Journal
from .heartbeat import host_id


def new_kernel_id() -> str:
    """'host:pid:random': owner_alive() reads the host and pid back (the host: heartbeat.host_id())."""
    return f"{host_id()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Kernel:
    """One kernel's identity for money: its id (every ledger entry it reserves names it), the runs folders it has
    used, and one lock around its reservations."""

    id: str = field(default_factory=new_kernel_id)
    folders: set[Path] = field(default_factory=set)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _seen: dict[Path, tuple[float, float]] = field(default_factory=dict, repr=False)
    _active: dict[Path, set[int]] = field(default_factory=dict, repr=False)

    def active_in(self, folder: Path) -> set[int]:
        """The jobs this kernel is collecting in one runs folder (one set, however often it switches folders: a job
        still in flight from before a switch is never taken for one left behind)."""
        return self._active.setdefault(folder, set())

    def elsewhere(self, here: Path) -> tuple[float, float]:
        """(spent, held) by this kernel in every runs folder it has used but ``here``. A folder that cannot be read
        now (moved, unmounted) counts what was last read there: spend never goes down."""
        spent = held = 0.0
        for folder in sorted(self.folders - {here}):
            s, h = self._seen.get(folder, (0.0, 0.0))
            try:  # read-only: reading another folder's spend never migrates, salvages or creates anything there
                db = sqlite3.connect(f"{(folder / DB_NAME).as_uri()}?mode=ro", uri=True, timeout=30.0)
                try:
                    s, h = ledger.totals(db, kernel=self.id)
                finally:
                    db.close()
            except sqlite3.Error:
                pass
            s = max(s, self._seen.get(folder, (0.0, 0.0))[0])
            self._seen[folder] = (s, h)
            spent, held = spent + s, held + h
        return spent, held


def refuse_overruns(holdings: Holdings) -> None:
    """Nothing is sent while a settlement above its reservation has not been seen by the user."""
    found = holdings.overruns()
    if found:
        jobs = ", ".join(f"@{e.job_id} (+{format_cost(e.amount)})" for e in found)
        raise BudgetError(
            f"refused, nothing was sent: job{'s' if len(found) != 1 else ''} {jobs} cost more than was reserved for "
            "them (kontext_nb's upper bound was wrong: please report it); look at them, then "
            "kx.budget(acknowledge=True) to go on"
        )


def cap_guard(
    settings: Settings, kernel: Kernel, folder: Path, cost: float, description: str
) -> Callable[[Holdings], None]:
    """The budget rule, run inside the journal's write transaction: spent + reserved + this run must stay within
    the kernel's session cap and the runs folder's daily cap, or nothing of the run is sent."""

    def guard(holdings: Holdings) -> None:
        refuse_overruns(holdings)
        for label, cap, setting in (
            ("this session's", settings.budget_session, "budget_session"),
            (f"today's ({holdings.today()}, {holdings.zone()})", settings.budget_daily, "budget_daily"),
        ):
            if cap is None:
                continue
            if setting == "budget_session":
                spent, reserved = holdings.of(kernel=kernel.id)
                other_spent, other_held = kernel.elsewhere(folder)
                spent, reserved = spent + other_spent, reserved + other_held
            else:
                spent, reserved = holdings.of(day=holdings.today())
            if spent + reserved + cost > cap + 1e-9:
                raise BudgetError(
                    f"{description} would cost {format_cost(cost)}, but {label} cap is {format_cost(cap)} and "
                    f"{format_cost(spent)} is spent + {format_cost(reserved)} reserved for jobs in flight: "
                    f"nothing was sent (raise {setting} to go on)"
                )

    return guard


def spending(settings: Settings, kernel: Kernel, journal: Journal) -> dict[str, Any]:
    """What ``kx.budget()`` says: this kernel's, today's and all-time spend and holdings, caps, what is left, the
    day and time zone "today" means, and overruns waiting for acknowledgement."""
    s = settings
    holdings = journal.holdings()
    day, zone = holdings.today(), holdings.zone()
    session, session_held = holdings.of(kernel=kernel.id)
    other_spent, other_held = kernel.elsewhere(journal.folder)
    session, session_held = session + other_spent, session_held + other_held
    today, today_held = holdings.of(day=day)

    def dollars(x: float | None) -> float | None:  # sums of prices are cents: no 0.0200000000000018
        return None if x is None else round(x, 4)

    return {
        "session": dollars(session),
        "today": dollars(today),
        "total": dollars(holdings.of()[0]),
        "session_reserved": dollars(session_held),
        "today_reserved": dollars(today_held),
        "session_cap": s.budget_session,
        "daily_cap": s.budget_daily,
        "session_left": None
        if s.budget_session is None
        else dollars(max(0.0, s.budget_session - session - session_held)),
        "daily_left": None if s.budget_daily is None else dollars(max(0.0, s.budget_daily - today - today_held)),
        "confirm_above": s.confirm_above,
        "day": day,
        "timezone": zone,
        "overruns": [f"@{e.job_id}" for e in holdings.overruns()],
    }
