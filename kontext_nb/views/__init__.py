"""Pure views: results and journal records turned into HTML, text and PNG, for notebooks, terminals and files.

render.py (one result), compare.py (side by side), grid.py (a sweep's labelled grid), history.py (journal records
as a table), names.py (readable names for downloads and exports), links.py (how an output reaches an image file: a
relative link or the bytes embedded), status.py (the status line of running jobs). Nothing here imports IPython or
ipywidgets, so every view works in terminal IPython and in a saved notebook with no kernel.

May import: endpoints, errors, images, jobs, result, sweep and the journal's records and files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .compare import Comparison
    from .grid import Grid
    from .history import History
    from .names import readable_name
    from .render import result_html, result_text
    from .status import logs_text, status_text

_LAZY = {
    "Comparison": "compare",
    "Grid": "grid",
    "History": "history",
    "readable_name": "names",
    "result_html": "render",
    "result_text": "render",
    "status_text": "status",
    "logs_text": "status",
}


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "Comparison",
    "Grid",
    "History",
    "logs_text",
    "readable_name",
    "result_html",
    "result_text",
    "status_text",
]
