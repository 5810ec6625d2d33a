"""A report to share: one self-contained HTML file with every image inline and how each was made.

Every image is a data URI (JPEG at a chosen size, PNG kept for transparency), every style is in the file, and
nothing refers to another file or the network: it opens offline in any browser, by e-mail or from a USB stick,
and prints one result per block without cutting an image. Optionally a zip beside it holds the full-size files
and a CSV of the same rows.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from .. import endpoints
from .._version import __version__
from ..errors import JournalError, ValidationError
from ..images import encode_thumbnail
from ..journal.db import JobRecord
from ..journal.tracking import Tracker
from ..keys import redact
from ..views import render
from ..views.history import History
from . import changes as change_scores
from . import ranking
from .changes import summary
from .duel import HIDDEN

DEFAULT_SIZE = 512
LINEAGE_SIDE = 72
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:24px 0 8px}
.meta{color:#555;margin-bottom:16px}
table.rank{border-collapse:collapse} table.rank td,table.rank th{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:left} table.rank td.n{text-align:right;font-variant-numeric:tabular-nums}
.card{display:flex;gap:18px;align-items:flex-start;border:1px solid #ddd;border-radius:8px;padding:12px;margin:12px 0;
break-inside:avoid;page-break-inside:avoid}
.card img.main{max-width:100%;height:auto;border-radius:4px;display:block}
.card .pics{flex:0 0 auto;display:flex;flex-direction:column;gap:6px}
.card dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}
.card dt{color:#666} .card dd{margin:0;overflow-wrap:anywhere}
.stars{color:#d99a00;letter-spacing:1px} .err{color:#b00020}
.lineage{display:flex;gap:4px;align-items:center;flex-wrap:wrap} .lineage img{border-radius:3px;display:block}
.lineage figure{margin:0;text-align:center;font-size:11px;color:#555}
@media print{body{margin:0} .card{border-color:#999} a{color:inherit;text-decoration:none}}
"""


def records_of(tracker: Tracker, items: Any) -> list[JobRecord]:
    """A History, one reference or a list of them (ids, '@12', '@last', Results, records), as journal records."""
    if isinstance(items, History):
        return list(items)
    if isinstance(items, (str, int, JobRecord)) or not isinstance(items, Iterable):
        items = [items]
    records = [tracker.resolve(item) for item in items]
    if not records:
        raise ValidationError("report: nothing to report: give job references or a history with rows")
    return list({r.id: r for r in records}.values())


