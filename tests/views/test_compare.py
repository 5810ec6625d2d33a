"""Comparisons: equal-size figures, differing settings and prompt words highlighted, everything escaped."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from kontext_nb.images import ImageInput
from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.views.compare import Comparison

T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
EDIT_PRO = "fal-ai/flux-pro/kontext"


def png_of(image: Image.Image) -> bytes:
    """An image's PNG file (a Result keeps its images as files)."""
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def make_result(
    prompt: str,
    seed: int,
    *,
    endpoint: str = T2I,
    size: tuple[int, int] = (64, 64),
    colour: str = "red",
    journal_id: int | None = None,
    inputs: list[ImageInput] | None = None,
    **arguments: object,
) -> Result:
    args = {"prompt": prompt, "seed": seed, "guidance_scale": 3.5, "output_format": "jpeg", **arguments}
    return Result(
        endpoint=endpoint,
        request_id=f"req-{seed}",
        arguments=args,
        seed=seed,
        prompt=prompt,
        image_bytes=[png_of(Image.new("RGB", size, colour))],
        content_types=["image/jpeg"],
        urls=[""],
        has_nsfw_concepts=[False],
        timings={},
        cost=0.08,
        inputs=inputs or [],
        journal_id=journal_id,
    )


def png_bytes(colour: str, size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def html_of(comparison: Comparison) -> str:
    return comparison._repr_mimebundle_()["text/html"]


def test_differences_only_for_settings_that_differ() -> None:
    a = make_result("a red fox", 1)
    b = make_result("a red fox", 2, guidance_scale=5.0)
    c = make_result("a red fox", 3)
    assert Comparison([a, b, c]).differences() == {"seed": [1, 2, 3], "guidance_scale": [3.5, 5.0, 3.5]}
    assert Comparison([a, make_result("a red fox", 1)]).differences() == {}


def test_missing_inputs_count_as_the_endpoint_default() -> None:
    a = make_result("x", 1)
    b = make_result("x", 1)
    del b.arguments["guidance_scale"], b.arguments["output_format"]
    assert Comparison([a, b]).differences() == {}


def test_model_mode_and_enums_differ() -> None:
    a = make_result("x", 1, aspect_ratio="1:1", enhance_prompt=False)
    b = make_result("x", 1, endpoint=EDIT_PRO, aspect_ratio="16:9", enhance_prompt=True, safety_tolerance="5")
    diffs = Comparison([a, b]).differences()
    assert diffs["model"] == ["max", "pro"] and diffs["mode"] == ["text-to-image", "edit"]
    assert diffs["aspect_ratio"] == ["1:1", "16:9"] and diffs["enhance_prompt"] == [False, True]
    assert diffs["safety_tolerance"] == ["2", "5"]
    assert "seed" not in diffs and "prompt" not in diffs


def test_prompt_diff_marks_changed_words() -> None:
    a = make_result("a red fox in the snow", 1)
    b = make_result("a blue fox in the snow", 1)
    c = make_result("a red fox, in the rain at night", 1)
    words = Comparison([a, b, c]).prompt_diff()
    assert words[1] == [("a", False), ("blue", True), ("fox", False), ("in", False), ("the", False), ("snow", False)]
    assert [w for w, changed in words[2] if changed] == ["rain", "at", "night"]
    # the first prompt: only words that no other prompt kept ("snow" is kept by b, "red" by c)
    assert [w for w, changed in words[0] if changed] == []
    first = Comparison([a, make_result("a green owl", 1)]).prompt_diff()[0]
    assert [w for w, changed in first if changed] == ["red", "fox", "in", "the", "snow"]
    assert Comparison([a]).prompt_diff() == [[(w, False) for w in ("a", "red", "fox", "in", "the", "snow")]]


def test_html_escapes_prompts_and_labels() -> None:
    a = make_result("<script>alert(1)</script> a cat", 1)
    b = make_result("<script>alert(1)</script> a dog", 2)
    text = html_of(Comparison([a, b], labels=['"><img src=x onerror=alert(2)>', "b"]))
    assert "<script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in text
    assert "<mark>dog</mark>" in text and "<mark>cat</mark>" in text and "<mark>a</mark>" not in text


def test_equal_size_boxes_and_highlighted_table() -> None:
    wide = make_result("a cat", 1, size=(200, 100))
    tall = make_result("a cat", 2, size=(100, 200), guidance_scale=7.0)
    text = html_of(Comparison([wide, tall]))
    boxes = re.findall(r'<div style="width:(\d+)px;height:(\d+)px;', text)
    assert len(boxes) == 2 and boxes[0] == boxes[1]
    assert text.count("object-fit:contain") == 2
    assert text.count('<img src="data:image/') == 2
    assert re.search(r"<th[^>]*>guidance_scale</th><td[^>]*>3.5</td><td[^>]*background:#ffe58a[^>]*>7.0</td>", text)
    assert ">a cat<" in text  # the common prompt, once above the row


def test_default_labels_are_refs_or_numbers() -> None:
    a = make_result("x", 1, journal_id=12)
    b = make_result("x", 2)
    assert Comparison([a, b]).labels == ["@12", "#2"]
    with pytest.raises(ValueError, match="one label per item"):
        Comparison([a, b], labels=["only one"])
    with pytest.raises(ValueError, match="at least one"):
        Comparison([])


def test_edit_and_source_uses_the_input_bytes() -> None:
    source = ImageInput("source.png", data=png_bytes("blue"), content_type="image/png", size=(40, 30))
    edit = make_result("make it red", 5, endpoint=EDIT_PRO, inputs=[source], journal_id=3)
    comparison = Comparison.edit_and_source(edit)
    assert comparison.labels == ["source", "@3"]
    shown = comparison.items[0]
    assert isinstance(shown, Image.Image) and shown.size == (40, 30) and shown.getpixel((0, 0)) == (0, 0, 255)
    assert comparison.items[1] is edit
    assert comparison.differences() == {}
    assert comparison.prompt_diff()[0] == []
    text = html_of(comparison)
    assert "40x30" in text and "make it red" in text
    assert "source: 40x30" in repr(comparison)


def test_edit_and_source_without_inputs() -> None:
    with pytest.raises(ValueError, match="has no input image to compare with: it is a text-to-image job") as info:
        Comparison.edit_and_source(make_result("a cat", 1))
    assert "\n" not in str(info.value)
    by_url = ImageInput("https://example.com/a.png", url="https://example.com/a.png")
    with pytest.raises(ValueError, match="bytes were not kept"):
        Comparison.edit_and_source(make_result("x", 1, endpoint=EDIT_PRO, inputs=[by_url]))


def test_text_repr_lists_differences() -> None:
    a = make_result("a red fox", 1, journal_id=1)
    b = make_result("a blue fox", 2, journal_id=2, guidance_scale=6.0)
    text = repr(Comparison([a, b]))
    assert text.splitlines()[0] == "Comparison of 2: @1, @2"
    assert re.search(r"seed\s+1\s+2", text)
    assert re.search(r"guidance_scale\s+3.5\s+6.0", text)
    assert "@2: a [blue] fox" in text
    assert "No settings differ." in repr(Comparison([a, make_result("a red fox", 1)]))


def test_slider_is_two_stacked_images_in_a_resizable_clip() -> None:
    a = make_result("<b>a</b>", 1, colour="red")
    b = make_result("b", 2, colour="blue")
    html = Comparison([a, b], labels=["<before>", "after"]).slider_html(side=300)
    assert html.count('<img src="data:image/') == 2
    assert "resize:horizontal" in html and "overflow:hidden" in html
    assert "<script" not in html and "&lt;before&gt;" in html
    assert len(re.findall(r'[";]width:300px;height:300px', html)) == 3  # the frame and both images


def test_images_of_one_run_are_numbered_beside_their_seed(session: Session) -> None:
    """Issue 22 point 6: -n 4 makes four images with one seed; each is labelled 'seed 42 · 2/4'."""
    from kontext_nb.views.record import record_html

    result = session.generate("a red fox", seed=42, num_images=3)
    assert isinstance(result, Result)
    shown = result._repr_mimebundle_()["text/html"]
    assert [f"seed <b>42</b> · {k}/3 ·" in shown for k in (1, 2, 3)] == [True] * 3
    assert [f"seed 42 · {k}/3" in record_html([result]) for k in (1, 2, 3)] == [True] * 3
    single = session.generate("a red fox", seed=42)
    assert isinstance(single, Result)
    assert re.search(r"seed <b>42</b> · \d+x\d+", single._repr_mimebundle_()["text/html"]), "one image: no count"
