"""``kontext-nb journal copy SOURCE TARGET``: a SQLite journal (a runs folder, or its journal.sqlite3) into an empty
PostgreSQL journal (a ``postgresql://`` URL), or back. Every table is copied whole, ids kept (the ledger and the
votes name jobs by id), in one transaction of the target: a copy that fails writes nothing. The rows' runs folder
and host are filled where the source did not keep them (the SQLite journal's folder, this host), so a job's images
stay findable from every host that reads that folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import JournalError
from .database import Tx, is_url
from .db import DB_NAME, Journal
from .heartbeat import host_id

TABLES = ("jobs", "votes", "ledger", "folder_settings")


@dataclass(frozen=True)
class Copied:
    counts: dict[str, int]
    source: str
    target: str

    def __str__(self) -> str:
        words = {"jobs": "jobs", "votes": "votes", "ledger": "ledger entries", "folder_settings": "folder settings"}
        parts = ", ".join(f"{self.counts.get(t, 0)} {words[t]}" for t in TABLES)
        return f"copied {parts} from {self.source} to {self.target}"


def _folder(path: str) -> Path:
    p = Path(path).expanduser()
    return p.parent if p.name == DB_NAME or p.suffix in (".sqlite3", ".sqlite", ".db") else p


def open_side(where: str, *, folder: Path | None = None, must_exist: bool = False) -> Journal:
    """A journal named on the command line: a postgresql:// URL (its runs folder ``folder``) or a runs folder."""
    if is_url(where):
        return Journal(folder or Path.cwd(), where)
    runs = _folder(where)
    if must_exist and not (runs / DB_NAME).is_file():
        raise JournalError(f"no journal at {runs} (no {DB_NAME} there): name a runs folder or its {DB_NAME}")
    return Journal(runs)


def copy_journal(source: str, target: str) -> Copied:
    """Copy every row of ``source`` into ``target``, which must hold no job, vote or ledger entry yet."""
    if is_url(source) == is_url(target):
        raise JournalError(
            "journal copy moves a journal between SQLite and PostgreSQL: give a runs folder and a postgresql:// URL "
            "(in either order)"
        )
    sqlite_side = target if is_url(source) else source
    src = open_side(source, folder=_folder(sqlite_side), must_exist=not is_url(source))
    dst = open_side(target, folder=_folder(sqlite_side))
    try:
        counts: dict[str, int] = {}
        with dst._write() as w:
            for table in TABLES[:3]:
                found = int(w.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                if found:
                    raise JournalError(
                        f"the target journal {dst.where} already holds {found} row(s) in {table}: copy into an "
                        "empty journal (nothing was copied)"
                    )
            w.execute("DELETE FROM folder_settings")  # the source's zone wins (it counted the days so far)
            for table in TABLES:
                counts[table] = _copy_table(src, dst, w, table)
            if dst.dialect == "postgresql":
                for table in TABLES[:3]:  # new rows go on after the copied ids
                    w.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT MAX(id) FROM "
                        f"{table}), 1), (SELECT COUNT(*) > 0 FROM {table}))"
                    )
        return Copied(counts, src.where, dst.where)
    finally:
        src.close()
        dst.close()


def _columns(journal: Journal, w: Tx | Any, table: str) -> list[str]:
    if journal.dialect == "postgresql":
        rows = w.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = "
            "current_schema() ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        return [str(r[0]) for r in rows]
    return [str(r[1]) for r in w.execute(f'PRAGMA table_info("{table}")').fetchall()]


def _copy_table(src: Journal, dst: Journal, w: Tx | Any, table: str) -> int:
    ours = _columns(dst, w, table)
    rows = src._query(f"SELECT * FROM {table} ORDER BY {'name' if table == 'folder_settings' else 'id'}")
    if not rows:
        return 0
    names = [c for c in rows[0].keys() if c in ours]  # noqa: SIM118 (a row iterates its values)
    extra = [c for c in ("host", "folder", "prompt_fold") if table == "jobs" and c in ours and c not in names]
    insert = f"INSERT INTO {table} ({', '.join(names + extra)}) VALUES ({', '.join('?' * (len(names) + len(extra)))})"
    for row in rows:
        values = {c: row[c] for c in names}
        if table == "jobs":
            if "folder" in ours and not values.get("folder"):
                values["folder"] = str(src.folder)
            if "host" in ours and not values.get("host"):
                values["host"] = host_id()
            if "prompt_fold" in ours:
                values["prompt_fold"] = str(values.get("prompt") or "").casefold()
        w.execute(insert, [values.get(c) for c in names + extra])
    return len(rows)
