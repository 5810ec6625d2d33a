"""The Compare tab from Python (no browser): what CompareWidget is given, images as buffers sent once, the grid's
full-resolution export and its download link, and the FileServer behind every open/download link."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.sweep import build_sweep
from kontext_nb.views.grid import Grid
from kontext_nb.widgets import files
from kontext_nb.widgets.compare_view import CompareView
from kontext_nb.widgets.compare_widget import MAX_ITEMS, CompareWidget
from kontext_nb.widgets.front import ImageBuffer


def generated(session: Session, prompt: str, **arguments: Any) -> Result:
    result = session.generate(prompt, **arguments)
    assert isinstance(result, Result)
    return result


def test_two_results_reach_the_browser_as_their_files_with_what_differs(session: Session) -> None:
    one = generated(session, "a red fox in snow", seed=1)
    two = generated(session, "a red fox in rain", seed=2, guidance_scale=7)
    view = CompareView()
    assert "pick results" in view.message.value and view.view.items == []
    view.add(one)
    view.add(two)
    view.add(two)
    assert view.items == [one, two]
    items = view.view.items
    assert [i["label"] for i in items] == [one.ref, two.ref]
    assert ["rain", True] in items[1]["words"] and ["snow", True] in items[0]["words"]
    assert "seed 2" in items[1]["caption"]
    rows = {name: (values, hot) for name, values, hot in view.view.rows}
    assert rows["guidance_scale"] == (["3.5", "7.0"], [False, True]) and rows["seed"][1] == [False, True]
    buffers = [i["image"] for i in items]
    assert all(isinstance(b, ImageBuffer) for b in buffers)
    # the files as saved (metadata inside), full resolution, under a readable name
    assert buffers[0].value == one.image_bytes[0] == one.files[0].read_bytes()
    assert (buffers[0].width, buffers[0].height) == one.images[0].size and buffers[0].full
    assert buffers[0].name == f"{one.journal_id:04d}-seed1-a-red-fox-in-snow.jpg"
    # synced as references to buffer models: the JSON state holds no image bytes and no base64
    state = view.view.get_state()
    assert state["items"][0]["image"] == f"IPY_MODEL_{buffers[0].model_id}"
    assert all(not isinstance(v, bytes) for v in state.values())
    view.close()


def test_adding_a_result_sends_only_the_new_image(session: Session) -> None:
    view = CompareView()
    first = [generated(session, "a cat", seed=s) for s in (1, 2)]
    for result in first:
        view.add(result)
    before = [i["image"] for i in view.view.items]
    view.add(generated(session, "a cat", seed=3))
    after = [i["image"] for i in view.view.items]
    assert after[:2] == before and after[2] not in before  # the same models: nothing re-sent
    view.remove(0)
    assert before[0].comm is None and before[1].comm is not None  # the one removed is closed, in kernel and browser
    view.close()
    assert all(b.comm is None for b in after)


def test_an_edit_alone_is_overlaid_on_its_source(session: Session) -> None:
    source = generated(session, "a house", seed=1)
    edit = session.edit(source, "paint the house blue", seed=2)
    assert isinstance(edit, Result)
    view = CompareView()
    view.add(edit)
    assert [i["label"] for i in view.view.items] == ["source", edit.ref] and view.view.mode == "slider"
    assert view.view.items[0]["image"].value == edit.inputs[0].data  # the source file as it was, not re-encoded
    view.add(source)
    assert ["blue", True] in view.view.items[0]["words"]
    view.remove(0)
    assert "add another" in view.message.value and len(view.view.items) == 1
    view.clear_button.click()
    assert view.items == [] and view.view.items == [] and view.view.layout.display == "none"
    view.close()


def test_at_most_eight_results(session: Session) -> None:
    view = CompareView()
    results = [generated(session, "a dog", seed=s) for s in range(1, MAX_ITEMS + 2)]
    for result in results:
        view.add(result)
    assert view.items == results[1:] and len(view.view.items) == MAX_ITEMS
    view.close()


def test_the_widget_refuses_what_it_does_not_know() -> None:
    with pytest.raises(TypeError, match="unexpected keyword"):
        CompareWidget(colour="red")
    with pytest.raises(ValueError, match="choose one of"):
        CompareWidget(mode="zoom")


def test_a_sweep_grid_exports_at_full_resolution_with_a_download_link(session: Session, tmp_path: Path) -> None:
    sweep = build_sweep("a {cat|fox}", {"seed": "1,2"})
    results = [generated(session, c.prompt, model=c.model, **c.arguments) for c in sweep.cells]
    view = CompareView()
    assert view.grid_box.layout.display == "none"
    view.show_grid(Grid(sweep, results))
    assert view.grid_box.layout.display != "none" and view.grid_html.value.count('<img src="data:image/') == 4
    view.export.click()
    [saved] = sorted((session.tracker.journal.folder / "grids").glob("*.png"))
    side = max(results[0].images[0].size)
    with Image.open(saved) as png:
        assert png.format == "PNG" and png.width >= 2 * side  # two columns, each image at full size
        assert "kontext_nb_grid" in "".join(str(v) for v in png.info.values())
    first = min(r.journal_id for r in results if r.journal_id is not None)
    assert f'data-kx-name="grid-{first:04d}-a-cat-fox.png"' in view.export_status.value
    assert "file://" not in view.export_status.value and 'data-kx-action="download"' in view.export_status.value
    assert view.export_grid()[0] != saved  # a second export never overwrites the first
    elsewhere = CompareView(folder=tmp_path)
    elsewhere.show_grid(Grid(sweep, results))
    assert elsewhere.export_grid()[0].parent == tmp_path / "grids"
    view.close()
    elsewhere.close()


# -- the FileServer ------------------------------------------------------------------------------------------
def fetch(server: files.FileServer, token: str) -> tuple[dict[str, Any], list[bytes]]:
    sent: list[tuple[dict[str, Any], list[bytes]]] = []
    server.send = lambda content, buffers=None: sent.append((content, list(buffers or [])))
    server._message(server, {"kind": "fetch", "token": token, "request": 7}, [])
    [answer] = sent
    return answer


def test_links_name_a_token_and_the_server_sends_that_file_only(session: Session, tmp_path: Path) -> None:
    result = generated(session, "a <b>bold</b> fox", seed=42)
    html = files.links_html(result)
    assert "file://" not in html and str(result.files[0]) not in html and "<b>" not in html
    assert f'data-kx-name="{result.journal_id:04d}-seed42-a-b-bold-b-fox.jpg"' in html
    token = html.split('data-kx-file="')[1].split('"')[0]
    server = files.FileServer()
    content, buffers = fetch(server, token)
    assert content == {"kind": "file", "token": token, "request": 7, "mime": "image/jpeg"}
    assert buffers == [result.files[0].read_bytes()] and server.served == 1
    content, buffers = fetch(server, "not-a-token")  # a path never put on a page is never read
    assert "not shown by this kernel" in content["error"] and buffers == []
    gone = tmp_path / "gone.jpg"
    gone.write_bytes(b"x")
    token = files.token(gone)
    gone.unlink()
    content, _ = fetch(server, token)
    assert "cannot read" in content["error"]
    server.close()


def test_a_plain_image_is_sent_as_png_and_huge_ones_are_capped() -> None:
    from kontext_nb.widgets import front

    big = Image.new("RGB", (front.MAX_SIDE + 100, 10), "red")
    out = io.BytesIO()
    big.save(out, "JPEG")
    buffer = front.image_buffer(out.getvalue(), "image/jpeg", "big.jpg")
    assert not buffer.full and buffer.width == front.MAX_SIDE
    with Image.open(io.BytesIO(buffer.value)) as image:
        assert image.width == front.MAX_SIDE
    buffer.close()


# -- issue 22: a new pair replaces an old sweep grid; "what changed" is an overlay on the image --------------------
def test_a_new_pair_replaces_the_sweep_grid_shown_before(session: Session) -> None:
    sweep = build_sweep("a {cat|fox}", {"seed": "1"})
    results = [generated(session, c.prompt, model=c.model, **c.arguments) for c in sweep.cells]
    view = CompareView()
    view.show_grid(Grid(sweep, results))
    assert view.grid_box.layout.display != "none"
    view.replace(results)
    assert view.grid_box.layout.display == "none", "the old grid stays under the new pair"
    view.show_grid(Grid(sweep, results))
    view.add(generated(session, "a dog", seed=3))
    assert view.grid_box.layout.display == "none"
    view.close()


def test_what_changed_overlays_the_heat_map_on_the_pair(session: Session) -> None:
    fox = generated(session, "a red fox", seed=3)
    blue = session.edit(fox, "make the fox blue", seed=7)
    assert isinstance(blue, Result)
    view = CompareView()
    view.add(blue)
    assert view.view.overlay is None
    view.changes.value = True
    overlay = view.view.overlay
    assert isinstance(overlay, ImageBuffer) and overlay.mime == "image/png"
    with Image.open(io.BytesIO(overlay.value)) as heat:
        assert heat.mode == "RGBA" and heat.getextrema()[3][1] > 0, "red where the edit changed, clear elsewhere"
        assert heat.width / heat.height == pytest.approx(blue.images[0].width / blue.images[0].height, rel=0.02)
    assert "changed" in view.view.overlay_note and "<img" not in view.before_after.value, "no second image"
    view.changes.value = False
    assert view.view.overlay is None
    view.close()
