"""Placeholder images for the sandbox: pure functions from validated arguments to encoded bytes.

Nothing here touches the network, the clock or a global random state, so the same endpoint,
prompt, seed, settings and input pixels always give byte-identical images (as a fixed seed
does on fal), while prompt and seed visibly change the picture. Every image carries a big
"SANDBOX" mark so a placeholder can never pass for a real generation.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import random
import re
import struct
import textwrap
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps, UnidentifiedImageError

from kontext_nb import endpoints

MAX_INPUT_SIDE = 2048  # inputs are shrunk to this before use, so a huge upload cannot stall a worker
MAX_OUTPUT_SIDE = 4096
"""Per-megapixel outputs follow the source's own size (as fal's match_input does: billed as such) up to this side;
fal goes to 14142 px, the sandbox stops here so one request cannot take a worker's memory."""
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


OVERSIZED_SIDE = 13000


@lru_cache(maxsize=1)
def oversized_png(side: int = OVERSIZED_SIDE) -> bytes:
    """A valid black RGB PNG of side x side pixels in about half a megabyte (the 'huge' media fault), built at the
    byte level so the sandbox never holds it decoded (PIL would need some 680 MB): one band of rows is compressed
    once, ending on a full flush, and repeated (deflate blocks after a full flush stand on their own)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    band = 100 if side % 100 == 0 else 1
    rows = bytes((1 + 3 * side) * band)  # each row: filter byte 0, then black pixels
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(rows) + packer.flush(zlib.Z_FULL_FLUSH)
    checksum = 1
    for _ in range(side // band):
        checksum = zlib.adler32(rows, checksum)
    stream = b"\x78\xda" + block * (side // band) + b"\x03\x00" + struct.pack(">I", checksum)
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


class ImageLoadError(ValueError):
    """Input bytes that are not a decodable image (the job fails with ``image_load_error``)."""


@dataclass(frozen=True)
class RenderedImage:
    """One encoded output image."""

    data: bytes
    width: int
    height: int
    content_type: str


def decode_image(data: bytes) -> Image.Image:
    """Decode input bytes to an RGB image no larger than MAX_INPUT_SIDE, or raise ImageLoadError."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (MAX_INPUT_SIDE, MAX_INPUT_SIDE))
            im = ImageOps.exif_transpose(im)
            im.thumbnail((MAX_INPUT_SIDE, MAX_INPUT_SIDE))
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot decode the input image: {exc}") from None


def header_size(data: bytes) -> tuple[int, int] | None:
    """An input's width and height from its header (nothing decoded), or None."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Exception:
        return None
    return int(width), int(height)


def output_size(
    arguments: Mapping[str, Any],
    inputs: Sequence[Image.Image] = (),
    scale: float = 1.0,
    endpoint: endpoints.Endpoint | None = None,
    source_size: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Output width and height, times scale: as the endpoint's spec says (endpoints.Endpoint.output_size) —
    aspect_ratio, image_size, resolution_mode, or the first input's size or nearest ratio."""
    if endpoint is None or endpoint.unit == "image":
        ratio = arguments.get("aspect_ratio")
        if not ratio:
            ratio = endpoints.nearest_ratio(*inputs[0].size) if inputs else "1:1"
        w, h = endpoints.aspect_size(ratio)
    else:
        w, h = endpoint.output_size(arguments, source_size or (inputs[0].size if inputs else None))
        w, h = min(w, MAX_OUTPUT_SIDE), min(h, MAX_OUTPUT_SIDE)
    return max(16, round(w * scale)), max(16, round(h * scale))


_PIXELS = re.compile(r"(\d+)x(\d+)")
_RATIO = re.compile(r"([1-9]\d*):([1-9]\d*)")


