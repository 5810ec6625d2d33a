"""Point 1: kx.rate, the rating column in history and its exports, the min_rating filter, the files' metadata."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

import kontext_nb as kx
from kontext_nb.errors import ValidationError
from kontext_nb.result import Result


def test_rate_shows_in_history_exports_and_filter(made: Callable[..., list[Result]], tmp_path: Path) -> None:
    a, b, c = made(3)
    assert kx.rate(a, 5) == 5
    assert kx.rate(b.ref, 3) == 3
    rows = {row["id"]: row for row in kx.history().rows()}
    assert rows[a.journal_id]["rating"] == 5 and rows[b.journal_id]["rating"] == 3
    assert rows[c.journal_id]["rating"] is None
    assert [r.id for r in kx.history(min_rating=4)] == [a.journal_id]
    assert {r.id for r in kx.history(min_rating=3)} == {a.journal_id, b.journal_id}
    df = kx.history().to_pandas()
    assert str(df["rating"].dtype) == "Int64"
    assert df.set_index("id").loc[a.journal_id, "rating"] == 5
    csv_text = kx.history().to_csv(tmp_path / "h.csv").read_text(encoding="utf-8")
    assert csv_text.splitlines()[0].split(",")[15] == "rating"
    data = json.loads(kx.history().to_json(tmp_path / "h.json").read_text(encoding="utf-8"))
    assert {row["id"]: row["rating"] for row in data}[b.journal_id] == 3
    assert "★★★☆☆" in kx.history()._repr_mimebundle_()["text/html"]


def test_rating_is_written_into_the_image_file_and_cleared(made: Callable[..., list[Result]]) -> None:
    (r,) = made(1, output_format="png")
    path = r.files[0]
    pixels = Image.open(path).tobytes()
    kx.rate(r, 4)
    assert kx.read_metadata(path)["rating"] == 4
    assert kx.read_metadata(path)["seed"] == r.seed  # what was there stays
    assert Image.open(path).tobytes() == pixels  # pixels untouched
    assert kx.rate(r, 0) is None
    assert "rating" not in kx.read_metadata(path)
    assert kx.history()[0].rating is None


def test_exiftool_reads_the_rating_from_a_jpeg(made: Callable[..., list[Result]]) -> None:
    (r,) = made(1, output_format="jpeg")
    kx.rate(r, 2)
    out = subprocess.run(["exiftool", "-j", "-XMP:Rating", str(r.files[0])], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)[0]["Rating"] == 2  # the standard XMP rating photo tools show


@pytest.mark.parametrize("stars", [6, -1, 2.5, True, "4", None])
def test_bad_stars_are_refused_in_one_line(made: Callable[..., list[Result]], stars: object) -> None:
    (r,) = made(1)
    with pytest.raises(ValidationError) as info:
        kx.rate(r, stars)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(stars) in message and "0 to 5" in message and "\n" not in message


def test_min_rating_is_checked(made: Callable[..., list[Result]]) -> None:
    made(1)
    for bad in (0, 6, "4", True):
        with pytest.raises(ValidationError) as info:
            kx.history(min_rating=bad)  # type: ignore[arg-type]
        assert f"min_rating={bad!r} is not allowed: give a whole number from 1 to 5" == str(info.value)
