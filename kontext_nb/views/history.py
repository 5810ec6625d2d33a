"""History: what ``kx.history(...)`` returns, the journal's records as a table.

People come back to a runs folder days later to find "that seed from Tuesday", so the
table shows seed, cost and a thumbnail per job, and exports to CSV, JSON and pandas for
anything the table does not answer. Rendering stays fast on 10,000 jobs: only the first
rows get thumbnails and only the first few hundred are drawn at all.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import html
import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from PIL import Image

from .. import endpoints
from ..endpoints import ENDPOINTS, get_endpoint
from ..errors import ImageTooLarge, PandasMissing, ValidationError
from ..images import preview
from ..journal import folder as store
from ..journal.db import JobRecord
from . import render

if TYPE_CHECKING:
    import pandas

COLUMNS = (
    "id",
    "created",
    "prompt",
    "endpoint",
    "model",
    "mode",
    "seed",
    "status",
    "request_id",
    "parent_id",
    "cost",
    "files",
    "cached",
    "tags",
    "error",
    "rating",
    "changed_fraction",
    "ssim_outside",
    "phash_distance",
    "reproducible",
)
SCORE_COLUMNS = ("changed_fraction", "ssim_outside", "phash_distance")
"""Change scores ``kx.changes`` kept for an edit (None until computed); plug-in scores are not columns."""
MAX_ROWS = 500
"""Rows drawn in the text and HTML tables; the rest are summarised (a notebook cell, not a report)."""
MAX_THUMBNAILS = 50
"""Rows that get a thumbnail: each one decodes an image file."""
THUMBNAIL_SIDE = 64
PROMPT_WIDTH = 50


class History(Sequence[JobRecord]):
    """Journal records, newest first; renders as a table in a notebook and as text in a terminal."""

    def __init__(self, records: Sequence[JobRecord]) -> None:
        self._records: tuple[JobRecord, ...] = tuple(records)

    # -- the Sequence protocol ------------------------------------------------------------
    @overload
    def __getitem__(self, index: int) -> JobRecord: ...
    @overload
    def __getitem__(self, index: slice) -> History: ...
    def __getitem__(self, index: int | slice) -> JobRecord | History:
        if isinstance(index, slice):
            return History(self._records[index])
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[JobRecord]:
        return iter(self._records)

    # -- data -----------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per record (created as an ISO 8601 local time, files as absolute paths)."""
        return [_row(r) for r in self._records]

    def to_pandas(self) -> pandas.DataFrame:
        """A DataFrame: created is a datetime64 column (local wall-clock time), seed and parent_id are Int64."""
        try:
            import pandas as pd
        except ImportError:
            raise PandasMissing("to_pandas needs pandas: pip install pandas") from None
        df = pd.DataFrame(self.rows(), columns=list(COLUMNS))
        df["created"] = pd.to_datetime([dt.datetime.fromtimestamp(r.created) for r in self._records])
        return df.astype(
            {
                "id": "int64",
                "seed": "Int64",
                "parent_id": "Int64",
                "cost": "float64",
                "cached": "bool",
                "rating": "Int64",
                "changed_fraction": "Float64",
                "ssim_outside": "Float64",
                "phash_distance": "Int64",
            }
        )

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """UTF-8 with a header row; lists (files, tags) are joined with ';'."""
        path = Path(path).expanduser()
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            for row in self.rows():
                writer.writerow({**row, "files": ";".join(row["files"]), "tags": ";".join(row["tags"])})
        return path

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """A JSON list of the row dicts."""
        path = Path(path).expanduser()
        path.write_text(json.dumps(self.rows(), ensure_ascii=False, indent=2), encoding="utf-8")
        return path

    # -- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        return _text(self._records)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": _text(self._records), "text/html": _html(self._records)}


def _row(r: JobRecord) -> dict[str, Any]:
    model, mode = _model_mode(r.endpoint)
    return {
        "id": r.id,
        "created": _iso(r),
        "prompt": r.prompt,
        "endpoint": r.endpoint,
        "model": model,
        "mode": mode,
        "seed": r.seed,
        "status": r.status,
        "request_id": r.request_id,
        "parent_id": r.parent_id,
        "cost": float(r.cost),
        "files": [os.path.join(r.folder, f) for f in r.files],  # r.paths, without Path's cost on 10,000 rows
        "cached": r.cached,
        "tags": list(r.tags),
        "error": r.error,
        "rating": r.rating,
        **{name: _score(r, name) for name in SCORE_COLUMNS},
        "reproducible": r.reproducible,
    }


