"""How a static output reaches a result's image file: with no kernel, no JavaScript and no ``file://`` link.

A result's HTML is kept in the saved notebook and shown again with no kernel; a notebook from someone else is
untrusted, so JupyterLab and Notebook 7 sanitize it (scripts, ``data:`` links and ``download`` attributes go;
images with ``data:`` sources, ``<details>`` and inline styles stay). What works there, tried in Chromium:

- A file below the notebook's folder: relative links, which Jupyter resolves to the file it serves (``/files/…``).
  "full size" opens the image (JupyterLab in its image viewer, Notebook 7 in a new tab); "download" saves the
  file under its readable name (the ``download`` attribute; an untrusted notebook opens the image instead).
- Anywhere else (Jupyter cannot serve it; the browser blocks ``file://``): the file's own bytes are embedded,
  once in a ``<details>`` that shows the image at its natural size when "full size" is clicked (Chromium refuses
  to open a ``data:`` image in a new tab), and once behind "download" (a ``data:`` link with the readable name;
  sanitized away in an untrusted notebook, whose reader saves the full-size image with a right-click).
  That costs a notebook about 2.7 times the file (base64, twice), so only files up to EMBED_LIMIT are embedded;
  a larger one is named as text, with the reason.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from urllib.parse import quote

EMBED_LIMIT = 1_000_000
"""Bytes: larger files are not embedded in an output (fal's 1-megapixel JPEGs are a few hundred kB).
%config Kontext.embed_limit_mb sets it; 0 embeds nothing."""
SUMMARY = "color:#2f6fd6;cursor:pointer;display:list-item"
"""No style of our own on links: Jupyter's shows an <a> as a link only while it has an href (sanitizing may drop it)."""


def set_embed_limit(megabytes: float) -> None:
    """Embed files up to this many MB from now on (%config Kontext.embed_limit_mb); 0: never."""
    global EMBED_LIMIT
    if not 0 <= megabytes <= 20:
        raise ValueError(f"embed_limit_mb={megabytes} must be from 0 to 20 (megabytes)")
    EMBED_LIMIT = round(megabytes * 1_000_000)


def data_uri(data: bytes, mime: str) -> str:
    """The bytes themselves as a URL (a third larger than the file): what a saved notebook keeps of an image."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def notebook_folder() -> Path:
    """The folder Jupyter resolves an output's relative links against: the notebook's (jupyter_server tells the
    kernel its notebook's path in JPY_SESSION_NAME), else the working folder (where a kernel starts)."""
    session = Path(os.environ.get("JPY_SESSION_NAME", ""))
    if session.is_absolute() and session.parent.is_dir():
        return session.parent
    return Path.cwd()


def relative_href(path: Path, folder: Path | None = None) -> str | None:
    """``path`` as a URL relative to the notebook's folder, or None when it is not below it."""
    folder = folder or notebook_folder()
    try:
        relative = Path(os.path.relpath(os.path.abspath(path), folder))
    except ValueError:  # another drive
        return None
    if relative.parts[:1] == ("..",) or relative == Path("."):
        return None
    return quote(relative.as_posix())


class ReportFile(type(Path())):  # type: ignore[misc]
    """A written file (kx.report's): a Path as before, shown in a notebook as a link that opens it (Jupyter serves
    files below the notebook's folder), else as its path with the reason."""

    def _repr_html_(self) -> str:
        href = relative_href(self)
        if href is None:
            return (
                f'<span style="font:12px sans-serif">report written to <code>{html.escape(str(self))}</code> '
                "(outside the notebook's folder, where Jupyter cannot open it: open the file in a browser)</span>"
            )
        return (
            f'<span style="font:12px sans-serif">report written: <a href="{html.escape(href)}" target="_blank" '
            f'rel="noopener">open {html.escape(self.name)}</a> · {html.escape(str(self))}</span>'
        )


def file_html(path: Path | None, data: bytes, name: str, mime: str) -> str:
    """The links "full size · download" for one image file (``data``: its bytes; ``name``: a download's name)."""
    esc = html.escape
    href = relative_href(path) if path is not None else None
    if href is not None:
        return (
            f'<a href="{esc(href)}" target="_blank">full size</a> · '
            f'<a href="{esc(href)}" download="{esc(name)}">download</a>'
        )
    if not data:
        return ""
    if len(data) > EMBED_LIMIT:
        where = f" · {esc(str(path))}" if path is not None else ""
        return (
            f'<span style="opacity:.75">full size not embedded: {_size(len(data))}, over the '
            f"{_size(EMBED_LIMIT)} limit (Kontext.embed_limit_mb){where}</span>"
        )
    uri = data_uri(data, mime)
    return (
        f'<a href="{uri}" download="{esc(name)}" title="save {esc(name)}">download</a>'
        f'<details style="margin-top:2px"><summary style="{SUMMARY}">full size</summary>'
        f'<div style="overflow:auto;max-width:100%;max-height:90vh;margin-top:4px">'
        f'<img src="{uri}" alt="{esc(name)}" title="{esc(name)} (right-click to save it)"'
        ' style="max-width:none;display:block"/></div></details>'
    )


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} kB"
