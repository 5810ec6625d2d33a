"""Pure functions from results to bytes, text and HTML.

HTML embeds thumbnails as data URIs, so a saved notebook still shows the images after
fal's URLs expire; "full size" and "download" come from links.py. Every piece of user text is escaped.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PIL import Image

from ..endpoints import format_cost
from ..images import encode_thumbnail, sniff_content_type
from .links import data_uri as data_uri  # where thumbnails and other views get it
from .links import file_html
from .names import readable_name

if TYPE_CHECKING:
    from ..result import Result

THUMBNAIL_SIDE = 512  # as large as the newest result in the panel: an output is where people look at images


def set_thumbnail_side(side: int) -> None:
    """The longer side of thumbnails in outputs from now on (%config Kontext.thumbnail_size)."""
    global THUMBNAIL_SIDE
    if not 16 <= side <= 2048:
        raise ValueError(f"thumbnail_size={side} must be from 16 to 2048 pixels")
    THUMBNAIL_SIDE = side


def thumbnail(image: Image.Image, side: int | None = None) -> tuple[bytes, str]:
    """A small encoded copy for an output, at the configured side unless one is given."""
    return encode_thumbnail(image, side or THUMBNAIL_SIDE)


def settings_line(result: Result) -> str:
    """The settings a reader needs to judge or reproduce an image, in one line."""
    a = result.arguments
    parts = [result.model]
    for key, label in (("aspect_ratio", "ar"), ("guidance_scale", "guidance"), ("output_format", "")):
        if key in a:
            parts.append(f"{label} {a[key]}".strip())
    if a.get("enhance_prompt"):
        parts.append("enhanced prompt")
    return " · ".join(str(p) for p in parts)


def result_text(result: Result) -> str:
    n = len(result.image_bytes)
    sizes = ", ".join(f"{w}x{h}" for w, h in result.sizes[:4])
    prompt = result.prompt if len(result.prompt) <= 70 else result.prompt[:67] + "..."
    lines = [
        f"Kontext {result.mode} · {n} image{'s' if n != 1 else ''} ({sizes}) · seed {result.seed} · "
        f"{format_cost(result.cost)}{' (cached)' if result.cached else ''}",
        f"  prompt: {prompt}",
        f"  {settings_line(result)} · request {result.request_id}",
    ]
    if any(result.has_nsfw_concepts):
        lines.append("  flagged NSFW: " + ", ".join(str(i + 1) for i, f in enumerate(result.has_nsfw_concepts) if f))
    for path in result.files:
        lines.append(f"  file: {path}")
    lines += [f"  {line}" for line in map(result.no_preview, range(n)) if line]
    return "\n".join(lines)


def result_html(result: Result, side: int | None = None) -> str:
    side = side or THUMBNAIL_SIDE
    esc = html.escape
    figures = []
    for i, (width, height) in enumerate(result.sizes):
        shown = result.thumbnail(i, side)
        if shown is None:
            figures.append(f'<div style="font:12px monospace;margin:4px 0">{esc(result.no_preview(i))}</div>')
            continue
        data, mime = shown
        flagged = i < len(result.has_nsfw_concepts) and result.has_nsfw_concepts[i]
        style = "max-width:100%;border-radius:4px;" + ("filter:blur(14px);" if flagged else "")
        note = " · <b>flagged NSFW</b>" if flagged else ""
        link = file_html_of(result, i)
        link = f" · {link}" if link else ""
        figures.append(
            f'<figure style="margin:0 8px 8px 0;display:inline-block;vertical-align:top">'
            f'<img src="{data_uri(data, mime)}" alt="{esc(result.prompt[:100])}" style="{style}"'
            f' title="{esc(result.prompt)}"/>'
            f'<figcaption style="font:12px monospace">seed <b>{esc(str(result.seed))}</b>'
            f"{esc(of_count(i, len(result.sizes)))} · {width}x{height}{note}{link}</figcaption></figure>"
        )
    cached = " · cached" if result.cached else ""
    header = (
        f'<div style="font:12px sans-serif;margin-bottom:4px"><b>{esc(result.prompt)}</b><br/>'
        f"{esc(settings_line(result))} · {esc(format_cost(result.cost))}{cached} · "
        f'<span style="opacity:.6">{esc(result.endpoint)} · {esc(result.request_id)}</span></div>'
    )
    return f'<div class="kontext-result">{header}{"".join(figures)}</div>'


def of_count(index: int, count: int) -> str:
    """' · 2/4' for the second of four images (one seed makes them all, so the seed alone cannot tell them apart);
    '' for a single image."""
    return f" · {index + 1}/{count}" if count > 1 else ""


def file_html_of(result: Result, index: int, *, embed: bool = True) -> str:
    """'full size · download' for the result's ``index``-th image file (links.py: linked, or embedded unless
    ``embed`` is False)."""
    data = result.image_bytes[index] if index < len(result.image_bytes) else b""
    path = result.files[index] if index < len(result.files) else None
    if path is None and not data:
        return ""
    mime = sniff_content_type(data) or (result.content_types[index] if index < len(result.content_types) else "")
    name = readable_name(
        prompt=result.prompt,
        seed=result.seed,
        journal_id=result.journal_id,
        mime=mime or "image/jpeg",
        index=index,
        count=len(result.image_bytes),
    )
    return file_html(path, data if embed else b"", name, mime or "application/octet-stream")
