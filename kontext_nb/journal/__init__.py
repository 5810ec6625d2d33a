"""The run journal: every job, its seed, settings, outcome and files, in SQLite (or PostgreSQL) and the runs folder.

db.py is the journal, on SQLite or PostgreSQL (journal_url) through database.py, the one small database interface
both engines implement (the proxy uses it too); schema.py is its tables; heartbeat.py keeps owners alive on a journal
hosts share; copying.py moves a journal between the engines; mounts.py tells a runs folder on a network
filesystem; folder.py alone knows the runs folder's layout (images/, thumbs/, inputs/, grids/) and that every path it
hands out lies inside it; metadata.py writes how an image was made into the file itself;
tracking.py is what the journal adds to a session (rows before submit, files on completion, cache, budget);
following.py follows a job another kernel sends for a request that joined it; salvage.py copies a damaged journal's
rows out and lets every kernel follow the journal to its new file; pruning.py deletes; rerun.py rebuilds a job's
request; unconfirmed.py settles lost-reply submits from fal's request history; reconcile.py puts the journal's spend
beside fal's usage API.

May import: endpoints, errors, config, images, jobs, result, request and the fal layer's hooks. Never IPython or
ipywidgets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .db import JobRecord, Journal, default_folder, owner_alive
    from .metadata import embed, read
    from .pruning import delete_record, prune
    from .rerun import rerun_request
    from .tracking import Tracker

_LAZY = {
    "Journal": "db",
    "JobRecord": "db",
    "default_folder": "db",
    "owner_alive": "db",
    "Tracker": "tracking",
    "embed": "metadata",
    "read": "metadata",
    "prune": "pruning",
    "delete_record": "pruning",
    "rerun_request": "rerun",
}


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "JobRecord",
    "Journal",
    "Tracker",
    "default_folder",
    "delete_record",
    "embed",
    "owner_alive",
    "prune",
    "read",
    "rerun_request",
]
