"""Stars to mount anywhere a result is shown (gallery cards, the compare view): ``RatingStars``.

One small anywidget per result: five stars drawn in the browser, a click sets the rating (clicking the current
one clears it), and the kernel keeps it with ``kx.rate`` (the journal and the image files' metadata).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ..errors import KontextError
from ..judging.ratings import rate

if TYPE_CHECKING:
    from ..session import Session

ESM = """
function render({ model, el }) {
  const box = document.createElement("span");
  box.className = "kx-stars";
  box.setAttribute("role", "radiogroup");
  const stars = [];
  for (let n = 1; n <= 5; n++) {
    const star = document.createElement("button");
    star.type = "button";
    star.className = "kx-star";
    star.dataset.n = String(n);
    star.title = `${n} of 5 (click again to clear)`;
    star.addEventListener("click", () => {
      if (model.get("disabled")) return;
      model.set("value", model.get("value") === n ? 0 : n);
      model.save_changes();
    });
    stars.push(star);
    box.append(star);
  }
  const draw = () => {
    const value = model.get("value");
    stars.forEach((star, i) => { star.textContent = i < value ? "★" : "☆"; star.disabled = model.get("disabled"); });
    box.dataset.value = String(value);
  };
  model.on("change:value", draw);
  model.on("change:disabled", draw);
  draw();
  el.append(box);
}
export default { render };
"""
CSS = """
.kx-star { border: none; background: none; padding: 0 1px; font-size: 16px; line-height: 1;
  color: color-mix(in srgb, var(--jp-warn-color1, #f57c00) 65%, var(--jp-ui-font-color0, #000));
  cursor: pointer; }
.kx-star:disabled { color: var(--jp-ui-font-color2, rgba(0, 0, 0, .54)); cursor: default; }
"""


class RatingStars(anywidget.AnyWidget):
    """Five stars for one journal job; ``bind(session, journal_id)`` shows its rating and keeps changes."""

    _esm = ESM
    _css = CSS
    value = traitlets.Int(0).tag(sync=True)
    """Stars shown, 0-5 (0: not rated)."""
    disabled = traitlets.Bool(True).tag(sync=True)
    """True until bound to a journal job."""
    error = traitlets.Unicode("")
    """Why the last change was not kept (empty when it was)."""

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - {"value", "disabled"}
        if unknown:
            raise TypeError(f"RatingStars() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        super().__init__(**kwargs)
        self.session: Session | None = None
        self.journal_id: int | None = None
        self._binding = False
        self.observe(self._changed, "value")

    def bind(self, session: Session | None, journal_id: int | None) -> None:
        """Show the job's rating and keep what the user clicks (None: disabled)."""
        self.session, self.journal_id = session, journal_id
        rating = 0
        if session is not None and journal_id is not None:
            try:
                rating = session.tracker.journal.get(journal_id).rating or 0
            except KontextError:
                journal_id = None
        self._binding = True
        try:
            self.value = rating
            self.disabled = session is None or journal_id is None
        finally:
            self._binding = False

    def _changed(self, change: Any) -> None:
        if self._binding or self.session is None or self.journal_id is None:
            return
        tracker = self.session.tracker
        try:
            rate(tracker.journal, tracker.journal.get(self.journal_id), int(change.new))
            self.error = ""
        except KontextError as exc:
            self.error = str(exc)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            stars = "★" * self.value + "☆" * (5 - self.value)
            data["text/html"] = f'<span style="color:#d99a00">{html.escape(stars)}</span>'
        return bundle