def any_size(arguments: Mapping[str, Any], inputs: Sequence[Image.Image] = (), scale: float = 1.0) -> tuple[int, int]:
    """Output size for an endpoint outside the Kontext family, from whatever size input its schema has: an
    ``image_size`` preset, ``{width, height}`` or ``"WxH"``, an ``aspect_ratio`` ``"W:H"``, else the first input's
    shape (about 1 MP); capped at MAX_OUTPUT_SIDE."""
    size = arguments.get("image_size")
    if isinstance(size, Mapping):
        w, h = int(size.get("width", 1024)), int(size.get("height", 1024))
    elif isinstance(size, str) and size in endpoints.IMAGE_SIZE_PRESETS:
        w, h = endpoints.IMAGE_SIZE_PRESETS[size]
    elif isinstance(size, str) and (m := _PIXELS.fullmatch(size)):
        w, h = int(m.group(1)), int(m.group(2))
    elif isinstance(arguments.get("aspect_ratio"), str) and (m := _RATIO.fullmatch(arguments["aspect_ratio"])):
        w, h = endpoints.aspect_size(m.group(0))
    else:
        w, h = endpoints.aspect_size(endpoints.nearest_ratio(*inputs[0].size) if inputs else "1:1")
    w, h = min(max(1, w), MAX_OUTPUT_SIDE), min(max(1, h), MAX_OUTPUT_SIDE)
    return max(16, round(w * scale)), max(16, round(h * scale))


_FAMILY_SETTINGS = (
    "num_inference_steps",
    "strength",
    "acceleration",
    "resolution_mode",
    "image_size",
    "loras",
    "enable_safety_checker",
)


