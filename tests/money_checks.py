"""The money invariants, checked from the outside: what the sandbox billed against what kontext_nb says.

Shared by tests/test_money_cases.py, tests/test_money_machine.py and bench/money_soak.py. Only public faces are
read: the sandbox's control API (its bill log), ``kx``/``Session`` calls, and the files in the runs folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from canary import leaks  # tests/canary.py
from waiting import wait_for

from kontext_nb.session import Session

CENT = 1e-6


def settled_bills(sb: Any, timeout: float = 60) -> dict[str, Any]:
    """The sandbox's bill log once nothing is queued or running there (a job in flight may still be billed)."""
    wait_for(lambda: sb.stats()["in_queue"] + sb.stats()["in_progress"] == 0, timeout=timeout, interval=0.02)
    bills: dict[str, Any] = sb.bills()
    return bills


def billed(sb: Any) -> float:
    return float(settled_bills(sb)["total"])


def within_caps(billed_dollars: float, caps: Iterable[float | None], what: str = "") -> None:
    """Billed never above any cap that held throughout."""
    for cap in caps:
        if cap is not None:
            assert billed_dollars <= cap + CENT, f"billed ${billed_dollars:.2f} under a ${cap:.2f} cap {what}"


def spent_at_least_billed(session: Session, billed_dollars: float, what: str = "") -> None:
    """The journal's spend (today's spent + reserved, for the whole runs folder) is never below what fal billed."""
    b = session.budget()
    said = float(b["today"] or 0) + float(b.get("today_reserved") or 0)
    assert said + CENT >= billed_dollars, (
        f"the journal says ${said:.2f} for today but ${billed_dollars:.2f} was billed {what}"
    )


def journal_request_ids(session: Session) -> dict[str, Any]:
    """Every job the runs folder's journal shows, by fal's request id."""
    return {r.request_id: r for r in session.history() if r.request_id}


def findable(session: Session, bills: dict[str, Any], forgotten: set[str] = frozenset(), what: str = "") -> None:  # type: ignore[assignment]
    """Every billed request is in the journal with its image files on disk (or was deleted by the user, or
    is still being saved: its row says so and kx.resume() collects it)."""
    rows = journal_request_ids(session)
    for bill in bills["bills"]:
        rid = bill["request_id"]
        if rid in forgotten:
            continue
        assert rid in rows, f"billed request {rid} is in no row of the journal {what}"
        record = rows[rid]
        if record.status == "done":
            for path in record.paths:
                assert path.is_file(), f"billed request {rid}: its file {path.name} is missing {what}"
        else:
            assert record.status in ("submitted", "unconfirmed", "running"), (
                f"billed request {rid} is {record.status} in the journal, though fal completed it {what}"
            )


def database_rows(url: str | None) -> list[str]:
    """Every row of a PostgreSQL database (a journal, a proxy's state) as text, to search for a secret as the files
    of a SQLite one are searched (None, a SQLite journal in the runs folder: nothing here)."""
    if url is None:
        return []
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        return [str(row) for table in tables for (row,) in conn.execute(f'SELECT t::text FROM "{table}" t')]


def key_nowhere(folders: Iterable[Path], texts: Iterable[str], key: str, what: str = "") -> None:
    """The key, in any of its forms, in no file under the folders and in no output."""
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")) if Path(folder).exists() else []:
            if path.is_file():
                found = leaks(path.read_bytes(), key)
                assert not found, f"the key ({', '.join(found)}) is in {path.name} {what}"
    for text in texts:
        found = leaks(text, key)
        assert not found, f"the key ({', '.join(found)}) is in an output {what}"
