"""Image inputs: whatever a user holds, checked and turned into something fal accepts.

Everything here runs before any request, so an unreadable, corrupt or non-image source
fails with one clear line and nothing is sent or paid for.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from .config import MAX_INPUT_SIDE
from .errors import ImageInputError, ImageTooLarge

MAX_FILE_BYTES = 50 * 1024 * 1024
"""Image files larger than this are refused before they are read (a photo is a few MB; 50 MB is no photo)."""
MAX_INPUT_PIXELS = 50_000_000
"""Sources with more pixels than this (a 50-megapixel camera's frame) are refused from their header, before
decoding: a small PNG can hold a 13000x13000 image that decodes to gigabytes. FLUX.1 Kontext works at about one
megapixel, and kontext_nb sends at most max_input_side (2048 px) a side anyway. Results over it (a custom
image_size of [dev], or a broken server) are saved as received but never decoded: no preview, one line instead."""
# Formats fal decodes as they are; anything else PIL reads is re-encoded as PNG.
PASSTHROUGH_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


@dataclass(frozen=True)
class ImageInput:
    """An image ready to send: either a URL fal fetches itself, or checked bytes."""

    __kontext_image__ = True

    description: str
    url: str | None = None
    data: bytes | None = field(default=None, repr=False)
    content_type: str | None = None
    size: tuple[int, int] | None = None
    downscaled_from: tuple[int, int] | None = None
    journal_id: int | None = field(default=None, compare=False)
    """The journal job this image is the result of (an edit records it as a parent)."""

    @property
    def sha256(self) -> str | None:
        return hashlib.sha256(self.data).hexdigest() if self.data is not None else None

    def data_uri(self) -> str:
        assert self.data is not None and self.content_type
        return f"data:{self.content_type};base64," + base64.b64encode(self.data).decode("ascii")

    def label(self) -> str:
        """What to record instead of a long data URI: short, stable, hash-identified."""
        if self.url is not None:
            return self.url
        return f"data:{self.content_type};sha256={self.sha256}"

    def filename(self) -> str:
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(self.content_type or "", "bin")
        return f"input-{(self.sha256 or 'x')[:12]}.{ext}"


@dataclass(frozen=True)
class LoraFile:
    """A local LoRA (.safetensors) to upload to fal's storage before the job; journaled by its hash."""

    __kontext_lora__ = True

    description: str
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def label(self) -> str:
        return f"file:{Path(self.description).name};sha256={self.sha256}"

    def filename(self) -> str:
        return Path(self.description).name or f"lora-{self.sha256[:12]}.safetensors"


def read_lora_file(path: str | os.PathLike[str]) -> LoraFile:
    """A local .safetensors file, checked and read (an ImageInputError names the problem)."""
    p = Path(path).expanduser()
    if p.suffix.lower() != ".safetensors":
        raise ImageInputError(f"LoRA {str(path)!r} is not a .safetensors file (or give its URL)")
    if not p.is_file():
        raise ImageInputError(f"LoRA file {str(path)!r} does not exist")
    data = p.read_bytes()
    if not is_safetensors(data):
        raise ImageInputError(f"LoRA file {str(path)!r} is not in the safetensors format (its header is not)")
    return LoraFile(str(p), data)


def image_inputs(arguments: dict[str, Any]) -> list[ImageInput]:
    """The ImageInputs among a request's arguments (image_url, or each of image_urls)."""
    found = []
    for value in arguments.values():
        found += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, ImageInput)]
    return found