def write_report(
    tracker: Tracker,
    items: Any,
    path: str | os.PathLike[str],
    *,
    size: int = DEFAULT_SIZE,
    title: str | None = None,
    full_size_zip: bool = False,
    changes: bool = True,
) -> Path:
    """Write the report; returns its path (and writes ``<name>.zip`` beside it with ``full_size_zip``)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 64 <= size <= 4096:
        raise ValidationError(f"size={size!r} is not allowed: give the longer side in pixels, 64 to 4096", field="size")
    target = Path(path).expanduser()
    if target.suffix.lower() not in (".html", ".htm"):
        raise ValidationError(f"report path {str(path)!r} must end in .html", field="path")
    records = records_of(tracker, items)
    page = redact(build_html(tracker, records, size=size, title=title, changes=changes))  # never the fal key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    if full_size_zip:
        write_zip(records, target, page)
    return target


def build_html(
    tracker: Tracker, records: Sequence[JobRecord], *, size: int, title: str | None = None, changes: bool = True
) -> str:
    esc = html.escape
    ids = [r.id for r in records if r.status == "done" and r.files]
    votes = tracker.journal.votes(ids)
    ranks: dict[int, tuple[int, float, float]] = {}
    ranking_html = ""
    models_of = {r.id: _model_name(r) for r in records}
    if votes:
        frame = ranking.table(ids, votes)
        frame = frame[frame["comparisons"] > 0]  # a result nobody voted on has no place in the ranking
        rows = []
        for position, row in enumerate(frame.itertuples(index=False), start=1):
            job = int(str(row.ref).lstrip("@"))
            ranks[job] = (position, float(row.score), float(row.uncertainty))
            rows.append(
                f'<tr><td class="n">{position}</td><td><a href="#job-{job}">{esc(str(row.ref))}</a></td>'
                f"<td>{esc(models_of.get(job, ''))}</td>"
                f'<td class="n">{row.score:+.2f} ± {row.uncertainty:.2f}</td><td class="n">{row.wins}</td>'
                f'<td class="n">{row.losses}</td><td class="n">{row.ties}</td><td class="n">{row.comparisons}</td></tr>'
            )
        voters = len({v.voter for v in votes})
        ranking_html = (
            f"<h2>Ranking</h2><p class=meta>Bradley–Terry fit of {len(votes)} blind pairwise vote"
            f"{'s' if len(votes) != 1 else ''} by {voters} voter{'s' if voters != 1 else ''}; score ± standard error"
            " (a difference of 1 ≈ 73% chance to win).</p>"
            '<table class="rank"><tr><th>#</th><th>result</th><th>model</th><th>score</th><th>wins</th><th>losses</th>'
            f"<th>ties</th><th>compared</th></tr>{''.join(rows)}</table>"
        ) + _model_ranking(ids, votes, models_of)
    cards = [_card(tracker, r, size, ranks, len(ranks), changes) for r in records]
    total = endpoints.format_cost(sum(r.cost for r in records))
    heading = title or "kontext_nb report"
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(heading)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(heading)}</h1><div class=meta>{len(records)} result{'s' if len(records) != 1 else ''} · {total}"
        f" · made {esc(when)} with kontext_nb {esc(__version__)}</div>"
        f"{ranking_html}<h2>Results</h2>{''.join(cards)}</body></html>"
    )


def _model_name(record: JobRecord) -> str:
    """A result's model as the report names it: its short alias (max, seedream4-edit), else its endpoint id."""
    try:
        return str(record.model)
    except ValidationError:
        return record.endpoint


def _model_ranking(ids: Sequence[int], votes: Sequence[Any], models_of: dict[int, str]) -> str:
    """The models ranked from the votes between their results, when the report holds more than one model."""
    if len(set(models_of.values())) < 2:
        return ""
    frame = ranking.by_group(ids, votes, models_of)
    frame = frame[frame["comparisons"] > 0]
    if frame.empty:
        return ""
    esc = html.escape
    rows = "".join(
        f'<tr><td class="n">{k}</td><td>{esc(str(row.model))}</td><td class="n">{row.score:+.2f} ± '
        f'{row.uncertainty:.2f}</td><td class="n">{row.wins}</td><td class="n">{row.losses}</td><td class="n">'
        f'{row.ties}</td><td class="n">{row.comparisons}</td></tr>'
        for k, row in enumerate(frame.itertuples(index=False), start=1)
    )
    return (
        "<h3>Models</h3><p class=meta>The same fit over models: a vote between two models' results counts for the "
        "models; votes within one model are left out.</p>"
        '<table class="rank"><tr><th>#</th><th>model</th><th>score</th><th>wins</th><th>losses</th><th>ties</th>'
        f"<th>compared</th></tr>{rows}</table>"
    )


def _picture(image: Image.Image, side: int) -> str:
    data, mime = encode_thumbnail(ImageOps.exif_transpose(image), side)
    return render.data_uri(data, mime)


def _stars(rating: int | None) -> str:
    if not rating:
        return '<span style="color:#888">not rated</span>'
    return f'<span class="stars" title="{rating} of 5">{"★" * rating}{"☆" * (5 - rating)}</span>'


def _settings(record: JobRecord) -> str:
    shown = {k: v for k, v in record.arguments.items() if k not in HIDDEN and k != "seed"}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "–"