def render_image(
    endpoint_id: str,
    arguments: Mapping[str, Any],
    *,
    index: int = 0,
    inputs: Sequence[Image.Image] = (),
    scale: float = 1.0,
    nonce: str = "",
    prompt: str | None = None,
    nsfw: bool = False,
    source_size: tuple[int, int] | None = None,
    title: str = "",
    mode: str = "edit",
) -> RenderedImage:
    """Render image ``index`` of a request and encode it as output_format.

    ``arguments`` are validated arguments with the seed already chosen; ``prompt`` is the
    prompt to print (the enhanced one when enhance_prompt is on) and ``nonce`` enters the
    hash so enhanced requests do not reproduce. An endpoint outside the Kontext family is
    labelled with its ``title`` and drawn as its ``mode`` (text-to-image or edit) says.
    """
    ep = endpoints.ENDPOINTS.get(endpoint_id)
    if ep is not None:
        title, mode = f"FLUX.1 Kontext [{ep.model}]", ep.mode
    seed = int(arguments["seed"])
    shown = arguments["prompt"] if prompt is None else prompt
    settings: tuple[Any, ...] = (
        arguments.get("guidance_scale"),
        arguments.get("aspect_ratio"),
        arguments.get("safety_tolerance"),
    )
    extra = tuple(repr(arguments.get(k)) for k in _FAMILY_SETTINGS if k in arguments)
    rng = _rng(endpoint_id, shown, seed, index, settings + extra if extra else settings, nonce)
    size = output_size(arguments, inputs, scale, ep, source_size) if ep else any_size(arguments, inputs, scale)
    count = int(arguments.get("num_images", 1))
    seed_line = f"seed {seed}" + (f" · image {index + 1}/{count}" if count > 1 else "")
    tag = f"{title} · {mode}"
    if mode == "inpaint" and len(inputs) >= 2:
        img = _inpaint(size, inputs, rng, arguments, lambda im: _label(im, tag, shown, seed_line, nsfw))
    else:
        img = _generate(size, rng) if mode == "text-to-image" or not inputs else _derive(size, inputs, rng)
        img = _steps_and_loras(img, arguments, rng)
        if nsfw:
            img = img.filter(ImageFilter.GaussianBlur(radius=max(4, size[0] // 24)))
        _label(img, tag, shown, seed_line, nsfw)
    fmt = arguments.get("output_format", "jpeg")
    fmt = fmt if fmt in CONTENT_TYPES else "png"
    return RenderedImage(_encode(img, fmt), img.width, img.height, CONTENT_TYPES[fmt])


def _steps_and_loras(img: Image.Image, arguments: Mapping[str, Any], rng: random.Random) -> Image.Image:
    """[dev]/LoRA: fewer steps leave the picture visibly rougher (posterized); each LoRA tints it by its scale."""
    steps = arguments.get("num_inference_steps")
    if steps is not None:
        img = ImageOps.posterize(img, max(1, min(8, round(int(steps) / 6))))
    for lora in arguments.get("loras") or []:
        tint = Image.new("RGB", img.size, _colour(_rng(str(lora.get("path")))))
        img = Image.blend(img, tint, min(0.6, 0.15 * float(lora.get("scale", 1.0))))
    return img


def mask_of(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The mask fitted to the output size, as black (keep) and white (repaint) only."""
    fitted = mask.convert("L").resize(size, Image.Resampling.NEAREST)
    return fitted.point(lambda v: 255 if v >= 128 else 0)


def _inpaint(
    size: tuple[int, int],
    inputs: Sequence[Image.Image],
    rng: random.Random,
    arguments: Mapping[str, Any],
    label: Callable[[Image.Image], None],
) -> Image.Image:
    """Inpainting: only the mask's white changes — to the reference's derived picture, mixed by strength.

    The labels are drawn on the new picture before it is masked, so not one pixel outside the mask differs
    from the source (tests check exactly that).
    """
    source = inputs[0] if inputs[0].size == size else inputs[0].resize(size, Image.Resampling.BILINEAR)
    reference = inputs[2] if len(inputs) > 2 else inputs[0]
    new = _steps_and_loras(_derive(size, [reference], rng), arguments, rng)
    label(new)
    strength = float(arguments.get("strength", 0.88))
    mixed = Image.blend(source, new, max(0.0, min(1.0, strength)))
    return Image.composite(mixed, source, mask_of(inputs[1], size))


def _rng(*parts: Any) -> random.Random:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _colour(rng: random.Random, sat: float = 0.75, val: float = 0.9) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), sat + rng.random() * (1 - sat), val - rng.random() * 0.3)
    return round(r * 255), round(g * 255), round(b * 255)


def _gradient(size: tuple[int, int], c1: tuple[int, int, int], c2: tuple[int, int, int], angle: float) -> Image.Image:
    mask = Image.linear_gradient("L").rotate(angle, resample=Image.Resampling.BILINEAR, expand=False)
    mask = mask.crop((32, 32, 224, 224)).resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", size, c1), Image.new("RGB", size, c2), mask)


def _generate(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A text-to-image placeholder: a gradient and shapes whose colours and places come from the hash."""
    w, h = size
    img = _gradient(size, _colour(rng), _colour(rng), rng.uniform(0, 360))
    draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(rng.randint(6, 12)):
        fill = (*_colour(rng), rng.randint(110, 220))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.06, 0.3) * min(w, h)
        shape = rng.choice(("ellipse", "rect", "polygon", "line"))
        if shape == "ellipse":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif shape == "rect":
            draw.rectangle((cx - r, cy - r * rng.uniform(0.4, 1.2), cx + r, cy + r), fill=fill)
        elif shape == "polygon":
            n = rng.randint(3, 7)
            pts = [(cx + r * math.cos(2 * math.pi * k / n), cy + r * math.sin(2 * math.pi * k / n)) for k in range(n)]
            draw.polygon(pts, fill=fill)
        else:
            draw.line((cx - r, cy - r, cx + r, cy + r), fill=fill, width=max(2, round(r / 6)))
    return img


def _tiles(size: tuple[int, int], inputs: Sequence[Image.Image]) -> Image.Image:
    """Multi-reference: the inputs side by side (2 or 3) or in a 2x2 grid (4), each fitted to its cell."""
    w, h = size
    if len(inputs) == 1:
        return ImageOps.fit(inputs[0], size, Image.Resampling.BILINEAR)
    cols, rows = (2, 2) if len(inputs) == 4 else (len(inputs), 1)
    out = Image.new("RGB", size)
    for k, src in enumerate(inputs):
        col, row = k % cols, k // cols
        x0, y0, x1, y1 = w * col // cols, h * row // rows, w * (col + 1) // cols, h * (row + 1) // rows
        out.paste(ImageOps.fit(src, (x1 - x0, y1 - y0), Image.Resampling.BILINEAR), (x0, y0))
    return out


def _derive(size: tuple[int, int], inputs: Sequence[Image.Image], rng: random.Random) -> Image.Image:
    """An edit: the input cropped to the output size and changed in a prompt-dependent, colour-keeping way."""
    img = _tiles(size, inputs)
    effect = rng.choice(("posterize", "saturate", "contrast", "sharpen", "mirror", "smooth"))
    if effect == "posterize":
        img = ImageOps.posterize(img, rng.randint(2, 4))
    elif effect == "saturate":
        img = ImageEnhance.Color(img).enhance(rng.uniform(1.4, 2.0))
    elif effect == "contrast":
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(1.3, 1.8))
    elif effect == "sharpen":
        img = img.filter(ImageFilter.EDGE_ENHANCE_MORE)
    elif effect == "mirror":
        img = ImageOps.mirror(img)
    else:
        img = img.filter(ImageFilter.SMOOTH_MORE)
    img = Image.blend(img, Image.new("RGB", size, _colour(rng)), rng.uniform(0.12, 0.25))
    draw = ImageDraw.Draw(img, "RGBA")
    w, h = size
    for _ in range(rng.randint(3, 6)):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.18) * min(w, h)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(*_colour(rng), 200), width=max(2, round(r / 10)))
    return img


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, size))