def labelled(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments to show and store: each inline image as a short hash label, not its bytes."""

    def label(value: Any) -> Any:
        if isinstance(value, (ImageInput, LoraFile)):
            return value.label()
        if isinstance(value, dict):
            return {k: label(v) for k, v in value.items()}
        return [label(v) for v in value] if isinstance(value, list) else value

    return {k: label(v) for k, v in arguments.items()}


def prepare_image(source: Any, *, max_side: int = MAX_INPUT_SIDE) -> ImageInput:
    """Check one image source and load it.

    Accepts a file path (str or PathLike), an http(s) URL, a data URI, a PIL image, encoded
    bytes, a numpy array (HxW, HxWx3 or HxWx4; uint8, or floats in 0..1), or a Result (its
    first image). URLs are passed to fal untouched; everything else is decoded here.
    """
    if isinstance(source, ImageInput):
        return source
    offered = getattr(source, "kontext_image", None)
    if callable(offered):  # e.g. the mask painter: its finished mask
        return prepare_image(offered(), max_side=max_side)
    images = getattr(source, "image_bytes", None)
    if images is not None and hasattr(source, "request_id"):
        if not images:
            raise ImageInputError("that Result has no images to use as a source")
        loaded = _from_bytes(bytes(images[0]), f"result {source.request_id}", max_side)
        return dataclasses.replace(loaded, journal_id=getattr(source, "journal_id", None))
    if isinstance(source, Image.Image):
        return _from_pil(source, "PIL image", max_side)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), "image bytes", max_side)
    if type(source).__module__ == "numpy" and type(source).__name__ == "ndarray":
        return _from_pil(_from_array(source), f"array {source.shape}", max_side)
    if isinstance(source, str):
        text = source.strip()
        if text.startswith(("http://", "https://")):
            if any(c.isspace() for c in text):
                raise ImageInputError(f"image URL {_short(text)} contains spaces")
            return ImageInput(description=f"URL {_short(text)}", url=text)
        if text.startswith("data:"):
            return _from_bytes(_decode_data_uri(text), "data URI", max_side)
        return _from_path(text, max_side)
    if isinstance(source, os.PathLike):
        return _from_path(os.fspath(source), max_side)
    raise ImageInputError(
        f"cannot use a {type(source).__name__} as an image: give a path, URL, data URI, PIL image, "
        "bytes, numpy array or Result"
    )


def _short(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def _from_path(path: str, max_side: int) -> ImageInput:
    shown = repr(path if len(path) <= 60 else "..." + path[-57:])  # the file name matters most
    if not path:
        raise ImageInputError("image path is empty")
    if not os.path.exists(path):
        raise ImageInputError(f"image file {shown} does not exist")
    if os.path.isdir(path):
        raise ImageInputError(f"image path {shown} is a folder, not a file")
    if not os.path.isfile(path):  # a FIFO or a device would block the kernel on read
        raise ImageInputError(f"image path {shown} is not a regular file")
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise ImageInputError(
            f"image file {shown} is {size / 2**20:.0f} MB; the largest accepted is {MAX_FILE_BYTES // 2**20} MB "
            "(save it smaller, e.g. as JPEG)"
        )
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageInputError(f"cannot read image file {shown}: {exc.strerror or exc}") from None
    return _from_bytes(data, f"file {shown}", max_side)


def _decode_data_uri(uri: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:image/") or ";base64" not in header:
        raise ImageInputError("data URI must look like 'data:image/<type>;base64,<data>'")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageInputError("data URI holds invalid base64") from None


def _from_array(array: Any) -> Image.Image:
    import numpy as np

    arr = np.asarray(array)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ImageInputError(f"array of shape {arr.shape} is not an image: use HxW, HxWx3 or HxWx4")
    if arr.size == 0:
        raise ImageInputError(f"array of shape {arr.shape} is empty")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ImageInputError("float arrays must hold finite values from 0 to 1")
        arr = (arr * 255).round().astype("uint8")
    elif arr.dtype != np.uint8:
        raise ImageInputError(f"array dtype {arr.dtype} is not supported: use uint8, or floats from 0 to 1")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr)


def _from_pil(image: Image.Image, description: str, max_side: int) -> ImageInput:
    if image.width == 0 or image.height == 0:
        raise ImageInputError(f"{description} is empty ({image.width}x{image.height})")
    return _encode(image, description, max_side, fmt=None, original=None)


def _from_bytes(data: bytes, description: str, max_side: int) -> ImageInput:
    if not data:
        raise ImageInputError(f"{description} is empty")
    try:
        with warnings.catch_warnings():  # PIL's own bomb warning: the pixel count is checked right here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
        fmt, size = image.format, image.size
        if size[0] * size[1] > MAX_INPUT_PIXELS:
            raise ImageInputError(
                f"{description} is {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.0f} megapixels); the largest "
                f"accepted is {MAX_INPUT_PIXELS / 1e6:.0f} megapixels (scale it down first)"
            )
        if fmt == "JPEG" and max(size) > max_side:
            image.draft("RGB", (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale: memory follows what is sent
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, ImageInputError):
            raise
        why = "not an image PIL can read" if isinstance(exc, UnidentifiedImageError) else f"corrupt ({exc})"
        raise ImageInputError(f"{description} is {why}") from None
    return _encode(image, description, max_side, fmt=fmt, original=data, decoded_from=size)


def _encode(
    image: Image.Image,
    description: str,
    max_side: int,
    *,
    fmt: str | None,
    original: bytes | None,
    decoded_from: tuple[int, int] | None = None,
) -> ImageInput:
    """Keep the original bytes when they can go as they are; otherwise encode once."""
    changed = _has_rotation(image)
    if changed:
        image = ImageOps.exif_transpose(image)
    downscaled_from = None
    if decoded_from is not None and decoded_from != image.size and not changed:  # decoded as a JPEG draft
        downscaled_from, changed = decoded_from, True
    if max(image.size) > max_side:
        downscaled_from = downscaled_from or image.size
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        changed = True
    if original is not None and fmt in PASSTHROUGH_FORMATS and not changed:
        return ImageInput(description, data=original, content_type=PASSTHROUGH_FORMATS[fmt], size=image.size)
    out_fmt = "JPEG" if fmt == "JPEG" else "PNG"
    if out_fmt == "PNG" and image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    if out_fmt == "JPEG" and image.mode != "RGB":
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, out_fmt, **({"quality": 95} if out_fmt == "JPEG" else {}))
    return ImageInput(
        description,
        data=buf.getvalue(),
        content_type=PASSTHROUGH_FORMATS[out_fmt],
        size=image.size,
        downscaled_from=downscaled_from,
    )


def _has_rotation(image: Image.Image) -> bool:
    try:
        return bool(image.getexif().get(0x0112, 1) != 1)
    except Exception:
        return False


def _open(data: bytes) -> Image.Image:
    with warnings.catch_warnings():  # the pixel count is checked by the callers: PIL's bomb warning adds nothing
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))  # reads the header only


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header alone (nothing is decoded)."""
    return _open(data).size


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's first bytes, or None when they are not a readable image header (pricing
    then assumes the largest: fal/source_size.py, the proxy)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            width, height = image_size(data)
    except Exception:
        return None
    return (int(width), int(height)) if width > 0 and height > 0 else None


