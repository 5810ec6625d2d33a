"""What %load_ext says: only what needs saying, and cheaply (no engine, no HTTP client)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import api
from ..config import ANNOUNCED, env_base_url, has_fal_credentials
from ..errors import JournalError
from ..journal.db import DB_NAME, Journal, default_folder, left_behind

if TYPE_CHECKING:
    from . import Kontext


def greet(magics: Kontext) -> None:
    """Say that the offline sandbox will be used, or that jobs wait to be collected; else nothing."""
    if env_base_url() is None and not has_fal_credentials():
        print(
            "kontext_nb: no FAL_KEY found, so jobs will run on the offline sandbox (placeholder images, "
            "no charge). Set FAL_KEY before starting Jupyter for real FLUX.1 Kontext images."
        )
        ANNOUNCED.add("sandbox")
    session = api.current_session()  # an existing session's runs folder wins; never create one just to look
    configured = (session.settings.runs_dir if session is not None else None) or magics.runs_dir
    folder = Path(configured).expanduser() if configured else default_folder()
    if not (folder / DB_NAME).exists():  # no journal yet: nothing to collect, and no folder made just to look
        return
    try:
        journal = Journal(folder)
    except JournalError as exc:
        print(f"kontext_nb: {exc}")
        return
    try:
        waiting = left_behind(journal.uncollected())
    finally:
        journal.close()
    if waiting:
        n = len(waiting)
        print(
            f"kontext_nb: {n} job{'s' if n != 1 else ''} from an earlier run {'were' if n != 1 else 'was'} "
            "not collected; %kontext resume collects them without submitting again"
        )
    ANNOUNCED.add("resume")
