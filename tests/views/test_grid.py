"""Grids: sweep results as labelled HTML tables, text, composite images and PNGs that carry every cell's metadata."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from kontext_nb.errors import JobFailed
from kontext_nb.journal import metadata
from kontext_nb.result import Result
from kontext_nb.sweep import Sweep, build_sweep
from kontext_nb.views.grid import Grid

ENDPOINT = "fal-ai/flux-pro/kontext/max/text-to-image"


def png_of(image: Image.Image) -> bytes:
    """An image's PNG file (a Result keeps its images as files)."""
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def make_result(prompt: str, seed: int | None, *, colour: str = "red", images: int = 1, nsfw: bool = False) -> Result:
    pics = [Image.new("RGB", (64, 48), colour) for _ in range(images)]
    return Result(
        endpoint=ENDPOINT,
        request_id=f"req-{seed}-{prompt.replace(' ', '-')}",
        arguments={"prompt": prompt, "seed": seed},
        seed=seed,
        prompt=prompt,
        image_bytes=[png_of(pic) for pic in pics],
        content_types=["image/png"] * images,
        urls=[""] * images,
        has_nsfw_concepts=[nsfw] * images,
        timings={},
        cost=0.08 * images,
        files=[Path(f"/runs/{seed}.png")],
        journal_id=seed,
    )


def run(sweep: Sweep) -> list[Result]:
    return [make_result(c.prompt, c.arguments["seed"]) for c in sweep.cells]


def html_of(grid: Grid) -> str:
    return grid._repr_mimebundle_()["text/html"]


def test_two_axes_one_page_with_labelled_headers() -> None:
    sweep = build_sweep("a {cat|fox}", {"seed": "11,22,33"})
    grid = Grid(sweep, run(sweep))
    [page] = grid.pages()
    assert page.columns == ("cat", "fox") and page.rows == ("11", "22", "33")
    assert [[sweep.cells[i].arguments["seed"] for i in row] for row in page.cells] == [[11, 11], [22, 22], [33, 33]]
    assert [sweep.cells[i].prompt for i in page.cells[0]] == ["a cat", "a fox"]
    text = html_of(grid)
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", text)
    assert {"cat", "fox", "11", "22", "33"} <= set(headers)
    assert text.count('<img src="data:image/') == 6
    assert "seed 22" in text
    assert "prompt ↓ / seed →" not in text and "seed ↓ / prompt →" in text


def test_one_axis_is_a_single_row_and_zero_axes_a_single_cell() -> None:
    sweep = build_sweep("a cat", {"seed": "1-4"})
    [page] = Grid(sweep, run(sweep)).pages()
    assert page.columns == ("1", "2", "3", "4") and len(page.cells) == 1 and page.row_axis is None
    single = build_sweep("a cat", {"seed": (5,)})
    grid = Grid(single, run(single))
    [page] = grid.pages()
    assert page.cells == ((0,),) and page.column_axis is None
    assert html_of(grid).count("<img ") == 1
    assert "seed 5" in repr(grid)


def test_three_axes_make_pages_titled_by_the_third() -> None:
    sweep = build_sweep("a {cat|fox}", {"seed": "1,2", "guidance_scale": "2,3.5,5"})
    grid = Grid(sweep, run(sweep))
    pages = grid.pages()
    assert [p.title for p in pages] == ["guidance_scale 2", "guidance_scale 3.5", "guidance_scale 5"]
    for k, page in enumerate(pages):
        assert {sweep.cells[i].arguments["guidance_scale"] for row in page.cells for i in row} == {(2.0, 3.5, 5.0)[k]}
    text = html_of(grid)
    assert text.count("<table") == 3 and "guidance_scale 3.5</caption>" in text


def test_failed_and_missing_cells_show_escaped_errors() -> None:
    sweep = build_sweep("a {cat|fox}", {"seed": "1,2"})
    results: list = run(sweep)
    results[1] = JobFailed("<script>alert(1)</script> went wrong")
    results[2] = None
    grid = Grid(sweep, results)
    text = html_of(grid)
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; went wrong" in text
    assert "#fdecea" in text and "not run" in text
    plain = repr(grid)
    assert "failed" in plain and "JobFailed: <script>" in plain and "not run" in plain


def test_prompts_in_html_are_escaped_everywhere() -> None:
    sweep = build_sweep('a {"<b>"|x} & y', {"seed": "1,2"})
    text = html_of(Grid(sweep, run(sweep)))
    assert "<b>&quot;" not in text and '"<b>"' not in text
    assert "&quot;&lt;b&gt;&quot;" in text and "&amp; y" in text


def test_several_images_show_the_first_and_a_count() -> None:
    sweep = build_sweep("a cat", {"seed": "1,2"})
    results = [make_result("a cat", 1, images=3), make_result("a cat", 2)]
    grid = Grid(sweep, results)
    assert "seed 1 +2" in html_of(grid) and "seed 1 +2" in repr(grid)


