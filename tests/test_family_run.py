"""[dev], LoRA and inpainting end to end on the real sandbox: the API, prices before and after, the
sandbox's pictures (only the mask changes; steps and strength show), LoRA uploads and the journal."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import kontext_nb as kx
from kontext_nb import endpoints
from kontext_nb.errors import KontextError, ValidationError
from kontext_nb.journal import metadata
from kontext_nb.request import build_request
from kontext_nb.result import Result
from kontext_nb.sandbox import SandboxServer
from kontext_nb.session import Session

W, H = 256, 192  # multiples of 16: match_input (and inpainting) return exactly this size


def picture(size: tuple[int, int] = (W, H)) -> Image.Image:
    """A source with structure, so a change anywhere shows."""
    img = Image.new("RGB", size, (40, 90, 160))
    draw = ImageDraw.Draw(img)
    for k in range(0, size[0], 16):
        draw.line((k, 0, size[0] - k, size[1]), fill=(200, 180 - k % 120, 60), width=3)
    return img


def box_mask(size: tuple[int, int] = (W, H), box: tuple[int, int, int, int] = (64, 48, 160, 128)) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


def pixels(result: Result) -> np.ndarray:
    return np.asarray(result.images[0].convert("RGB"), dtype=np.int16)


def result(x: object) -> Result:
    assert isinstance(x, Result)
    return x


# -- good values run, on every new endpoint, through the API --------------------------------------------------------


def test_each_new_endpoint_runs_through_the_api(session: Session) -> None:
    dev = result(session.edit(picture(), "make it night", model="dev", seed=1, num_inference_steps=12))
    assert dev.endpoint == "fal-ai/flux-kontext/dev" and dev.arguments["acceleration"] == "none"
    lora = result(
        session.edit(picture(), "in the style", model="lora", seed=2, loras=["https://example.org/a.safetensors:0.5"])
    )
    assert lora.endpoint == "fal-ai/flux-kontext-lora"
    assert lora.arguments["loras"] == [{"path": "https://example.org/a.safetensors", "scale": 0.5}]
    t2i = result(session.generate("a lighthouse", model="lora", seed=3, image_size="square"))
    assert t2i.endpoint == "fal-ai/flux-kontext-lora/text-to-image"
    painted = result(session.inpaint(picture(), "a red hat", mask=box_mask(), seed=4))
    assert painted.endpoint == "fal-ai/flux-kontext-lora/inpaint" and painted.arguments["strength"] == 0.88
    by_id = result(session.edit(picture(), "by id", model="fal-ai/flux-kontext/dev", seed=5))
    assert by_id.endpoint == "fal-ai/flux-kontext/dev"


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda s: s.edit(picture(), "x", model="dev", num_inference_steps=60), "num_inference_steps=60"),
        (lambda s: s.edit(picture(), "x", model="dev", acceleration="max"), "acceleration='max'"),
        (lambda s: s.edit(picture(), "x", model="dev", resolution_mode="7:5"), "resolution_mode='7:5'"),
        (lambda s: s.edit(picture(), "x", model="dev", safety_tolerance="3"), "only of max, pro"),
        (lambda s: s.edit(picture(), "x", model="lora", loras=[("https://e.org/a", 5)]), "loras[0].scale=5"),
        (lambda s: s.edit(picture(), "x", model="lora", loras=["https://e.org/a:lots"]), "loras[0].scale='lots'"),
        (lambda s: s.generate("x", model="dev"), "no text-to-image endpoint"),
        (lambda s: s.generate("x", model="lora", image_size="giant"), "image_size='giant'"),
        (lambda s: s.inpaint(picture(), "x", mask=box_mask(), strength=0), "strength=0"),
        (lambda s: s.inpaint(picture(), "x", mask=box_mask(), model="max"), "no inpaint endpoint"),
        (lambda s: s.edit(picture(), "x", model="ultra"), "model='ultra'"),
        (lambda s: s.edit(picture(), "x", model="lora", loras=["/nowhere/style.safetensors"]), "does not exist"),
    ],
)
def test_bad_values_are_refused_in_one_line_before_anything_is_sent(
    session: Session, sb: SandboxServer, call: object, words: str
) -> None:
    with pytest.raises(KontextError) as info:
        call(session)  # type: ignore[operator]
    assert words in str(info.value) and "\n" not in str(info.value)
    assert sb.stats()["submits"] == 0


# -- prices: per megapixel, estimated before, recorded after ------------------------------------------------------


def test_cost_before_is_estimated_from_the_input_and_after_from_the_returned_sizes(
    session: Session, sb: SandboxServer
) -> None:
    sb.configure(image_scale=1.0)
    big = picture((1500, 1000))  # match_input: 1504x1008 = 1.45 MP, billed as 2 each
    request = build_request("edit", "x", model="dev", sources=[big], num_images=2)
    assert request.estimated and request.cost == pytest.approx(2 * 2 * endpoints.PRICE_PER_MEGAPIXEL["dev"])
    done = result(session.run(request))
    assert [im.size for im in done.images] == [(1504, 1008)] * 2
    assert done.cost == pytest.approx(request.cost)
    # auto: a trained ~1 MP size, whatever the input: estimated and recorded at 1 MP each
    auto = result(session.edit(big, "x", model="dev", resolution_mode="auto", seed=1))
    assert auto.cost == pytest.approx(endpoints.PRICE_PER_MEGAPIXEL["dev"])
    # per image for [max]: unchanged
    assert build_request("edit", "x", model="max", sources=[big]).cost == pytest.approx(0.08)
    assert not build_request("edit", "x", model="max", sources=[big]).estimated


def test_budget_caps_use_the_per_megapixel_estimate(make_session: object, sb: SandboxServer) -> None:
    session = make_session(budget_session=0.05)  # type: ignore[operator]
    with pytest.raises(KontextError) as info:
        session.edit(picture((2048, 2048)), "x", model="lora", num_images=1)  # 4 MP x $0.035 = $0.14
    assert "budget" in str(info.value).lower() and sb.stats()["submits"] == 0


# -- the sandbox's pictures -----------------------------------------------------------------------------------------


def test_inpainting_changes_only_the_masked_region(session: Session, sb: SandboxServer) -> None:
    sb.configure(image_scale=1.0)
    source, mask = picture(), box_mask()
    out = result(session.inpaint(source, "a red hat", mask=mask, seed=7))  # LoRA's default format: png (lossless)
    assert out.images[0].size == (W, H)
    before, after = np.asarray(source, dtype=np.int16), pixels(out)
    inside = np.asarray(mask) > 127
    assert np.array_equal(before[~inside], after[~inside])  # not one pixel outside the mask
    assert np.abs(before[inside] - after[inside]).mean() > 10  # and the masked region visibly changed


def test_steps_and_strength_visibly_change_the_picture(session: Session, sb: SandboxServer) -> None:
    sb.configure(image_scale=1.0)

    def run(**settings: object) -> np.ndarray:
        return pixels(result(session.inpaint(picture(), "a hat", mask=box_mask(), seed=7, cache=False, **settings)))

    base = run(num_inference_steps=30, strength=0.88)
    assert np.array_equal(base, run(num_inference_steps=30, strength=0.88))  # deterministic
    assert np.abs(base - run(num_inference_steps=10, strength=0.88)).mean() > 1
    assert np.abs(base - run(num_inference_steps=30, strength=0.2)).mean() > 1
    dev = [pixels(result(session.edit(picture(), "x", model="dev", seed=3, num_inference_steps=n))) for n in (10, 50)]
    assert np.abs(dev[0] - dev[1]).mean() > 1


def test_a_mask_of_another_size_is_noticed(session: Session) -> None:
    request = build_request("inpaint", "x", model="lora", sources=[picture()], mask=box_mask((100, 100)))
    assert any("mask is 100x100" in n for n in request.notices)


# -- LoRAs: uploaded, journaled, embedded ----------------------------------------------------------------------------


def test_a_local_lora_is_uploaded_before_the_job_and_kept_in_journal_and_metadata(
    session: Session, sb: SandboxServer, tmp_path: Path
) -> None:
    lora = tmp_path / "claymation.safetensors"
    lora.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(256)) * 8)
    out = result(session.edit(picture(), "claymation", model="lora", seed=9, loras=[(str(lora), 0.8)]))
    sent = sb.request_info(out.request_id)["arguments"]["loras"]
    assert sent[0]["scale"] == 0.8 and "/files/" in sent[0]["path"]  # a storage URL, not the local path
    assert any("Loaded LoRA" in line["message"] for line in out.logs)
    record = session.record(out.journal_id)
    path = record.arguments["loras"][0]["path"]
    assert path.startswith("file:claymation.safetensors;sha256=")
    files = list((Path(session.settings.runs_dir or "") / "images").glob("*"))
    meta = metadata.read(files[0])
    assert meta["arguments"]["loras"][0]["path"] == path
    # the same request again is answered from the journal (same file, same hash)
    again = result(session.edit(picture(), "claymation", model="lora", seed=9, loras=[(str(lora), 0.8)]))
    assert again.cached


def test_the_mask_is_kept_with_the_job_and_reruns(session: Session) -> None:
    out = result(session.inpaint(picture(), "a hat", mask=box_mask(), seed=11))
    record = session.record(out.journal_id)
    assert len(record.input_hashes) >= 2  # the source and the mask, in the runs folder's inputs/
    loaded = session.result(out.journal_id)
    assert len(loaded.inputs) >= 2
    again = result(session.rerun(out.journal_id, strength=0.5))
    assert again.endpoint == out.endpoint and again.arguments["strength"] == 0.5


def test_module_level_inpaint_and_mask_validation(session: Session) -> None:
    kx.set_session(session)
    out = result(kx.inpaint(picture(), "a hat", mask=box_mask(), seed=12))
    assert out.endpoint == "fal-ai/flux-kontext-lora/inpaint"
    with pytest.raises(ValidationError, match="mask_url is required"):
        build_request("inpaint", "x", model="lora", sources=[picture()])
    buf = io.BytesIO()
    box_mask().save(buf, "PNG")
    assert result(kx.inpaint(picture(), "a hat", mask=buf.getvalue(), seed=12)).cached


def test_history_and_compare_show_the_mask_and_the_loras(session: Session) -> None:
    from kontext_nb.views.compare import Comparison

    painted = result(session.inpaint(picture(), "a hat", mask=box_mask(), seed=13))
    styled = result(session.edit(picture(), "styled", model="lora", seed=13, loras=["https://e.org/a.safetensors:0.5"]))
    table = session.history(limit=5)._repr_mimebundle_()["text/html"]
    assert 'alt="mask"' in table and "LoRA a.safetensors×0.5" in table
    comparison = Comparison.edit_and_source(session.result(painted.journal_id))
    assert comparison.labels[:2] == ["source", "mask"] and len(comparison.items) == 3
    assert "loras" in Comparison([styled, painted]).differences()


def test_an_inpaint_whose_download_failed_is_resumed_and_priced_from_its_size(
    make_session: object, sb: SandboxServer
) -> None:
    sb.configure(image_scale=1.0)
    s = make_session()  # type: ignore[operator]
    sb.set_faults([{"route": "media", "kind": "500", "count": 100}])
    job = s.inpaint(picture((1500, 1000)), "a hat", mask=box_mask((1500, 1000)), seed=3, wait=False)
    with pytest.raises(Exception, match="HTTP 500"):
        job.result(timeout=20)
    sb.set_faults([])
    (collected,) = s.resume()
    assert collected.endpoint == "fal-ai/flux-kontext-lora/inpaint" and collected.images[0].size == (1504, 1008)
    assert collected.cost == pytest.approx(2 * endpoints.PRICE_PER_MEGAPIXEL["lora"])  # 1.45 MP, billed as 2
    assert sb.stats()["submits"] == 1