def _score(r: JobRecord, name: str) -> float | int | None:
    value = r.scores.get(name)
    if not isinstance(value, (int, float)) or value != value:  # NaN (nothing stayed the same) is no number in JSON
        return None
    return int(value) if name == "phash_distance" else float(value)


def _model_mode(endpoint: str) -> tuple[str | None, str | None]:
    """An endpoint this version does not know (an old journal, a newer one) shows None rather than failing."""
    try:
        ep = get_endpoint(endpoint)  # the Kontext family by its names (max, pro), any other model by its alias
    except ValidationError:
        return None, None
    return ep.model, ep.mode


def _kind(r: JobRecord) -> str:
    model, mode = _model_mode(r.endpoint)
    return f"{model}/{mode}" if model else r.endpoint


def _iso(r: JobRecord) -> str:
    """Local time with its UTC offset: readable, and unambiguous across time zones and DST."""
    return dt.datetime.fromtimestamp(r.created).astimezone().isoformat(timespec="seconds")


def _local(r: JobRecord) -> str:
    return dt.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M")


def _more(n: int) -> str:
    return f"… and {n} more (use limit= or .to_pandas())"


def _count(n: int) -> str:
    return f"{n} job{'s' if n != 1 else ''}"


# -- text -----------------------------------------------------------------------------------
def _text(records: Sequence[JobRecord]) -> str:
    if not records:
        return "no jobs"
    header = ("id", "created", "status", "model/mode", "seed", "cost", "prompt")
    cells = [header]
    for r in records[:MAX_ROWS]:
        prompt = " ".join(r.prompt.split())  # newlines and tabs would break the table
        if len(prompt) > PROMPT_WIDTH:
            prompt = prompt[: PROMPT_WIDTH - 3] + "..."
        cost = "cached" if r.cached else endpoints.format_cost(r.cost)
        seed = "-" if r.seed is None else str(r.seed)
        cells.append((r.ref, _local(r), r.status, _kind(r), seed, cost, prompt))
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    right = {0, 4, 5}  # numbers line up on the right
    lines = []
    for row in cells:
        pairs = enumerate(zip(row[:-1], widths, strict=True))
        fields = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs]
        lines.append("  ".join([*fields, row[-1]]).rstrip())
    if len(records) > MAX_ROWS:
        lines.append(_more(len(records) - MAX_ROWS))
    lines.append(f"{_count(len(records))} · {endpoints.format_cost(sum(r.cost for r in records))}")
    return "\n".join(lines)


# -- HTML -----------------------------------------------------------------------------------
_CELL = "padding:2px 6px;text-align:left"
_ROW = '<tr style="border-bottom:1px solid rgba(128,128,128,.25)">'  # borders on rows keep 500 rows of HTML small
_STATUS_COLOUR = {"done": "#2a7d2a", "failed": "#b00020", "cancelled": "#8a6d00"}


def _thumbnail_cells(records: Sequence[JobRecord]) -> list[str]:
    """Cells for the first rows, decoded in parallel threads: Pillow releases the GIL while it decodes."""
    first = records[:MAX_THUMBNAILS]
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1, len(first)))) as pool:
        return list(pool.map(_thumbnail_cell, first))


def _thumbnail_cell(r: JobRecord) -> str:
    """A data-URI thumbnail of the first image; never a broken image when the file is gone or unreadable."""
    if not r.files:
        return ""
    path = r.paths[0]
    thumb = store.thumbnail_path(r.folder, r.files[0])
    try:
        if thumb.exists() and path.exists():
            path = thumb  # saved when the job finished: a few KB to decode instead of a full image
        st = path.stat()
        uri = _thumbnail_uri(str(path), st.st_mtime_ns, st.st_size)
    except ImageTooLarge as exc:  # saved as received, never decoded
        return f'<span style="opacity:.6" title="{html.escape(str(path))}">{html.escape(str(exc))}</span>'
    except (OSError, ValueError, Image.DecompressionBombError):
        return f'<span style="opacity:.5" title="{html.escape(str(path))}">missing</span>'
    return (
        f'<img src="{uri}" alt="" title="{html.escape(str(path))}"'
        f' style="max-width:{THUMBNAIL_SIDE}px;max-height:{THUMBNAIL_SIDE}px;border-radius:3px;display:block"/>'
    )