def test_nsfw_images_are_blurred() -> None:
    sweep = build_sweep("a cat", {"seed": "1,2"})
    grid = Grid(sweep, [make_result("a cat", 1, nsfw=True), make_result("a cat", 2)])
    assert html_of(grid).count("filter:blur(") == 1


def test_results_must_match_cells() -> None:
    sweep = build_sweep("a cat", {"seed": "1,2"})
    with pytest.raises(ValueError, match="one per cell"):
        Grid(sweep, [None])


def test_image_has_headers_and_cells() -> None:
    sweep = build_sweep("a {cat|fox}", {"seed": "1,2,3"})
    results: list = [make_result(c.prompt, c.arguments["seed"], colour="blue") for c in sweep.cells]
    results[-1] = JobFailed("boom")
    image = Grid(sweep, results).image(cell_size=100)
    assert image.mode == "RGB"
    assert image.width > 2 * 100 and image.height > 3 * 100
    assert image.width < 2 * 100 + 200 and image.height < 3 * 130 + 150
    pixels = image.load()
    width, height = image.size
    # title band and the row-header strip hold dark text pixels
    top = [pixels[x, y] for x in range(width) for y in range(12)]
    left = [pixels[x, y] for x in range(30) for y in range(height // 3, height)]
    assert any(sum(p) < 300 for p in top)
    assert any(sum(p) < 300 for p in left)
    colours = image.getcolors(maxcolors=width * height)
    assert any(c == (0, 0, 255) for _, c in colours)
    assert any(c == (200, 200, 200) for _, c in colours)  # the failed cell


def test_image_of_each_page_and_preserved_aspect() -> None:
    sweep = build_sweep("a cat", {"seed": "1,2", "guidance_scale": "2,5", "model": "max,pro"})
    grid = Grid(sweep, run(sweep))
    assert len(grid.pages()) == 2
    first, second = grid.image(0, cell_size=80), grid.image(1, cell_size=80)
    assert first.size == second.size
    blue = Image.new("RGB", (200, 50), "blue")
    wide = make_result("a cat", 1)
    wide.image_bytes = [png_of(blue)]
    single = build_sweep("a cat", {"seed": (1,)})
    tile = Grid(single, [wide]).image(cell_size=100)
    rows = [y for y in range(tile.height) if tile.getpixel((tile.width // 2, y)) == (0, 0, 255)]
    assert 20 <= len(rows) <= 30  # 200x50 contained in 100x100 is 100x25


def test_save_one_page_round_trips_metadata(tmp_path: Path) -> None:
    sweep = build_sweep("a {cat|fox}", {"seed": "1,2"})
    results: list = run(sweep)
    results[3] = JobFailed("nope", request_id="req-failed")
    [path] = Grid(sweep, results).save(tmp_path / "grid.png")
    assert path == tmp_path / "grid.png"
    assert Image.open(path).format == "PNG"
    meta = metadata.read(path)
    assert meta["prompt"] == "a {cat|fox}" and meta["seed"] is None
    grid = meta["kontext_nb_grid"]
    assert [a["labels"] for a in grid["axes"]] == [["cat", "fox"], ["1", "2"]]
    cells = grid["cells"]
    assert len(cells) == 4
    assert {(c["prompt"], c["seed"]) for c in cells} == {("a cat", 1), ("a cat", 2), ("a fox", 1), ("a fox", 2)}
    done = next(c for c in cells if c["coords"] == [1, 0])
    assert done["request_id"] == "req-1-a-fox" and done["files"] == ["/runs/1.png"] and done["journal_id"] == 1
    assert done["endpoint"] == ENDPOINT and done["arguments"]["prompt"] == "a fox"
    failed = next(c for c in cells if c["coords"] == [1, 1])
    assert failed["status"] == "failed" and failed["request_id"] == "req-failed" and "nope" in failed["error"]


def test_save_many_pages_names_files_by_page(tmp_path: Path) -> None:
    sweep = build_sweep("a cat", {"seed": "1,2", "guidance_scale": "2,5", "output_format": "jpeg,png"})
    grid = Grid(sweep, run(sweep))
    paths = grid.save(tmp_path / "sweep.png")
    assert [p.name for p in paths] == ["sweep-p1.png", "sweep-p2.png"]
    for k, path in enumerate(paths):
        meta = metadata.read(path.read_bytes())
        assert meta["prompt"] == f"a cat — output_format {('jpeg', 'png')[k]}"
        assert len(meta["kontext_nb_grid"]["cells"]) == 4
        assert {c["arguments"]["seed"] for c in meta["kontext_nb_grid"]["cells"]} == {1, 2}
    [only] = grid.save(tmp_path / "second.png", page=1)
    assert only.name == "second.png" and metadata.read(only)["kontext_nb_grid"]["page"] == 1
    with pytest.raises(ValueError, match="PNG"):
        grid.save(tmp_path / "grid.jpg")


def test_saved_png_is_the_composite(tmp_path: Path) -> None:
    sweep = build_sweep("a cat", {"seed": "1,2"})
    grid = Grid(sweep, run(sweep))
    [path] = grid.save(tmp_path / "g.png")
    assert Image.open(io.BytesIO(path.read_bytes())).size == grid.image().size
