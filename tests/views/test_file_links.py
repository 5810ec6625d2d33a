"""A result's static HTML reaches its image files with no kernel, no JavaScript and no ``file://`` link.

Below the notebook's folder, "full size" and "download" are relative links (Jupyter serves them); elsewhere the
file itself is embedded once for "full size" (shown at its natural size) and once for "download" (under its readable
name), up to a limit; a larger file is named as text with the reason. Real results: a session on the sandbox.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from shell import Shell  # tests/shell.py

from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.views.render import result_html, result_text

DATA_URI = re.compile(r"data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)")


def links():  # type: ignore[no-untyped-def]
    import kontext_nb.views.links

    return kontext_nb.views.links


def made(session: Session, prompt: str = "a red fox in the snow", seed: int = 42) -> Result:
    result = session.generate(prompt, seed=seed)
    assert result.files and result.files[0].exists()
    return result


def attribute(markup: str, tag_re: str, name: str) -> list[str]:
    """The ``name`` attribute of every tag matching ``tag_re`` (unescaped)."""
    found = []
    for tag in re.findall(tag_re, markup):
        value = re.search(rf'\s{name}="([^"]*)"', tag)
        if value:
            found.append(html.unescape(value[1]))
    return found


def decoded(uri: str) -> bytes:
    match = DATA_URI.fullmatch(uri)
    assert match, uri[:60]
    return base64.b64decode(match[2])


@pytest.fixture
def inside(make_session: Callable[..., Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    """A session whose runs folder is below the notebook's folder (the kernel's working folder)."""
    notebook = tmp_path / "project"
    notebook.mkdir()
    monkeypatch.chdir(notebook)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    return make_session(runs_dir=str(notebook / "runs"))


@pytest.fixture
def outside(make_session: Callable[..., Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    """A session whose runs folder is beside, not below, the notebook's folder."""
    notebook = tmp_path / "notebooks"
    notebook.mkdir()
    monkeypatch.chdir(notebook)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    return make_session(runs_dir=str(tmp_path / "elsewhere" / "runs"))


def test_below_the_notebook_folder_full_size_and_download_are_relative_links(inside: Session) -> None:
    result = made(inside)
    page = result_html(result)
    relative = f"runs/images/{result.files[0].name}"
    assert attribute(page, r"<a [^>]*>full size</a>", "href") == [relative]
    assert attribute(page, r"<a [^>]*>download</a>", "href") == [relative]
    name = attribute(page, r"<a [^>]*>download</a>", "download")
    assert len(name) == 1 and re.fullmatch(r"\d{4}-seed42-a-red-fox-in-the-snow\.jpg", name[0]), name
    assert "file:" not in page and str(result.files[0]) not in page
    assert len(DATA_URI.findall(page)) == 1, "only the thumbnail is embedded: the file is linked"


def test_elsewhere_the_file_is_embedded_for_full_size_and_download(outside: Session) -> None:
    result = made(outside)
    page = result_html(result)
    on_disk = result.files[0].read_bytes()
    assert "file:" not in page and str(result.files[0].parent) not in page
    (download,) = attribute(page, r"<a [^>]*>download</a>", "href")
    assert decoded(download) == on_disk, "download: the file's exact bytes"
    (name,) = attribute(page, r"<a [^>]*>download</a>", "download")
    assert re.fullmatch(r"\d{4}-seed42-a-red-fox-in-the-snow\.jpg", name), name
    full = re.search(r"<details[^>]*><summary[^>]*>full size[^<]*</summary>(.*?)</details>", page, re.S)
    assert full, "full size: a <details> that shows the image when opened (no script, no navigation)"
    (shown,) = attribute(full[1], r"<img [^>]*>", "src")
    assert decoded(shown) == on_disk and "max-width:none" in full[1], "shown at its natural size"
    thumbnails = [u for u in attribute(page, r"<img [^>]*>", "src") if u != shown]
    assert len(thumbnails) == 1 and len(thumbnails[0]) < len(shown), "the picture in the output is a thumbnail"


