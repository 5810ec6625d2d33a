"""Links that open and download image files from any widget's HTML, wherever the runs folder is.

A link in a widget's HTML cannot reach a file outside the notebook's folder (``file://`` is blocked) and, inside
it, a relative link in Lab or Notebook 7 resolves to the app's own page ("download" saved JupyterLab's HTML, "open
full size" opened a second JupyterLab). So links made by ``links_html`` carry a token instead of a path; one
FileServer per panel (front/files.js) catches clicks on them, asks the kernel for that file once, and makes a Blob
in the browser: "download" saves the file's own bytes under its readable name, "open full size" shows the image
in a new tab. Only files this kernel put on a page (registered by ``token``) are ever served.
"""

from __future__ import annotations

import hashlib
import html
import threading
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..images import sniff_content_type
from ..result import Result
from ..views.names import readable_name
from . import front, theme

LINK = f"color:{theme.LINK};text-decoration:underline;cursor:pointer"
_paths: dict[str, Path] = {}
_lock = threading.Lock()


def token(path: Path) -> str:
    """The token that names ``path`` in a page; registers the file as one the FileServer may send."""
    key = hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    with _lock:
        _paths[key] = path
    return key


def link(path: Path, name: str, text: str, action: str, title: str = "") -> str:
    """One link: ``action`` is "download" (save as ``name``) or "open" (the image in a new tab)."""
    esc = html.escape
    return (
        f'<a href="#" class="kx-file" style="{LINK}" data-kx-file="{token(path)}" data-kx-action="{action}"'
        f' data-kx-name="{esc(name)}" title="{esc(title or name)}">{esc(text)}</a>'
    )


def links_html(result: Result, index: int = 0) -> str:
    """'open full size · download' for one of a result's image files."""
    path = result.files[index]
    mime = sniff_content_type(result.image_bytes[index]) if index < len(result.image_bytes) else None
    name = readable_name(
        prompt=result.prompt,
        seed=result.seed,
        journal_id=result.journal_id,
        mime=mime or mime_of(path),
        index=index,
        count=len(result.files),
    )
    return file_links_html(path, name)


def file_links_html(path: Path, name: str) -> str:
    """'open full size · download' for one file, saved as ``name``."""
    return (
        '<span style="font:11px sans-serif">'
        + link(path, name, "open full size", "open", "the image in a new tab")
        + " · "
        + link(path, name, "download", "download", f"save {name}")
        + "</span>"
    )


def mime_of(path: Path) -> str:
    return {".png": "image/png", ".webp": "image/webp", ".gif": "image/gif"}.get(path.suffix.lower(), "image/jpeg")


class FileServer(anywidget.AnyWidget):
    """Serves the files behind ``links_html`` links to the browser, on click only. Shows nothing itself."""

    _esm = front.esm("images.js", "files.js")

    served = t.Int(0)
    """Files sent so far (not synced: for tests and curiosity)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_msg(self._message)

    def _message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("kind") != "fetch":
            return
        key = str(content.get("token", ""))
        with _lock:
            path = _paths.get(key)
        reply: dict[str, Any] = {"kind": "file", "token": key, "request": content.get("request")}
        try:
            if path is None:
                raise FileNotFoundError("this file was not shown by this kernel")
            data = path.read_bytes()
        except OSError as exc:
            self.send(reply | {"error": f"cannot read the file: {exc.strerror or exc}"})
            return
        self.served += 1
        self.send(reply | {"mime": sniff_content_type(data) or mime_of(path)}, [data])


__all__ = ["FileServer", "link", "links_html", "token"]
