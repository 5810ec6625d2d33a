"""The newest result, large, beside the Create form: all its images, the seed used, and what to do next.

People look where they clicked (InvokeAI, fal's playground): a result that only appears in another tab reads as
"nothing happened". One result at a time, so the larger images cost little memory in the kernel.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from ..result import Result
from ..views import render
from . import theme
from .cards import close_tree, links_html

SIDE = 512
"""The longer side of each image shown (a 256 px thumbnail is too small to judge a result)."""
BUTTONS: dict[str, tuple[str, str]] = {
    "use": ("use", "edit this image next"),
    "seed": ("reuse seed", "lock this seed for the next runs"),
    "rerun": ("rerun", "the same settings with a new seed"),
    "compare": ("compare", "add to the Compare tab"),
}
EMPTY = f'<div style="font:12px sans-serif;color:{theme.MUTED};padding:8px 0">the newest result shows here</div>'


class ResultView:
    """One finished result with use / reuse seed / rerun / compare buttons and download links."""

    def __init__(self) -> None:
        self.result: Result | None = None
        self.callbacks: dict[str, Callable[[Result], Any] | None] = dict.fromkeys(BUTTONS)
        """Set by the owner: what each button does with the result shown."""
        self.caption = w.HTML(EMPTY)
        self.images = w.HBox(layout=w.Layout(flex_flow="row wrap", align_items="flex-start"))
        self.buttons: dict[str, w.Button] = {}
        for key, (text, tip) in BUTTONS.items():
            button = w.Button(description=text, tooltip=tip, disabled=True, layout=w.Layout(width="auto"))
            button.on_click(lambda _, k=key: self._clicked(k))
            self.buttons[key] = button
        self.links = w.HTML()
        self.note = w.HTML()
        self.widget = w.VBox(
            [self.caption, self.images, w.HBox(list(self.buttons.values()), layout=w.Layout(flex_flow="row wrap")),
             self.links, self.note],
            layout=w.Layout(flex="1 1 360px", min_width="0", padding="0 0 0 12px"),
        )  # fmt: skip
        self.widget.add_class("kontext-newest")

    def show(self, result: Result) -> None:
        """Show this result (called from a worker thread: encoding the images takes a moment)."""
        pictures: list[w.Widget] = []
        for i in range(len(result.image_bytes)):
            shown = result.thumbnail(i, SIDE)
            if shown is None:  # too large to decode: one line says where its file is
                pictures.append(w.HTML(f'<div style="font:12px monospace">{html.escape(result.no_preview(i))}</div>'))
                continue
            data, mime = shown
            flagged = i < len(result.has_nsfw_concepts) and result.has_nsfw_concepts[i]
            picture = w.Image(
                value=data,
                format=mime.split("/")[1],
                layout=w.Layout(max_width="calc(100% - 8px)", margin="0 6px 6px 0"),
            )
            if flagged:
                picture.layout.visibility = "hidden"
            pictures.append(picture)
        old = self.images.children
        self.images.children = pictures
        close_tree(*old)
        self.result = result
        n = len(result.image_bytes)
        ref = f"{result.ref} · " if result.ref else ""
        prompt = result.prompt if len(result.prompt) <= 160 else result.prompt[:159] + "…"
        hidden = " · flagged NSFW (hidden)" if any(result.has_nsfw_concepts) else ""
        self.caption.value = (
            f'<div style="font:12px sans-serif"><b>{html.escape(ref)}seed {html.escape(str(result.seed))}</b> · '
            f"{n} image{'s' if n != 1 else ''} · {html.escape(render.settings_line(result))}{html.escape(hidden)}"
            f'<div style="opacity:.8;overflow-wrap:anywhere">{html.escape(prompt)}</div></div>'
        )
        self.links.value = links_html(result)
        self.note.value = ""
        for button in self.buttons.values():
            button.disabled = False

    def _clicked(self, key: str) -> None:
        callback = self.callbacks.get(key)
        if self.result is None or callback is None:
            return
        try:
            callback(self.result)
        except Exception as exc:  # shown where the click was
            self.note.value = f'<span style="color:{theme.ERROR};font:12px sans-serif">{html.escape(str(exc))}</span>'

    def rerun(self) -> Any:
        """What "rerun" does (the owner's callback): returns what it returns."""
        callback = self.callbacks.get("rerun")
        return callback(self.result) if callback is not None and self.result is not None else None

    def close(self) -> None:
        close_tree(self.widget)
