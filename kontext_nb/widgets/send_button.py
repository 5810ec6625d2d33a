"""A button that sends once per click, however fast the clicks come: ``SendButton`` (the panel's Generate).

An ipywidgets Button is disabled by the kernel, so both clicks of a double click leave the browser before the
kernel has heard of the first: a guard in the kernel alone sends twice. This one disables itself in the page at
the click, and only the kernel's answer (``handled`` counts the clicks it has dealt with) enables it again. A fast
kernel can answer between the two clicks of a double click, so the second one (its ``detail`` is 2) is ignored too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import traitlets

ESM = """
function render({ model, el }) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "jupyter-widgets jupyter-button widget-button kx-send";
  const icon = document.createElement("i");
  const label = document.createElement("span");
  button.append(icon, label);
  let waiting = false;  // a click went to the kernel and it has not answered yet
  const draw = () => {
    label.textContent = model.get("description");
    icon.className = model.get("icon") ? `fa fa-${model.get("icon")}` : "";
    button.classList.toggle("mod-primary", model.get("button_style") === "primary");
    button.title = model.get("tooltip");
    button.disabled = waiting || model.get("disabled");
    button.dataset.waiting = String(waiting);
  };
  button.addEventListener("click", (event) => {
    // the second click of a double click (detail 2) never sends: the kernel may have answered the first already
    if (button.disabled || event.detail > 1) return;
    waiting = true;
    draw();
    model.send({ event: "click" });
  });
  model.on("change:handled", () => { waiting = false; draw(); });
  for (const name of ["description", "icon", "button_style", "tooltip", "disabled"]) model.on(`change:${name}`, draw);
  draw();
  el.append(button);
  // Ctrl+Enter (Cmd+Enter on a Mac) anywhere in the box with the class keys_from presses this button, as in
  // A1111, ComfyUI and fal's playground; the box is found once the view is in the page
  let scope = null, tries = 0;
  // on the window, capturing: JupyterLab reads shortcuts on the document as they go down, and would take it first
  const onKey = (e) => {
    if (!scope || !scope.contains(e.target)) return;
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey) || e.shiftKey || e.altKey) return;
    e.preventDefault();
    e.stopPropagation();  // not the notebook's "run cell"
    button.click();
  };
  const bind = () => {
    const name = model.get("keys_from");
    if (!name) return;
    scope = el.closest(`.${name}`);
    if (scope) window.addEventListener("keydown", onKey, true);
    else if (tries++ < 600) requestAnimationFrame(bind);
  };
  bind();
  return () => window.removeEventListener("keydown", onKey, true);
}
export default { render };
"""
CSS = """
.kx-send { width: auto; }
.kx-send .fa { margin-right: var(--jp-widgets-inline-margin, 4px); }
"""


class SendButton(anywidget.AnyWidget):
    """Like ``ipywidgets.Button`` (description, icon, button_style, tooltip, disabled, on_click, click), but a
    click disables it in the browser at once, until the kernel has handled that click."""

    _esm = ESM
    _css = CSS
    description = traitlets.Unicode("").tag(sync=True)
    icon = traitlets.Unicode("").tag(sync=True)
    button_style = traitlets.Unicode("").tag(sync=True)
    tooltip = traitlets.Unicode("").tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)
    handled = traitlets.Int(0).tag(sync=True)
    """Clicks the kernel has dealt with; each change enables the button in the page again."""
    keys_from = traitlets.Unicode("").tag(sync=True)
    """The CSS class of a box around the button in which Ctrl+Enter (Cmd+Enter) presses it ("": none)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handlers: list[Callable[[SendButton], Any]] = []
        self.on_msg(self._message)

    def on_click(self, handler: Callable[[SendButton], Any]) -> None:
        self._handlers.append(handler)

    def click(self) -> None:
        """What a click in the page does (tests and code call it directly)."""
        try:
            for handler in list(self._handlers):
                handler(self)
        finally:
            self.handled += 1

    def _message(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("event") == "click":
            self.click()