def _label(img: Image.Image, tag: str, prompt: str, seed_line: str, nsfw: bool) -> None:
    """Draw the SANDBOX mark, the model and mode (``tag``), the prompt (wrapped, truncated) and the seed."""
    w, h = img.size
    draw = ImageDraw.Draw(img, "RGBA")
    unit = min(w, h)
    # the mark: as wide as 80% of the image, centred, outlined so it shows on any background
    probe = _font(100)
    left, _, right, _ = draw.textbbox((0, 0), "SANDBOX", font=probe)
    mark = _font(int(100 * 0.8 * w / max(1, right - left)))
    box = draw.textbbox((0, 0), "SANDBOX", font=mark)
    pos = ((w - (box[2] - box[0])) / 2 - box[0], h * 0.38 - (box[3] - box[1]) / 2 - box[1])
    draw.text(
        pos,
        "SANDBOX",
        font=mark,
        fill=(255, 255, 255, 150),
        stroke_width=max(1, unit // 150),
        stroke_fill=(0, 0, 0, 170),
    )
    small = _font(unit // 22)
    tag += " · NSFW" if nsfw else ""
    # the bands are nearly opaque, so an edit's labels cover the ones its source carried
    draw.rectangle((0, 0, w, unit // 22 + unit // 20), fill=(0, 0, 0, 225))
    draw.text((unit // 40, unit // 60), tag, font=small, fill=(255, 255, 255, 235))
    # the prompt band at the bottom
    body = _font(unit // 18)
    chars = max(8, int(w / (unit / 18 * 0.55)))
    lines = textwrap.wrap(" ".join(prompt.split()), width=chars, max_lines=3, placeholder=" …") or [""]
    lines.append(seed_line)
    line_h = unit // 18 + unit // 60
    band = line_h * len(lines) + unit // 30
    draw.rectangle((0, h - band, w, h), fill=(0, 0, 0, 225))
    for k, line in enumerate(lines):
        colour = (255, 230, 120, 255) if k == len(lines) - 1 else (255, 255, 255, 255)
        draw.text((unit // 40, h - band + unit // 60 + k * line_h), line, font=body, fill=colour)


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, format="PNG", compress_level=1)
    elif fmt == "webp":
        img.save(buf, format="WEBP", quality=80)
    else:
        img.save(buf, format="JPEG", quality=88)
    return buf.getvalue()
