"""The panel with the whole family: models per mode, controls from the [dev]/LoRA specs, per-megapixel prices on
the button, an inpaint mode with a mask — driven from Python against the sandbox. And the mask painter widget."""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import partial

import numpy as np
import pytest
import waiting  # tests/waiting.py
from PIL import Image, ImageDraw

import kontext_nb.sandbox as sandbox
from kontext_nb import endpoints
from kontext_nb.errors import ImageInputError
from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.widgets.create import CreateTab
from kontext_nb.widgets.mask import MaskPainter

wait_for = partial(waiting.wait_for, timeout=15.0)
W, H = 256, 192


def source() -> Image.Image:
    img = Image.new("RGB", (W, H), (30, 60, 150))
    ImageDraw.Draw(img).ellipse((30, 30, 220, 160), fill=(240, 200, 30))
    return img


def mask_png(box: tuple[int, int, int, int] = (64, 48, 160, 128)) -> bytes:
    mask = Image.new("L", (W, H), 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def create(session: Session) -> Iterator[CreateTab]:
    tab = CreateTab(session)
    yield tab
    tab.close()


def test_each_mode_offers_the_models_that_serve_it(create: CreateTab) -> None:
    values = lambda: [v for _, v in create.model.options]  # noqa: E731
    assert values()[:3] == ["max", "pro", "lora"] and "dev" not in values()  # no [dev] text to image on fal
    create.mode.value = "edit"
    assert values()[:4] == ["max", "pro", "dev", "lora"]  # the family first, then the registry's other editors
    create.model.value = "dev"
    assert any(label.startswith("dev · $0.025/MP · ") for label, _ in create.model.options)
    create.mode.value = "inpaint"
    assert values()[0] == "lora" and create.model.value == "lora"
    assert create.mask_box.layout.display == ""


def test_controls_come_from_the_dev_and_lora_specs(create: CreateTab) -> None:
    create.mode.value = "edit"
    create.model.value = "dev"
    names = set(create.inputs.controls)
    assert {"num_inference_steps", "acceleration", "resolution_mode", "enable_safety_checker"} <= names
    assert "safety_tolerance" not in names and "loras" not in names
    steps = create.inputs.controls["num_inference_steps"]
    assert (steps.min, steps.max, steps.value) == (10, 50, 28)
    create.model.value = "lora"
    assert "loras" in create.inputs.controls and create.inputs.controls["output_format"].value == "png"


def test_the_button_shows_the_per_megapixel_estimate_from_the_source(create: CreateTab, session: Session) -> None:
    create.mode.value = "edit"
    create.model.value = "dev"
    create.prompt.value = "make it night"
    create.sources.set([Image.new("RGB", (1500, 1000), "teal")])  # 2 MP (rounded up)
    assert create.generate_button.description.endswith("1 image · up to $0.05")  # models.bound: 2 MP, rounded up
    create.model.value = "max"
    assert create.generate_button.description.endswith("1 image · $0.08")


def test_a_bad_lora_is_shown_beside_its_field_and_nothing_is_sent(create: CreateTab, sb: sandbox.SandboxServer) -> None:
    create.mode.value = "edit"
    create.model.value = "lora"
    create.prompt.value = "in the style"
    create.sources.set([source()])
    create.inputs.controls["loras"].value = "https://e.org/a.safetensors:7"
    assert create.generate() == []
    assert "loras[0].scale=7.0 is out of range" in create.inputs.errors["loras"].value
    assert sb.stats()["submits"] == 0


def test_inpaint_from_the_panel_changes_only_the_mask(create: CreateTab, sb: sandbox.SandboxServer) -> None:
    sb.configure(image_scale=1.0)
    create.mode.value = "inpaint"
    create.prompt.value = "a red hat"
    create.sources.set([source()])
    assert create.generate() == []  # no mask yet: said beside the mask picker
    assert "choose a mask" in create.masks.error.value and sb.stats()["submits"] == 0
    create.masks.set([mask_png()])
    (job,) = create.generate()
    out = job.result(timeout=15)
    assert isinstance(out, Result) and out.endpoint == "fal-ai/flux-kontext-lora/inpaint"
    before, after = np.asarray(source(), dtype=np.int16), np.asarray(out.images[0].convert("RGB"), dtype=np.int16)
    inside = np.asarray(Image.open(io.BytesIO(mask_png()))) > 127
    assert np.array_equal(before[~inside], after[~inside])
    # the job loads back into the form with its mask
    create.mode.value = "text-to-image"
    create.load_record(out.journal_id)
    assert create.mode.value == "inpaint" and len(create.masks.entries) == 1


def test_the_painter_opens_over_the_source_and_its_mask_fills_the_picker(create: CreateTab) -> None:
    create.mode.value = "inpaint"
    create.sources.set([source()])
    painter = create.open_painter()
    assert isinstance(painter, MaskPainter) and (painter.width, painter.height) == (W, H)
    painter.mask = mask_png()  # what the browser sends when "Use mask" is pressed
    assert len(create.masks.entries) == 1 and create.masks.entries[0].image is not None
    assert create.masks.entries[0].image.size == (W, H)


def test_the_mask_painter_keeps_strokes_in_the_browser_and_checks_the_mask(session: Session) -> None:
    painter = MaskPainter(source())
    assert painter.image and (painter.width, painter.height) == (W, H)
    assert "getContext" in painter._esm and "pointermove" in painter._esm  # painting happens in the browser
    with pytest.raises(ImageInputError, match="no mask yet"):
        painter.kontext_image()
    painter.mask = b"not a png"
    assert "unreadable" in painter.status
    small = io.BytesIO()
    Image.new("L", (10, 10)).save(small, "PNG")
    painter.mask = small.getvalue()
    assert "not the source's 256x192" in painter.status
    painter.set_mask(Image.open(io.BytesIO(mask_png())))
    assert painter.mask_image.size == (W, H) and painter.status.startswith("mask ready")
    out = session.inpaint(source(), "a hat", mask=painter, seed=1)  # mask= takes the painter itself
    assert isinstance(out, Result)
    assert endpoints.ENDPOINTS[out.endpoint].mode == "inpaint"
