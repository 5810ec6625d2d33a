"""Metadata in image files: spliced in without re-encoding, read back exactly, visible to PIL and exiftool."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from kontext_nb.journal import metadata

PROMPTS = {
    "emoji": "a fox 🦊 in the snow ❄️ with 👨‍👩‍👧 family",
    "cjk": "东京的夜景，霓虹灯 — 夜の東京 — 서울의 밤",
    "rtl": "قطة على السطح — חתול על הגג",
    "xml": '</x:xmpmeta><script>alert("x")</script> & </kontext:json>]]><!-- -->',
    "controls": "tab\there\nnew line\r\nNUL\x00 bell\x07 done",
}
LONG_ASCII = ("a red fox in a snowy forest, golden hour, " * 500)[:20_000]
LONG_EMOJI = "🦊東" * 10_000


def meta(prompt: str = "a red fox in the snow", seed: int | None = 42, **extra: Any) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "endpoint": "fal-ai/flux-pro/kontext/max/text-to-image",
        "arguments": {"prompt": prompt, "seed": seed, "guidance_scale": 3.5, "aspect_ratio": "16:9"},
        "seed": seed,
        "request_id": "764cabcf-b745-4b3e-ae38-1200304cf45b",
        "parent": None,
        "journal_id": 12,
        "created": "2025-06-01T12:00:00+00:00",
        "kontext_nb_version": "0.1.0",
        **extra,
    }


def picture() -> Image.Image:
    """A noisy picture, so that a re-encode would change pixels."""
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


def encode(fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    picture().save(buf, fmt, **params)
    return buf.getvalue()


def jpeg_with_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0112] = 1  # Orientation
    exif[0x010E] = "an old description"
    return encode("JPEG", exif=exif.tobytes(), quality=90)


def png_with_text() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "kept as it is")
    info.add_text("parameters", "an old prompt\nSteps: 20")
    info.add_itxt("prompt", "an old prompt too")
    return encode("PNG", pnginfo=info)


SOURCES = {
    "jpeg": lambda: encode("JPEG"),
    "jpeg-progressive": lambda: encode("JPEG", progressive=True, quality=80),
    "jpeg-exif-jfif": jpeg_with_exif,
    "png": lambda: encode("PNG"),
    "png-text": png_with_text,
}


@pytest.fixture(params=list(SOURCES))
def source(request: pytest.FixtureRequest) -> bytes:
    return SOURCES[request.param]()


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        return im.tobytes()


def loaded(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def jpeg_segments(data: bytes) -> list[bytes]:
    """The APPn payloads before the image data, in order."""
    out, pos = [], 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        out.append(bytes([data[pos + 1]]) + data[pos + 4 : pos + 2 + length])
        pos += 2 + length
    return out


def png_chunk_types(data: bytes) -> list[bytes]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return out


def exiftool(data: bytes, tmp_path: Path, suffix: str) -> dict[str, Any]:
    """exiftool -j, with -b so that long values are shown whole rather than as "(Binary data ...)"."""
    if shutil.which("exiftool") is None:
        pytest.fail("exiftool is missing: install it with `apt-get install -y libimage-exiftool-perl`")
    path = tmp_path / f"image{suffix}"
    path.write_bytes(data)
    out = subprocess.run(
        ["exiftool", "-j", "-b", "-G", str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout)[0]


def suffix(data: bytes) -> str:
    return ".png" if data.startswith(b"\x89PNG") else ".jpg"


# -- bytes and pixels ---------------------------------------------------------------------------------------------


def test_pixels_identical_and_meta_round_trips(source: bytes) -> None:
    m = meta()
    out = metadata.embed(source, m)
    assert out != source
    assert pixels(out) == pixels(source)
    assert loaded(out).format == loaded(source).format
    assert metadata.read(out) == m
    if source.startswith(b"\xff\xd8"):  # the entropy-coded data is copied byte for byte
        assert out.endswith(source[source.index(b"\xff\xda") :])


def test_embedding_twice_replaces(source: bytes) -> None:
    once = metadata.embed(source, meta())
    assert metadata.embed(once, meta()) == once
    again = metadata.embed(once, meta("a blue fox", seed=7))
    assert metadata.read(again) == meta("a blue fox", seed=7)
    assert pixels(again) == pixels(source)
    if source.startswith(b"\x89PNG"):
        assert png_chunk_types(again) == png_chunk_types(once)
        assert [k for k in loaded(again).text if k == "prompt"] == ["prompt"]
    else:
        kinds = [s[:12] for s in jpeg_segments(again)]
        assert kinds == [s[:12] for s in jpeg_segments(once)]
        assert sum(s.startswith(b"\xe1Exif") for s in jpeg_segments(again)) == 1
        assert sum(s.startswith(b"\xe1http://ns.adobe.com/xap") for s in jpeg_segments(again)) == 1


def test_other_metadata_is_kept() -> None:
    png = loaded(metadata.embed(png_with_text(), meta()))
    assert png.text["Comment"] == "kept as it is"
    assert png.text["prompt"] == "a red fox in the snow"
    assert png.text["parameters"].startswith("a red fox in the snow\n")

    out = metadata.embed(jpeg_with_exif(), meta())
    assert jpeg_segments(out)[0].startswith(b"\xe0JFIF\0"), "JFIF stays the first segment"
    assert jpeg_segments(out)[1].startswith(b"\xe1Exif\0\0")
    exif = loaded(out).getexif()
    assert exif[0x010F] == "CameraMaker" and exif[0x0112] == 1
    assert exif[0x010E] == "a red fox in the snow"


def test_generic_meta_without_prompt_or_seed() -> None:
    for data in (encode("PNG"), encode("JPEG")):
        out = metadata.embed(data, {"note": "x", "nested": {"a": [1, 2.5, None, True]}})
        assert metadata.read(out) == {"note": "x", "nested": {"a": [1, 2.5, None, True]}}
    assert "prompt" not in loaded(metadata.embed(encode("PNG"), {"seed": None})).text


def test_read_from_paths_and_files_without_meta(tmp_path: Path) -> None:
    path = tmp_path / "fox.jpg"
    path.write_bytes(metadata.embed(encode("JPEG"), meta()))
    assert metadata.read(path) == metadata.read(str(path)) == meta()
    assert metadata.read(encode("JPEG")) == {}
    assert metadata.read(png_with_text()) == {}
    assert metadata.read(jpeg_with_exif()) == {}


# -- what ordinary tools show -------------------------------------------------------------------------------------


def test_pil_shows_prompt_and_seed_in_png() -> None:
    im = loaded(metadata.embed(encode("PNG"), meta()))
    assert im.text["prompt"] == "a red fox in the snow"
    assert im.text["seed"] == "42"
    assert json.loads(im.text["kontext_nb"]) == meta()
    endpoint = "fal-ai/flux-pro/kontext/max/text-to-image"
    assert (
        im.text["parameters"] == f"a red fox in the snow\nSeed: 42, Model: FLUX.1 Kontext [max], Endpoint: {endpoint}"
    )


def test_pil_shows_prompt_and_seed_in_jpeg() -> None:
    im = loaded(metadata.embed(encode("JPEG"), meta()))
    exif = im.getexif()
    assert exif[0x010E] == "a red fox in the snow"
    assert exif[0x0131] == "kontext_nb 0.1.0"
    user_comment = exif.get_ifd(0x8769)[0x9286]
    assert user_comment.startswith(b"ASCII\0\0\0") and json.loads(user_comment[8:]) == meta()
    xmp = im.info["xmp"].decode()  # getxmp() would need defusedxml, which is not a dependency
    assert "<kontext:seed>42</kontext:seed>" in xmp
    assert ">a red fox in the snow</rdf:li>" in xmp
    try:
        import defusedxml  # noqa: F401
    except ImportError:
        return
    desc = im.getxmp()["xmpmeta"]["RDF"]["Description"]
    assert desc["seed"] == "42"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exiftool_shows_prompt_and_seed(fmt: str, tmp_path: Path) -> None:
    prompt = "a red fox 🦊 <b>&</b>"
    tags = exiftool(metadata.embed(encode(fmt), meta(prompt)), tmp_path, "." + fmt.lower())
    if fmt == "PNG":
        assert tags["PNG:Prompt"] == prompt and tags["PNG:Seed"] == 42
        assert json.loads(tags["PNG:Kontext_nb"]) == meta(prompt)
        assert "Seed: 42" in tags["PNG:Parameters"]
    else:
        assert tags["XMP:Description"] == prompt and tags["XMP:Seed"] == 42
        assert tags["XMP:Endpoint"] == "fal-ai/flux-pro/kontext/max/text-to-image"
        assert json.loads(tags["XMP:Json"]) == meta(prompt)
        assert tags["EXIF:ImageDescription"] == "a red fox \\U0001f98a <b>&</b>"  # Exif ASCII stays ASCII
        assert json.loads(tags["EXIF:UserComment"]) == meta(prompt)
        assert tags["EXIF:Software"] == "kontext_nb 0.1.0"
    assert not any("Warning" in k or "Error" in k for k in tags), tags


# -- awkward prompts and sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PROMPTS))
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_unicode_and_xml_prompts(name: str, fmt: str) -> None:
    prompt = PROMPTS[name]
    data = encode(fmt)
    out = metadata.embed(data, meta(prompt))
    im = loaded(out)
    assert im.tobytes() == pixels(data)
    assert metadata.read(out) == meta(prompt)
    plain = prompt.replace("\x00", "").replace("\x07", "")  # plain fields drop characters XML and PNG forbid
    if fmt == "PNG":
        assert im.text["prompt"] == plain
    else:
        xmp = im.info["xmp"].decode()
        assert xmp.count("</x:xmpmeta>") == 1 and "<script>" not in xmp
        assert im.getexif()[0x010E].encode("ascii").decode("unicode_escape") == plain


@pytest.mark.parametrize("prompt", [LONG_ASCII, LONG_EMOJI], ids=["ascii", "emoji"])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_20000_character_prompt(prompt: str, fmt: str, tmp_path: Path) -> None:
    data = encode(fmt)
    out = metadata.embed(data, meta(prompt))
    im = loaded(out)
    assert im.tobytes() == pixels(data)
    assert metadata.read(out) == meta(prompt), "the JSON is always whole"
    tags = exiftool(out, tmp_path, "." + fmt.lower())
    if fmt == "PNG":
        assert im.text["prompt"] == prompt and tags["PNG:Prompt"] == prompt
        return
    assert all(len(s) - 1 <= 65533 for s in jpeg_segments(out))
    assert json.loads(tags["XMP:Json"]) == meta(prompt), "exiftool joins the Extended XMP too"
    description = tags["XMP:Description"]
    if prompt.isascii():
        assert description == prompt and im.getexif()[0x010E] == prompt
    else:  # the plain fields are cut, and say so; the Exif UserComment keeps short values only
        assert description.endswith(metadata.TRUNCATED) and prompt.startswith(description[: -len(metadata.TRUNCATED)])
        assert im.getexif()[0x010E].endswith(metadata.TRUNCATED)
        comment = json.loads(tags["EXIF:UserComment"])
        assert comment[metadata.TRUNCATED_KEY] is True and comment["seed"] == 42
        assert len(tags["XMP:Description"].encode()) < 65533
        # Extended XMP as Adobe specifies: GUID = MD5 of the whole extended packet, chunks in offset order
        head = b"\xe1http://ns.adobe.com/xmp/extension/\0"
        chunks = [s[len(head) :] for s in jpeg_segments(out) if s.startswith(head)]
        assert len(chunks) >= 2 and {c[:32].decode() for c in chunks} == {tags["XMP:HasExtendedXMP"]}
        extended = b"".join(c[40:] for c in chunks)
        assert [struct.unpack(">II", c[32:40]) for c in chunks][-1] == (
            len(extended),
            len(extended) - len(chunks[-1]) + 40,
        )
        assert hashlib.md5(extended).hexdigest().upper() == tags["XMP:HasExtendedXMP"]


def test_exif_alone_still_has_the_meta() -> None:
    """Tools that drop XMP but keep Exif: read() falls back to the UserComment (cut when it was too big)."""

    def without_xmp(data: bytes) -> bytes:
        kept = [s for s in jpeg_segments(data) if not s.startswith(b"\xe1http://ns.adobe.com/")]
        head = b"".join(b"\xff" + s[:1] + struct.pack(">H", len(s) + 1) + s[1:] for s in kept)
        return b"\xff\xd8" + head + data[data.index(b"\xff\xda") :]

    small = without_xmp(metadata.embed(encode("JPEG"), meta("東京 🦊")))
    assert metadata.read(small) == meta("東京 🦊")
    big = metadata.read(without_xmp(metadata.embed(encode("JPEG"), meta(LONG_EMOJI))))
    assert big[metadata.TRUNCATED_KEY] is True and big["seed"] == 42 and big["journal_id"] == 12
    assert big["prompt"].endswith(metadata.TRUNCATED)


# -- refusals -----------------------------------------------------------------------------------------------------


def webp_bytes() -> bytes:
    buf = io.BytesIO()
    picture().save(buf, "WEBP")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data, words",
    [
        (webp_bytes, "WEBP"),
        (lambda: b"RIFF\x24\0\0\0WEBPVP8 " + bytes(28), "WEBP"),
        (lambda: encode("GIF"), "GIF"),
        (lambda: b"this is not an image at all", "not a PNG or JPEG"),
        (lambda: b"", "empty"),
        (lambda: encode("PNG")[:60], "not a valid PNG"),
        (lambda: encode("JPEG")[:30], "not a valid JPEG"),
    ],
    ids=["webp", "webp-header", "gif", "garbage", "empty", "truncated-png", "truncated-jpeg"],
)
def test_other_formats_and_garbage_raise(data: Any, words: str) -> None:
    payload = data()
    for call in (lambda: metadata.embed(payload, meta()), lambda: metadata.read(payload)):
        with pytest.raises(ValueError, match=words) as info:
            call()
        assert "\n" not in str(info.value)