def _card(
    tracker: Tracker, r: JobRecord, size: int, ranks: dict[int, tuple[int, float, float]], ranked: int, changes: bool
) -> str:
    esc = html.escape
    pictures: list[str] = []
    rows: list[tuple[str, str]] = []
    try:
        images = tracker.load_result(r).images if r.status == "done" and r.files else []
    except JournalError as exc:
        images, rows = [], [("missing", f'<span class="err">{esc(str(exc))}</span>')]
    for image in images:
        width = min(size, image.width)
        pictures.append(f'<img class="main" src="{_picture(image, size)}" alt="{esc(r.ref)}" width="{width}">')
    rows += [
        ("result", f"<b>{esc(r.ref)}</b> · {esc(r.status)}"),
        ("prompt", esc(r.prompt)),
        ("seed", esc("–" if r.seed is None else str(r.seed))),
        ("model", esc(f"{r.model} · {r.mode}" if r.model else r.endpoint)),
        ("settings", esc(_settings(r))),
        ("cost", esc(endpoints.format_cost(r.cost)) + (" (cached)" if r.cached else "")),
        ("rating", _stars(r.rating)),
    ]
    if r.id in ranks:
        position, score, error = ranks[r.id]
        rows.append(("ranking", f"#{position} of {ranked} · score {score:+.2f} ± {error:.2f}"))
    if r.error:
        rows.append(("error", f'<span class="err">{esc(r.error)}</span>'))
    if r.parent_id is not None and images:
        rows += _change_rows(tracker, r, pictures, changes)
        rows.append(("lineage", _lineage(tracker, r)))
    elif r.scores:
        rows.append(("changes", esc(summary(_clean(r.scores)))))
    body = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return (
        f'<section class="card" id="job-{r.id}"><div class="pics" style="max-width:{size}px">{"".join(pictures)}</div>'
        f"<dl>{body}</dl></section>"
    )


def _change_rows(tracker: Tracker, r: JobRecord, pictures: list[str], compute: bool) -> list[tuple[str, str]]:
    if not compute:
        return [("changes", html.escape(summary(_clean(r.scores))))] if r.scores else []
    try:
        found = change_scores.changes_of(tracker, r)
    except (ValidationError, JournalError) as exc:
        return [("changes", f'<span style="color:#888">{html.escape(str(exc))}</span>')]
    pictures.append(
        f'<img class="main" src="{_picture(found.image, 256)}" alt="what changed in {html.escape(r.ref)}"'
        ' title="what changed (red)" width="256"><div class="meta">what changed (red)</div>'
    )
    return [("changes", html.escape(summary(found.as_dict())))]


def _clean(scores: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in scores.items() if isinstance(v, (int, float))}


def _lineage(tracker: Tracker, r: JobRecord) -> str:
    try:
        chain = tracker.journal.lineage(r.id)
    except JournalError:
        return "–"
    parts = []
    for step in chain:
        thumb = ""
        try:
            if step.files:
                with Image.open(step.paths[0]) as image:
                    image.draft("RGB", (LINEAGE_SIDE, LINEAGE_SIDE))
                    thumb = f'<img src="{_picture(image.convert("RGB"), LINEAGE_SIDE)}" alt="{html.escape(step.ref)}">'
        except (OSError, JournalError):
            thumb = ""
        parts.append(f"<figure>{thumb}<figcaption>{html.escape(step.ref)}</figcaption></figure>")
    return '<div class="lineage">' + " → ".join(parts) + "</div>"


def write_zip(records: Sequence[JobRecord], page_path: Path, page: str) -> Path:
    """``<report>.zip``: the report, every full-size image file (named by reference) and a CSV of the rows."""
    target = page_path.with_suffix(".zip")
    with tempfile.TemporaryDirectory() as folder:
        csv_path = History(records).to_csv(Path(folder) / "results.csv")
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(page_path.name, page)
            archive.write(csv_path, "results.csv")
            for r in records:
                for n, file in enumerate(r.paths if r.files else [], start=1):
                    if file.exists():
                        archive.write(file, f"images/{r.id}-{n}{file.suffix}")
    return target


__all__ = ["build_html", "records_of", "write_report", "write_zip"]
