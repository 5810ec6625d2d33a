"""The interactive panel: ipywidgets views over a Session. The presentation layer for notebooks.

May import every layer below (api, session, views, journal); nothing below imports this.

Only this package and the magics import ipywidgets; names load on first use so importing a submodule stays cheap.
"""

from __future__ import annotations

from .._lazy import lazy_names

_LAZY = {
    "Panel": "panel",
    "CreateTab": "create",
    "InputControls": "controls",
    "SourcePicker": "controls",
    "control_for": "controls",
    "Gallery": "gallery",
    "Card": "cards",
    "CompareView": "compare_view",
    "ComparedView": "compared",
    "compare": "compared",
    "HistoryView": "history_view",
    "DuelView": "duel",
    "DuelTab": "duel",
    "RatingStars": "rating",
    "MaskPainter": "mask",
    "mask": "mask",
}


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = list(_LAZY)
