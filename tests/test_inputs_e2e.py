"""Each kind of image input, edited through the sandbox: sent inline, by URL, or uploaded."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageStat

import kontext_nb.sandbox as sandbox
from kontext_nb.config import Settings
from kontext_nb.errors import ImageInputError, ValidationError
from kontext_nb.session import Session

KEY = "inputs-test-key-42"


def solid(color: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> Image.Image:
    return Image.new("RGB", size, color)


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def redness(image: Image.Image) -> float:
    r, _, b = ImageStat.Stat(image.convert("RGB")).mean
    return r - b


def test_every_kind_of_source_is_edited(session: Session, tmp_path: Path) -> None:
    red = solid((220, 30, 30))
    path = tmp_path / "red.png"
    red.save(path)
    source_result = session.generate("a red square", seed=1)
    sources = {
        "path": str(path),
        "pathlib": path,
        "pil": red,
        "bytes": png(red),
        "data uri": "data:image/png;base64," + __import__("base64").b64encode(png(red)).decode(),
        "numpy": np.asarray(red),
        "result": source_result,
        "url": source_result.urls[0],
    }
    for name, source in sources.items():
        edit = session.edit(source, "make it glow", seed=3)
        assert edit.endpoint == "fal-ai/flux-pro/kontext/max", name
        assert edit.images and edit.seed == 3, name
        if name != "url":
            assert edit.inputs and edit.inputs[0].sha256, name
        assert isinstance(edit.arguments["image_url"], str) and len(edit.arguments["image_url"]) < 300, name


def test_edits_follow_their_source(session: Session) -> None:
    of_red = session.edit(solid((230, 20, 20)), "same edit", seed=9)
    of_blue = session.edit(solid((20, 20, 230)), "same edit", seed=9)
    assert redness(of_red.image) > redness(of_blue.image) + 30


def test_small_inputs_go_inline_large_ones_are_uploaded(session: Session, sb: sandbox.SandboxServer) -> None:
    session.edit(solid((10, 200, 10)), "inline", seed=1)
    assert sb.stats()["requests"].get("upload", 0) == 0
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (900, 900, 3), dtype=np.uint8))
    big = png(noisy)
    assert len(big) > session.engine.settings.inline_max_bytes
    result = session.edit(big, "uploaded", seed=1)
    assert sb.stats()["requests"].get("upload", 0) >= 1
    sent = sb.request_info(result.request_id)["arguments"]["image_url"]
    assert sent.startswith(sb.url + "/files/"), "the job got the uploaded file's URL"


def test_oversized_input_is_downscaled_with_a_notice(sb: sandbox.SandboxServer) -> None:
    notices: list[str] = []
    s = Session(Settings(base_url=sb.url, key=KEY, max_input_side=256), notice=notices.append)  # sees notices
    try:
        result = s.edit(solid((100, 100, 100), (1024, 512)), "shrink", seed=2)
        assert result.inputs[0].size == (256, 128)
        assert any("1024x512" in n and "256x128" in n for n in notices)
    finally:
        s.close()


def test_multi_reference_with_two_to_four_sources(session: Session) -> None:
    r = session.edit([solid((255, 0, 0)), solid((0, 0, 255))], "combine them", seed=4)
    assert r.endpoint == "fal-ai/flux-pro/kontext/max/multi"
    assert len(r.arguments["image_urls"]) == 2 and len(r.inputs) == 2
    assert session.edit([solid((1, 2, 3))], "a one-item list is a plain edit", seed=4).endpoint.endswith("/max")


def test_bad_sources_send_nothing(session: Session, sb: sandbox.SandboxServer, tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(png(solid((1, 1, 1)))[:50])
    cases = [
        (str(tmp_path / "nope.png"), ImageInputError, "does not exist"),
        (corrupt, ImageInputError, "corrupt"),
        ([solid((1, 1, 1))] * 5, ValidationError, "5 source images"),
        ([], ValidationError, "0 source images"),
        (object(), ImageInputError, "cannot use a object"),
    ]
    for source, error, words in cases:
        with pytest.raises(error, match=words):
            session.edit(source, "never sent")
    assert sb.stats()["submits"] == 0