@functools.lru_cache(maxsize=256)
def _thumbnail_uri(path: str, mtime_ns: int, size: int) -> str:
    """Decoding is most of a table's render time, and the same history is shown again and again.

    Keyed by modification time and size, so a file rewritten in place is read again.
    """
    with open(path, "rb") as fh:  # a JPEG decodes at 1/2..1/8 scale (~2.5x faster); over 50 MP: ImageTooLarge
        return render.data_uri(*render.thumbnail(preview(fh.read(), THUMBNAIL_SIDE), THUMBNAIL_SIDE))


def _family_notes(r: JobRecord) -> str:
    """An inpainting job's mask (a small thumbnail from the runs folder) and any job's LoRAs with their scales."""
    out = ""
    if ENDPOINTS.get(r.endpoint) is not None and ENDPOINTS[r.endpoint].mode == "inpaint" and len(r.input_hashes) > 1:
        path = store.input_source(r.folder, r.input_hashes[1])
        if path is not None and os.path.exists(path):
            st = os.stat(path)
            uri = _thumbnail_uri(str(path), st.st_mtime_ns, st.st_size)
            out += (
                f'<div style="opacity:.8">mask <img src="{html.escape(uri)}" alt="mask" '
                'style="height:32px;vertical-align:middle;border:1px solid #999"></div>'
            )
    loras = r.arguments.get("loras") or []
    if loras:
        names = [f"{str(x.get('path', '')).split(';')[0].rsplit('/', 1)[-1]}×{x.get('scale', 1)}" for x in loras]
        out += f'<div style="opacity:.6">LoRA {html.escape(", ".join(names))}</div>'
    return out


def _html_row(r: JobRecord, thumbnail: str) -> str:
    esc = html.escape
    td = f'<td style="{_CELL}">'
    prompt = r.prompt if len(r.prompt) <= 200 else r.prompt[:197] + "..."
    extra = ""
    if r.rating:
        stars = "★" * r.rating + "☆" * (5 - r.rating)
        extra += f'<div style="color:#d99a00" title="{r.rating} of 5">{stars}</div>'
    if r.tags:
        extra += f'<div style="opacity:.6">{esc(" ".join("#" + t for t in r.tags))}</div>'
    extra += _family_notes(r)
    if r.error:
        kind = f"{r.error_type}: " if r.error_type else ""
        extra += f'<div style="color:#b00020">{esc(kind + r.error)}</div>'
    colour = _STATUS_COLOUR.get(r.status, "inherit")
    cost = esc(endpoints.format_cost(r.cost)) + (' <span style="opacity:.6">cached</span>' if r.cached else "")
    seed = "–" if r.seed is None else f"<b>{esc(str(r.seed))}</b>"
    return (
        f"{_ROW}"
        f"{td}{thumbnail}</td>"
        f"{td}{esc(r.ref)}</td>"
        f'{td}<span title="{esc(_iso(r))}">{esc(_local(r))}</span></td>'
        f'{td}<span style="color:{colour}">{esc(r.status)}</span></td>'
        f'{td}<span title="{esc(r.endpoint)}">{esc(_kind(r))}</span></td>'
        f'<td style="{_CELL};text-align:right">{seed}</td>'
        f'<td style="{_CELL};text-align:right;white-space:nowrap">{cost}</td>'
        f'{td}<span title="{esc(r.prompt)}">{esc(prompt)}</span>{extra}</td>'
        "</tr>"
    )


def _html(records: Sequence[JobRecord]) -> str:
    if not records:
        return '<div class="kontext-history" style="font:12px sans-serif">no jobs</div>'
    head = "".join(
        f'<th style="{_CELL}">{h}</th>' for h in ("", "id", "created", "status", "model/mode", "seed", "cost", "prompt")
    )
    cells = _thumbnail_cells(records)
    body = "".join(_html_row(r, cells[i] if i < len(cells) else "") for i, r in enumerate(records[:MAX_ROWS]))
    notes = [_count(len(records)), endpoints.format_cost(sum(r.cost for r in records))]
    if len(records) > MAX_THUMBNAILS:
        notes.append(f"thumbnails for the first {MAX_THUMBNAILS} rows")
    more = ""
    if len(records) > MAX_ROWS:
        rest = html.escape(_more(len(records) - MAX_ROWS))
        more = f'{_ROW}<td colspan="8" style="{_CELL};opacity:.7">{rest}</td></tr>'
    return (
        '<div class="kontext-history" style="font:12px sans-serif">'
        f'<table style="border-collapse:collapse;font:12px sans-serif"><thead>{_ROW}{head}</tr></thead>'
        f"<tbody>{body}{more}</tbody></table>"
        f'<div style="opacity:.7;margin-top:4px">{html.escape(" · ".join(notes))}</div></div>'
    )
