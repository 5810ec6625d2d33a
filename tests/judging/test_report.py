"""Point 4 (without the browser): kx.report writes one self-contained HTML file, and a zip with the full files."""

from __future__ import annotations

import base64
import csv
import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

import kontext_nb as kx
from kontext_nb.errors import ValidationError
from kontext_nb.result import Result


def test_the_report_holds_everything_inline(made: Callable[..., list[Result]], tmp_path: Path) -> None:
    a, b = made(2, prompt="a <b>bold</b> lighthouse")
    edit = kx.edit(a, "make it night", seed=9)
    assert isinstance(edit, Result)
    kx.rate(a, 4)
    kx.vote(b, a)
    path = kx.report([a, b, edit], tmp_path / "out" / "report.html", size=200)
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page, re.I)
    assert "url(" not in page and "@import" not in page
    images = re.findall(r'<img[^>]+src="data:image/(jpeg|png);base64,([^"]+)"', page)
    assert len(images) >= 3 + 1 + 2  # three results, one heat map, the lineage strip
    first = Image.open(io.BytesIO(base64.b64decode(images[0][1])))
    assert max(first.size) == 200
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page  # prompts are escaped
    for text in ("★★★★☆", "Ranking", a.ref, edit.ref, f"seed</dt><dd>{a.seed}", "changed", "pHash", "lineage"):
        assert text in page, text
    assert "@media print" in page and "break-inside:avoid" in page


def test_report_of_a_history_and_the_zip(made: Callable[..., list[Result]], tmp_path: Path) -> None:
    made(3)
    path = kx.report(kx.history(), tmp_path / "all.html", zip=True)
    archive = zipfile.ZipFile(path.with_suffix(".zip"))
    names = archive.namelist()
    assert "all.html" in names and "results.csv" in names
    assert len([n for n in names if n.startswith("images/")]) == 3
    rows = list(csv.DictReader(io.StringIO(archive.read("results.csv").decode())))
    assert len(rows) == 3 and "rating" in rows[0]


@pytest.mark.parametrize(("kwargs", "words"), [({"size": 10}, "size=10"), ({"path": "x.pdf"}, "x.pdf")])
def test_bad_report_arguments(made: Callable[..., list[Result]], tmp_path: Path, kwargs: dict, words: str) -> None:
    made(1)
    args = {"path": str(tmp_path / "r.html"), **kwargs}
    with pytest.raises(ValidationError) as info:
        kx.report("@last", **args)
    assert words in str(info.value)


def test_the_report_is_a_link_in_a_notebook(
    made: Callable[..., list[Result]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22 point 6: kx.report() in a notebook shows a link that opens it, not a bare path."""
    a, b = made(2)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    path = kx.report([a, b], "reports/lesson.html")
    assert isinstance(path, Path) and path.read_text().startswith("<!")
    assert '<a href="reports/lesson.html" target="_blank"' in path._repr_html_()  # type: ignore[attr-defined]
    elsewhere = kx.report([a, b], tmp_path.parent / f"{tmp_path.name}-out.html")
    shown = elsewhere._repr_html_()  # type: ignore[attr-defined]
    assert "<a " not in shown and "outside the notebook's folder" in shown
