"""%kontext with the whole family: --model dev|lora, --steps, --accel, --resolution, --lora, inpaint, sweeps
across models — in a real InteractiveShell against the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from shell import Shell  # tests/shell.py

import kontext_nb.sandbox as sandbox
from kontext_nb import endpoints
from kontext_nb.result import Result
from kontext_nb.views.grid import Grid


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    img = Image.new("RGB", (256, 192), (30, 120, 90))
    ImageDraw.Draw(img).ellipse((40, 40, 200, 150), fill=(220, 200, 40))
    img.save(path)
    return path


@pytest.fixture
def mask_file(tmp_path: Path) -> Path:
    path = tmp_path / "mask.png"
    mask = Image.new("L", (256, 192), 0)
    ImageDraw.Draw(mask).rectangle((64, 48, 160, 128), fill=255)
    mask.save(path)
    return path


def test_dev_edit_with_every_new_option(shell: Shell, photo: Path) -> None:
    r = shell.line(f"edit {photo} make it night --model dev --steps 20 --accel regular --resolution auto --seed 4")
    assert isinstance(r, Result) and r.endpoint == "fal-ai/flux-kontext/dev"
    a = r.arguments
    assert (a["num_inference_steps"], a["acceleration"], a["resolution_mode"]) == (20, "regular", "auto")
    assert a["guidance_scale"] == 2.5 and a["output_format"] == "jpeg"  # dev's own defaults, not [max]'s 3.5
    assert (
        shell.line(f"edit {photo} again --model dev --no-safety-checker --seed 5").arguments["enable_safety_checker"]
        is False
    )


def test_lora_options_repeatable_with_scales(shell: Shell, photo: Path) -> None:
    r = shell.line(
        f"edit {photo} in the style --model lora --lora https://e.org/a.safetensors:0.6 --lora owner/repo --seed 1"
    )
    assert r.arguments["loras"] == [
        {"path": "https://e.org/a.safetensors", "scale": 0.6},
        {"path": "owner/repo", "scale": 1.0},
    ]
    t2i = shell.line("a lighthouse --model lora --image-size 640x480 --lora owner/repo:1.5 --seed 2")
    assert t2i.endpoint == "fal-ai/flux-kontext-lora/text-to-image"
    assert t2i.arguments["image_size"] == {"width": 640, "height": 480}
    assert t2i.arguments["output_format"] == "png"  # LoRA's default


def test_inpaint_with_a_mask_from_a_file_a_variable_and_a_job(shell: Shell, photo: Path, mask_file: Path) -> None:
    first = shell.line(f"inpaint {photo} --mask {mask_file} a red hat --seed 3 --strength 0.6")
    assert first.endpoint == "fal-ai/flux-kontext-lora/inpaint" and first.arguments["strength"] == 0.6
    shell.run(f"from PIL import Image; m = Image.open({str(mask_file)!r})")
    second = shell.line(f"inpaint {photo} --mask $m --ref {photo} a blue hat --seed 3")
    assert second.endpoint == first.endpoint
    source = shell.line("a plain wall --seed 8 --ar 4:3")
    third = shell.line(f"inpaint @{source.journal_id} --mask @{first.journal_id} a window --seed 3")
    assert third.parent_id == source.journal_id or third.endpoint == first.endpoint


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("edit {photo} x --model dev --steps 5", "--steps 5 is out of range: an integer from 10 to 50"),
        ("edit {photo} x --model dev --steps many", "--steps 'many' is not a whole number"),
        ("edit {photo} x --model dev --accel warp", "--accel warp is not allowed: choose one of none, regular, high"),
        ("edit {photo} x --model dev --resolution 7:5", "--resolution 7:5 is not allowed"),
        ("edit {photo} x --model dev --safety 3", "only of max, pro"),
        (
            "edit {photo} x --model lora --lora https://e.org/a:9",
            "loras[0].scale=9.0 is out of range: a number from 0 to 4",
        ),
        ("a fox --model dev", "no text-to-image endpoint"),
        ("a fox --model lora --image-size huge", "--image-size huge is not allowed"),
        ("a fox --model ultra", "--model 'ultra' is not allowed"),
        ("inpaint {photo} a hat", "inpaint needs --mask MASK"),
        ("inpaint {photo} --mask {mask} a hat --strength 2", "--strength 2 is out of range: a number from 0.01 to 1"),
        ("inpaint {photo} --mask {mask} a hat --model max", "no inpaint endpoint"),
        ("sweep 'a fox' --model max,dev", "no text-to-image endpoint"),
    ],
)
def test_bad_lines_are_one_usage_error_and_send_nothing(
    shell: Shell, sb: sandbox.SandboxServer, photo: Path, mask_file: Path, line: str, words: str
) -> None:
    message = shell.usage_error(line.format(photo=photo, mask=mask_file))
    assert words in message, message
    assert sb.stats()["submits"] == 0


def test_sweep_across_models_prices_each_cell_by_its_own_model(
    shell: Shell, sb: sandbox.SandboxServer, photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = shell.line(f"sweep edit {photo} 'make it night' --model max,pro,dev --seed 1,2")
    assert isinstance(grid, Grid)
    out = capsys.readouterr().out
    # 2 seeds x (max $0.08 + pro $0.04 + dev 1 MP x $0.025) = $0.29, an estimate because of dev
    assert "3 models" in out and "≈$0.29 (estimate)" in out, out
    endpoints_used = sorted({r.endpoint for r in grid.results if isinstance(r, Result)})
    assert endpoints_used == ["fal-ai/flux-kontext/dev", "fal-ai/flux-pro/kontext", "fal-ai/flux-pro/kontext/max"]
    dev = [r for r in grid.results if isinstance(r, Result) and r.model == "dev"]
    assert all(r.arguments["guidance_scale"] == 2.5 for r in dev)  # each cell keeps its own model's defaults
    assert sb.stats()["submits"] == 6


def test_confirmation_shows_the_estimate(shell: Shell, photo: Path) -> None:
    shell.run("%config Kontext.confirm_above = 0.01")
    message = shell.usage_error(f"edit {photo} x --model lora -n 4 --seed 1")
    price = endpoints.PRICE_PER_MEGAPIXEL["lora"] * 4
    assert f"≈${price:.2f} (estimate)" in message and "--yes" in message


def test_help_lists_the_new_options(shell: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.line("help")
    out = capsys.readouterr().out
    for option in ("--steps", "--accel", "--resolution", "--lora", "--strength", "inpaint SOURCE --mask"):
        assert option in out or option.split()[0] in out
