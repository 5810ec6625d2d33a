"""History: the journal's records as a sequence, rows, CSV/JSON/pandas exports, and text and HTML tables."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from kontext_nb.errors import KontextError
from kontext_nb.journal.db import JobRecord, Journal
from kontext_nb.views.history import COLUMNS, History

MAX_ROWS, MAX_THUMBNAILS = 500, 50  # what the table promises; literal so a changed constant fails here
T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
EDIT = "fal-ai/flux-pro/kontext"
FOX = 'a red fox, "quoted", in the snow'
UNICODE = 'café ☕ 日本語, a line\nand a second, "with" quotes;semi'
XSS_PROMPT = "<img src=x onerror=alert(1)>"
XSS_ERROR = "</table><script>alert(2)</script>"
LONG = "a very long prompt about " + " ".join(f"word{i}" for i in range(20))


def write_image(folder: Path, name: str, colour: str, size: tuple[int, int] = (256, 192)) -> str:
    """A real image in the runs folder; returns the path relative to it, as the journal stores files."""
    (folder / "images").mkdir(exist_ok=True)
    Image.new("RGB", size, colour).save(folder / "images" / name)
    return f"images/{name}"


def add(
    journal: Journal,
    prompt: str,
    *,
    endpoint: str = T2I,
    seed: int | None = None,
    status: str = "done",
    files: Sequence[str] = (),
    cost: float = 0.0,
    tags: Sequence[str] = (),
    error: str | None = None,
    parent_id: int | None = None,
) -> int:
    arguments = {"prompt": prompt} if seed is None else {"prompt": prompt, "seed": seed}
    job = journal.create(endpoint=endpoint, arguments=arguments, tags=tags, parent_id=parent_id)
    journal.submitted(job, f"req-{job}")
    if status != "submitted":
        journal.finished(
            job,
            status=status,
            seed=seed,
            cost=cost,
            num_images=len(files),
            files=files,
            error=error,
            error_type="JobFailed" if error else None,
        )
    return job


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "runs")
    yield j
    j.close()


@pytest.fixture
def history(journal: Journal) -> History:
    """@1 done with a red image, @2 an edit with two images, @3 failed, @4 still submitted, @5 cached copy of @1."""
    folder = journal.folder
    first = add(journal, FOX, seed=42, files=[write_image(folder, "1.jpg", "red")], cost=0.08, tags=["fox", "snow"])
    two = [write_image(folder, "2a.png", "blue"), write_image(folder, "2b.png", "green")]
    add(journal, UNICODE, endpoint=EDIT, seed=7, files=two, cost=0.08, parent_id=first)
    add(journal, XSS_PROMPT, seed=3, status="failed", error=XSS_ERROR, tags=["<b>tag</b>"])
    add(journal, LONG, status="submitted")
    journal.record_cached(journal.get(first), session=None, source=None, tags=[])
    return History(journal.search())


def ids(records: Sequence[JobRecord]) -> list[int]:
    return [r.id for r in records]


def thumbnails(page: str) -> list[Image.Image]:
    """The images embedded as data URIs in the HTML, decoded."""
    found = re.findall(r'<img src="data:image/(?:jpeg|png);base64,([A-Za-z0-9+/=]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB") for b in found]


def many(record: JobRecord, n: int) -> History:
    """n records built from one real record (fast: no journal writes), newest first."""
    return History([replace(record, id=i, prompt=f"job number {i}") for i in range(n, 0, -1)])


# -- the Sequence protocol ------------------------------------------------------------------
def test_sequence_behaviour(history: History) -> None:
    assert len(history) == 5
    assert ids(history) == [5, 4, 3, 2, 1]  # newest first
    assert history[0].id == 5 and history[-1].id == 1
    part = history[1:3]
    assert isinstance(part, History) and ids(part) == [4, 3]
    assert ids(history[::-1]) == [1, 2, 3, 4, 5]
    assert history[0] in history and history.index(history[2]) == 2
    assert ids(reversed(history)) == [1, 2, 3, 4, 5]
    with pytest.raises(IndexError):
        history[5]
    assert len(History([])) == 0 and not History([])


# -- rows, CSV, JSON ------------------------------------------------------------------------
def test_rows_columns_and_values(history: History, journal: Journal) -> None:
    rows = history.rows()
    assert all(list(row) == list(COLUMNS) for row in rows)
    names = (
        "id created prompt endpoint model mode seed status request_id parent_id cost files cached tags error"
        " rating changed_fraction ssim_outside phash_distance reproducible"
    )
    assert list(COLUMNS) == names.split(" ")
    by_id = {row["id"]: row for row in rows}

    fox = by_id[1]
    created = dt.datetime.fromisoformat(fox["created"])
    assert created.tzinfo is not None  # local time with its offset: unambiguous
    assert abs(created.timestamp() - journal.get(1).created) < 1
    assert (fox["prompt"], fox["model"], fox["mode"]) == (FOX, "max", "text-to-image")
    assert (fox["seed"], fox["status"]) == (42, "done")
    assert (fox["request_id"], fox["parent_id"], fox["cost"], fox["cached"]) == ("req-1", None, 0.08, False)
    assert fox["files"] == [str(journal.folder / "images" / "1.jpg")] and Path(fox["files"][0]).is_absolute()
    assert fox["tags"] == ["fox", "snow"] and fox["error"] is None

    edit = by_id[2]
    assert (edit["endpoint"], edit["model"], edit["mode"], edit["parent_id"]) == (EDIT, "pro", "edit", 1)
    assert [Path(f).name for f in edit["files"]] == ["2a.png", "2b.png"]
    assert (by_id[3]["status"], by_id[3]["error"]) == ("failed", XSS_ERROR)
    assert (by_id[4]["status"], by_id[4]["seed"], by_id[4]["files"]) == ("submitted", None, [])
    assert (by_id[5]["cached"], by_id[5]["cost"], by_id[5]["seed"]) == (True, 0.0, 42)


def test_unknown_endpoint_does_not_break_the_table(history: History) -> None:
    """A journal written by a newer version may name an endpoint this one does not know."""
    future = History([replace(history[0], endpoint="fal-ai/flux-pro/kontext/ultra")])
    assert (future.rows()[0]["model"], future.rows()[0]["mode"]) == (None, None)
    assert "fal-ai/flux-pro/kontext/ultra" in repr(future)
    assert "kontext/ultra" in future._repr_mimebundle_()["text/html"]


def test_csv_round_trip(history: History, tmp_path: Path) -> None:
    out = history.to_csv(tmp_path / "history.csv")
    assert out == tmp_path / "history.csv"
    with out.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(COLUMNS)
        rows = {int(row["id"]): row for row in reader}
    assert len(rows) == 5
    assert rows[1]["prompt"] == FOX and rows[2]["prompt"] == UNICODE  # commas, quotes, newline, unicode survive
    assert rows[1]["tags"] == "fox;snow" and rows[1]["seed"] == "42" and float(rows[1]["cost"]) == 0.08
    assert rows[2]["files"].split(";") == history.rows()[3]["files"]
    assert rows[4]["seed"] == "" and rows[4]["files"] == "" and rows[4]["error"] == ""
    assert rows[3]["error"] == XSS_ERROR
    assert dt.datetime.fromisoformat(rows[1]["created"]) == dt.datetime.fromisoformat(history.rows()[4]["created"])


def test_json_round_trip(history: History, tmp_path: Path) -> None:
    out = history.to_json(str(tmp_path / "history.json"))
    assert out == tmp_path / "history.json"
    text = out.read_text(encoding="utf-8")
    assert "日本語" in text  # ensure_ascii=False: readable, not \\u escapes
    loaded = json.loads(text)
    assert loaded == history.rows()
    assert loaded[3]["files"] == [str(history[3].folder / "images" / n) for n in ("2a.png", "2b.png")]
    assert loaded[0]["tags"] == [] and loaded[-1]["tags"] == ["fox", "snow"]


def test_exports_of_an_empty_history(tmp_path: Path) -> None:
    empty = History([])
    assert empty.rows() == []
    assert json.loads(empty.to_json(tmp_path / "e.json").read_text()) == []
    assert empty.to_csv(tmp_path / "e.csv").read_text(encoding="utf-8").strip() == ",".join(COLUMNS)
    df = empty.to_pandas()
    assert list(df.columns) == list(COLUMNS) and len(df) == 0


# -- pandas ---------------------------------------------------------------------------------
def test_to_pandas_dtypes_and_values(history: History) -> None:
    df = history.to_pandas()
    assert list(df.columns) == list(COLUMNS) and len(df) == 5
    assert pd.api.types.is_datetime64_any_dtype(df["created"])
    assert str(df["seed"].dtype) == "Int64" and str(df["parent_id"].dtype) == "Int64"
    assert df["cost"].dtype == "float64" and df["cached"].dtype == bool and df["id"].dtype == "int64"
    row = df.set_index("id")
    assert row.loc[4, "seed"] is pd.NA and row.loc[1, "seed"] == 42 and row.loc[2, "parent_id"] == 1
    local = dt.datetime.fromtimestamp(history[-1].created)  # local wall-clock time, as the table shows it
    assert abs((row.loc[1, "created"] - pd.Timestamp(local)).total_seconds()) < 0.001
    assert row.loc[2, "files"] == history.rows()[3]["files"] and row.loc[1, "tags"] == ["fox", "snow"]
    assert row.loc[5, "cached"] and df["cost"].sum() == pytest.approx(0.16)


def test_to_pandas_without_pandas_says_how_to_get_it(history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` raise ImportError
    with pytest.raises(KontextError, match=r"^to_pandas needs pandas: pip install pandas$") as info:
        history.to_pandas()
    assert isinstance(info.value, ImportError)


# -- text -----------------------------------------------------------------------------------
def test_text_table(history: History) -> None:
    text = repr(history)
    lines = text.splitlines()
    assert lines[0].split() == ["id", "created", "status", "model/mode", "seed", "cost", "prompt"]
    assert len(lines) == 1 + 5 + 1 and lines[-1].startswith("5 jobs")
    fox = next(line for line in lines if line.lstrip().startswith("@1 "))
    assert "done" in fox and "max/text-to-image" in fox and " 42 " in fox and "$0.08" in fox
    local = dt.datetime.fromtimestamp(history[-1].created).strftime("%Y-%m-%d %H:%M")
    assert local in fox
    assert "cached" in next(line for line in lines if line.lstrip().startswith("@5 "))
    assert "café ☕ 日本語, a line and a second" in text  # the newline does not break the table
    long_line = next(line for line in lines if line.lstrip().startswith("@4 "))
    prompt = long_line[lines[0].index("prompt") :]
    assert prompt.endswith("...") and len(prompt) <= 50 and LONG.startswith(prompt[:-3])
    starts = {re.search(r"(model|max|pro)/", line).start() for line in lines[:-1]}  # type: ignore[union-attr]
    assert len(starts) == 1  # fixed width: model/mode lines up under its header
    assert history._repr_mimebundle_()["text/plain"] == text


def test_text_of_empty_and_single(history: History) -> None:
    assert repr(History([])) == "no jobs"
    assert repr(history[:1]).splitlines()[-1].startswith("1 job ")


# -- HTML -----------------------------------------------------------------------------------
def test_html_embeds_thumbnails_of_existing_files(history: History) -> None:
    page = history._repr_mimebundle_()["text/html"]
    # @5 and @1 show the red image, @2 the blue one (its first image); @3 and @4 have no files
    images = thumbnails(page)
    assert len(images) == 3
    assert all(max(im.size) <= 64 for im in images)
    centres = [im.getpixel((im.width // 2, im.height // 2)) for im in images]
    assert [px.index(max(px)) for px in centres] == [0, 2, 0]  # red, blue, red: each record's own first image
    assert "http" not in page and "<link" not in page and "<style" not in page  # self-contained


def test_html_missing_or_unreadable_file_shows_no_broken_image(history: History, journal: Journal) -> None:
    (journal.folder / "images" / "1.jpg").unlink()  # @1 and its cached copy @5
    (journal.folder / "images" / "2a.png").write_bytes(b"not an image")
    page = history._repr_mimebundle_()["text/html"]
    assert page.count("<img") == 0
    assert page.count(">missing</span>") == 3


def test_html_thumbnail_follows_a_rewritten_file(history: History, journal: Journal) -> None:
    """Thumbnails are cached between renders, but not past a change to the file."""
    centre = [im.getpixel((im.width // 2, im.height // 2)) for im in thumbnails(repr_html(history))]
    assert [px.index(max(px)) for px in centre] == [0, 2, 0]
    write_image(journal.folder, "1.jpg", "blue", size=(300, 120))  # @1 and @5 show this file
    centre = [im.getpixel((im.width // 2, im.height // 2)) for im in thumbnails(repr_html(history))]
    assert [px.index(max(px)) for px in centre] == [2, 2, 2]


def repr_html(history: History) -> str:
    return history._repr_mimebundle_()["text/html"]


def test_html_content(history: History) -> None:
    page = history._repr_mimebundle_()["text/html"]
    assert "<b>42</b>" in page and "<b>7</b>" in page  # seeds in bold
    assert "$0.08" in page and "cached" in page
    assert "@1" in page and "max/text-to-image" in page and "pro/edit" in page
    assert html_text(XSS_ERROR) in page  # the failed row shows its error
    assert "café ☕ 日本語" in page
    assert "5 jobs · $0.16" in page and "thumbnails for the first" not in page


def html_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_html_escapes_every_user_string(history: History) -> None:
    page = history._repr_mimebundle_()["text/html"]
    assert html_text(XSS_PROMPT) in page and html_text(XSS_ERROR) in page and html_text("#<b>tag</b>") in page
    assert "<script" not in page.lower() and "<img src=x" not in page
    assert page.count("<table") == 1 and page.count("</table>") == 1
    assert page.count("<tr") == page.count("</tr>") == 6
    quoted = History([replace(history[0], prompt='" onmouseover="alert(1)')])._repr_mimebundle_()["text/html"]
    assert '" onmouseover="' not in quoted and "&quot; onmouseover=&quot;" in quoted  # attributes too


def test_html_caps_rows_at_500(history: History) -> None:
    big = many(history[-1], MAX_ROWS + 123)
    page = big._repr_mimebundle_()["text/html"]
    assert page.count("<tr") == 1 + MAX_ROWS + 1  # header, 500 rows, the summary
    assert f"@{MAX_ROWS + 123 - MAX_ROWS + 1}<" in page and f"@{MAX_ROWS + 123 - MAX_ROWS}<" not in page
    assert "… and 123 more (use limit= or .to_pandas())" in page
    assert f"{MAX_ROWS + 123} jobs" in page
    text = repr(big).splitlines()
    assert len(text) == 1 + MAX_ROWS + 2 and text[-2] == "… and 123 more (use limit= or .to_pandas())"
    assert "more (use limit=" not in many(history[-1], MAX_ROWS)._repr_mimebundle_()["text/html"]


def test_html_thumbnails_only_for_the_first_50_rows(history: History) -> None:
    page = many(history[-1], MAX_THUMBNAILS + 10)._repr_mimebundle_()["text/html"]
    assert len(thumbnails(page)) == MAX_THUMBNAILS
    assert f"thumbnails for the first {MAX_THUMBNAILS} rows" in page
    page = many(history[-1], MAX_THUMBNAILS)._repr_mimebundle_()["text/html"]
    assert len(thumbnails(page)) == MAX_THUMBNAILS and "thumbnails for the first" not in page


def test_empty_html() -> None:
    bundle = History([])._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert "no jobs" in bundle["text/html"] and "<table" not in bundle["text/html"]


# -- Journal.search through History ---------------------------------------------------------
def test_search_filters(history: History, journal: Journal) -> None:
    def found(**filters: object) -> list[int]:
        return [row["id"] for row in History(journal.search(**filters)).rows()]  # type: ignore[arg-type]

    assert found(search="RED fox") == [5, 1]  # every word, any case, newest first
    assert found(search="fox café") == []
    assert found(search="日本語") == [2]
    assert found(seed=7) == [2] and found(seed=42) == [5, 1]
    assert found(status="failed") == [3] and found(status="submitted") == [4]
    assert found(tag="fox") == [1] and found(tag="<b>tag</b>") == [3] and found(tag="fo") == []
    assert found(endpoint=EDIT) == [2]
    assert found(since=journal.get(4).created) == [5, 4]
    assert found(limit=2) == [5, 4] and found(search="fox", limit=1) == [5]
    assert found(search="%") == [] and found(search="_") == []  # LIKE wildcards are taken literally
