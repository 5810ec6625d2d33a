"""The interactive panel: ipywidgets views over a Session. The presentation layer for notebooks.

May import every layer below (api, session, views, journal); nothing below imports this.

Only this package and the magics import ipywidgets; names load on first use so importing a submodule stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Panel": "panel",
    "CreateTab": "create",
    "InputControls": "controls",
    "SourcePicker": "controls",
    "control_for": "controls",
    "Gallery": "gallery",
    "Card": "cards",
    "CompareView": "compare_view",
    "HistoryView": "history_view",
    "DuelView": "duel",
    "DuelTab": "duel",
    "RatingStars": "rating",
    "MaskPainter": "mask",
    "mask": "mask",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'kontext_nb.widgets' has no attribute {name!r}")


__all__ = list(_LAZY)