def test_a_file_over_the_limit_is_named_as_text_with_the_reason(
    outside: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = made(outside)
    monkeypatch.setattr(links(), "EMBED_LIMIT", len(result.image_bytes[0]) - 1)
    page = result_html(result)
    assert len(DATA_URI.findall(page)) == 1, "only the thumbnail"
    assert "<details" not in page and 'download="' not in page and "file:" not in page
    text = re.sub(r"<[^>]+>", "", html.unescape(page))
    assert str(result.files[0]) in text, "the path, to copy"
    assert re.search(r"not embedded: \d+(\.\d)? [kM]B, over the [\d.]+ [kM]B limit", text), text


def test_the_notebook_folder_is_where_jupyter_opened_the_notebook(
    inside: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jupyter_server tells the kernel its notebook's path (JPY_SESSION_NAME): a %cd in the notebook changes nothing."""
    result = made(inside)
    notebook = Path.cwd()
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook / "make.ipynb"))
    monkeypatch.chdir(tmp_path)
    assert links().notebook_folder() == notebook
    assert attribute(result_html(result), r"<a [^>]*>full size</a>", "href") == [f"runs/images/{result.files[0].name}"]
    monkeypatch.setenv("JPY_SESSION_NAME", "not-a-path")
    assert links().notebook_folder() == tmp_path


def test_paths_are_escaped_in_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert links().relative_href(tmp_path / "my runs" / "a#1?.jpg") == "my%20runs/a%231%3F.jpg"
    assert links().relative_href(tmp_path.parent / "x.jpg") is None
    assert links().relative_href(Path("/elsewhere/x.jpg")) is None


def test_terminal_text_names_the_files(outside: Session) -> None:
    result = made(outside)
    text = result_text(result)
    assert f"file: {result.files[0]}" in text and "<" not in text and "data:" not in text


def test_the_limit_is_a_setting(shell: Shell, outside: Session) -> None:
    result = made(outside)
    try:
        shell.ip.run_line_magic("config", "Kontext.embed_limit_mb = 0")
        assert links().EMBED_LIMIT == 0
        page = result_html(result)
        assert len(DATA_URI.findall(page)) == 1 and "Kontext.embed_limit_mb" in page
        shell.ip.run_line_magic("config", "Kontext.embed_limit_mb = 2.5")
        assert links().EMBED_LIMIT == 2_500_000 and "<details" in result_html(result)
        with pytest.raises(ValueError, match="embed_limit_mb=-1"):
            links().set_embed_limit(-1)
    finally:
        links().set_embed_limit(1.0)


def test_the_panels_record_links_files_it_can_and_embeds_no_full_size(
    inside: Session, make_session: Callable[..., Session], tmp_path: Path
) -> None:
    """The record below a panel is re-sent whole on every update: thumbnails only, plus links Jupyter serves."""
    from kontext_nb.views.record import record_html

    near = made(inside)
    far = made(make_session(runs_dir=str(tmp_path / "elsewhere")), "a lighthouse at night", 3)
    page = record_html([near, far])
    assert attribute(page, r"<a [^>]*>full size</a>", "href") == [f"runs/images/{near.files[0].name}"]
    (name,) = attribute(page, r"<a [^>]*>download</a>", "download")
    assert re.fullmatch(r"\d{4}-seed42-a-red-fox-in-the-snow\.jpg", name), name
    assert "file:" not in page and "<details" not in page and len(DATA_URI.findall(page)) == 2, "two thumbnails"


def test_an_output_shows_its_image_at_512_px(inside: Session, sb: Any) -> None:
    """An output is where people look at images: as large as the panel's newest result, not a 320 px stamp."""
    import io

    from PIL import Image

    sb.configure(image_scale=1.0)  # fal's own size: 1024 px a side for 1:1
    result = made(inside)
    assert max(result.sizes[0]) > 512
    (src,) = attribute(result_html(result), r"<img [^>]*>", "src")[:1]
    assert max(Image.open(io.BytesIO(decoded(src))).size) == 512