def too_large(size: tuple[int, int], max_pixels: int = MAX_INPUT_PIXELS) -> str:
    """Why an image of this size is not decoded ('' when it is): the start of the one line outputs show."""
    width, height = size
    if width * height <= max_pixels:
        return ""
    return (
        f"{width}x{height} ({width * height / 1e6:.0f} megapixels), more than the {max_pixels / 1e6:.0f} megapixels "
        "kontext_nb decodes: no preview"
    )


def cannot_preview(data: bytes, max_pixels: int = MAX_INPUT_PIXELS) -> str:
    """Why :func:`preview` refuses these bytes, from the header ('' when it does not): the one line's start."""
    image = _open(data)
    return "" if _draftable(image, max_pixels) else too_large(image.size, max_pixels)


def _draftable(image: Image.Image, max_pixels: int) -> bool:
    """Within the limit, or a baseline JPEG whose 1/8 scale fits: libjpeg decodes it scaled, row by row (a
    progressive one needs every coefficient of the full image in memory first, so it is not)."""
    width, height = image.size
    if width * height <= max_pixels:
        return True
    return image.format == "JPEG" and not image.info.get("progressive") and (width // 8) * (height // 8) <= max_pixels


def decode_image(data: bytes, max_pixels: int = MAX_INPUT_PIXELS) -> Image.Image:
    """Decode a result fully (a truncated download must fail here, not later). A baseline JPEG of more than
    ``max_pixels`` is decoded at 1/2, 1/4 or 1/8 scale (PIL's draft mode), so memory follows what is shown; any
    other image over ``max_pixels`` raises ImageTooLarge unread. The bytes fal returned are kept and saved whole
    either way."""
    image = _open(data)
    width, height = image.size
    if width * height > max_pixels:
        if not _draftable(image, max_pixels):
            raise ImageTooLarge(too_large(image.size, max_pixels))
        scale = 2
        while scale < 8 and (width // scale) * (height // scale) > max_pixels:
            scale *= 2
        image.draft(image.mode, (width // scale, height // scale))
    image.load()
    return image


def preview(data: bytes, side: int, max_pixels: int = MAX_INPUT_PIXELS) -> Image.Image:
    """A copy of at most ``side`` pixels a side, for outputs and thumbnails. A JPEG is decoded at the smallest
    draft scale that still covers ``side``; other formats are decoded whole, which ``max_pixels`` bounds, and
    dropped at once. Raises ImageTooLarge (nothing decoded) for images over ``max_pixels``."""
    image = _open(data)
    if not _draftable(image, max_pixels):
        raise ImageTooLarge(too_large(image.size, max_pixels))
    if image.format == "JPEG":
        image.draft("RGB", (side, side))
    image.load()
    image.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return image


def encode_thumbnail(image: Image.Image, side: int) -> tuple[bytes, str]:
    """A small encoded copy: JPEG, or PNG when the image has transparency."""
    thumb = image.copy()
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    buf = io.BytesIO()
    has_alpha = thumb.mode in ("RGBA", "LA") or (thumb.mode == "P" and "transparency" in thumb.info)
    if has_alpha:
        thumb.save(buf, "PNG", optimize=True)
        return buf.getvalue(), "image/png"
    thumb.convert("RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue(), "image/jpeg"


IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
SNIFFED_TYPES = "PNG, JPEG, WebP, GIF, BMP, TIFF, AVIF or HEIC"


def is_safetensors(data: bytes) -> bool:
    """A .safetensors file by its bytes: an 8-byte little-endian header length, then that much JSON."""
    if len(data) < 10:
        return False
    n = int.from_bytes(data[:8], "little")
    return 2 <= n <= len(data) - 8 and data[8:9] == b"{"


def sniff_upload(data: bytes) -> str | None:
    """What may go to fal's storage from kontext_nb: an image (its type), a LoRA (.safetensors), else None."""
    return sniff_content_type(data) or ("application/octet-stream" if is_safetensors(data) else None)


def sniff_content_type(data: bytes) -> str | None:
    """The image type the bytes themselves say, whatever a header, a name or a client claims; None: not an image.

    The one place image bytes are recognised: file endings in the runs folder, collected results, and what the
    sandbox and the classroom proxy agree to store and serve.
    """
    for signature, content_type in IMAGE_SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heif"):
            return "image/heic"
    return None
