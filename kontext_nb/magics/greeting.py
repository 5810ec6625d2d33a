"""What %load_ext says and starts: only what needs saying, cheaply (no engine, no HTTP client on the way).

Jobs a stopped kernel left on fal are collected in the background (collecting.py) when a fal key or a server is
set; on the offline sandbox (which died with that kernel) they are only announced.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import api
from ..config import ANNOUNCED, Settings, env_base_url, has_fal_credentials, sandbox_notice
from ..errors import JournalError, KontextError
from ..journal.db import DB_NAME, Journal, default_folder, left_behind
from .collecting import collect_in_background

if TYPE_CHECKING:
    from . import Kontext


def greet(magics: Kontext) -> None:
    """Say that the offline sandbox will be used, or that jobs wait to be collected; else nothing."""
    session = api.current_session()  # an existing session's settings and runs folder win; never create one to look
    offline = env_base_url() is None and not has_fal_credentials()
    if session is not None and (session.settings.base_url or session.settings.key):
        offline = False
    if offline:
        print(sandbox_notice(terminal=magics.terminal))
        ANNOUNCED.add("sandbox")
    configured = (session.settings.runs_dir if session is not None else None) or magics.runs_dir
    folder = Path(configured).expanduser() if configured else default_folder()
    try:  # a shared journal (journal_url): jobs any kernel on any host left behind (its heartbeat lapsed)
        url = (session.settings if session is not None else Settings()).journal()
    except KontextError as exc:
        print(f"kontext_nb: {exc}")
        return
    if url is None and not (folder / DB_NAME).exists():  # no journal yet: nothing to collect, no folder made to look
        return
    try:
        journal = Journal(folder, url)
    except JournalError as exc:
        print(f"kontext_nb: {exc}")
        return
    try:
        waiting = left_behind(journal.uncollected(), alive=journal.alive)
    finally:
        journal.close()
    ANNOUNCED.add("resume")  # before the collecting thread opens the session's journal: said here, not there
    if waiting and not offline:
        collect_in_background(session, [r.id for r in waiting], terminal=magics.terminal)
    elif waiting:
        n = len(waiting)
        print(
            f"kontext_nb: {n} job{'s' if n != 1 else ''} from an earlier run {'were' if n != 1 else 'was'} "
            "not collected; %kontext resume collects them without submitting again"
        )
