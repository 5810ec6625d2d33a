"""Image inputs: every kind of source is read and checked before anything is sent."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kontext_nb.errors import ImageInputError
from kontext_nb.images import ImageInput, prepare_image


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "red", mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def decoded(item: ImageInput) -> Image.Image:
    assert item.data is not None
    return Image.open(io.BytesIO(item.data))


def test_path_keeps_the_original_bytes(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(png_bytes())
    for source in (str(path), path):
        item = prepare_image(source)
        assert item.data == path.read_bytes()
        assert item.content_type == "image/png" and item.size == (64, 48)
        assert item.url is None and item.sha256 and "cat.png" in item.description


def test_jpeg_and_webp_pass_through_other_formats_become_png(tmp_path: Path) -> None:
    for fmt, mime in (("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        buf = io.BytesIO()
        Image.new("RGB", (20, 10), "blue").save(buf, fmt)
        assert prepare_image(buf.getvalue()).content_type == mime
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), "blue").save(buf, "BMP")
    item = prepare_image(buf.getvalue())
    assert item.content_type == "image/png" and decoded(item).format == "PNG"


def test_url_is_passed_untouched() -> None:
    item = prepare_image("https://example.org/a.png?x=1")
    assert item.url == "https://example.org/a.png?x=1" and item.data is None
    assert item.label() == item.url


def test_data_uri_pil_bytes_numpy() -> None:
    raw = png_bytes(color="green")
    uri = "data:image/png;base64," + base64.b64encode(raw).decode()
    assert prepare_image(uri).data == raw
    assert decoded(prepare_image(Image.new("RGB", (30, 20), "white"))).size == (30, 20)
    assert prepare_image(raw).data == raw
    assert prepare_image(bytearray(raw)).data == raw
    arr = np.zeros((12, 16, 3), dtype=np.uint8)
    arr[..., 2] = 255
    assert decoded(prepare_image(arr)).getpixel((0, 0)) == (0, 0, 255)
    grey = prepare_image(np.full((5, 6), 0.5, dtype=np.float32))
    assert decoded(grey).size == (6, 5) and decoded(grey).getpixel((0, 0)) == 128
    rgba = prepare_image(np.zeros((4, 4, 4), dtype=np.uint8))
    assert decoded(rgba).mode == "RGBA"


def test_result_like_objects_give_their_first_image() -> None:
    class FakeResult:  # a Result's shape: its first image's bytes are used as they are
        request_id = "req-1"
        image_bytes = (png_bytes(color="yellow"), png_bytes(color="black"))

    item = prepare_image(FakeResult())
    assert item.data == FakeResult.image_bytes[0] and "req-1" in item.description

    class Empty:
        request_id = "req-2"
        image_bytes: tuple[bytes, ...] = ()

    with pytest.raises(ImageInputError, match="no images"):
        prepare_image(Empty())


def test_large_images_are_downscaled_with_the_old_size_recorded() -> None:
    item = prepare_image(png_bytes((3000, 1000)), max_side=1000)
    assert item.size == (1000, 333) and item.downscaled_from == (3000, 1000)
    assert decoded(item).size == (1000, 333)
    small = prepare_image(png_bytes((100, 50)), max_side=1000)
    assert small.downscaled_from is None


def test_exif_rotation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), "red")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif)
    assert prepare_image(buf.getvalue()).size == (20, 40)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: str(p / "missing.png"), "does not exist"),
        (lambda p: str(p), "is a folder"),
        (lambda p: "", "image path is empty"),
        (lambda p: b"", "is empty"),
        (lambda p: b"this is not an image at all", "not an image PIL can read"),
        (lambda p: png_bytes()[:60], "corrupt"),
        (lambda p: "data:text/plain;base64,aGVsbG8=", "data:image/<type>;base64"),
        (lambda p: "data:image/png;base64,@@@", "invalid base64"),
        (lambda p: "https://exa mple.org/a.png", "contains spaces"),
        (lambda p: np.zeros((3, 3, 2), dtype=np.uint8), "is not an image"),
        (lambda p: np.zeros((0, 3), dtype=np.uint8), "is empty"),
        (lambda p: np.full((3, 3), 2.0), "from 0 to 1"),
        (lambda p: np.full((3, 3), np.nan), "from 0 to 1"),
        (lambda p: np.zeros((3, 3), dtype=np.int64), "dtype int64"),
        (lambda p: 42, "cannot use a int as an image"),
        (lambda p: Image.new("RGB", (0, 0)), "is empty"),
    ],
)
def test_bad_sources_fail_with_one_clear_line(tmp_path: Path, make, words: str) -> None:
    with pytest.raises(ImageInputError) as info:
        prepare_image(make(tmp_path))
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_text_file_with_an_image_name_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "photo.jpg"
    fake.write_text("hello")
    with pytest.raises(ImageInputError, match=r"photo\.jpg.*not an image"):
        prepare_image(fake)


def test_data_uri_form() -> None:
    item = prepare_image(png_bytes())
    assert item.data_uri().startswith("data:image/png;base64,")
    assert base64.b64decode(item.data_uri().split(",", 1)[1]) == item.data
    assert item.label() == f"data:image/png;sha256={item.sha256}"


def test_a_huge_jpeg_result_is_decoded_at_a_reduced_scale() -> None:
    """Memory follows what is shown: a result over the pixel limit decodes as a JPEG draft (its bytes stay whole)."""
    import io

    from PIL import Image

    from kontext_nb.images import decode_image

    buf = io.BytesIO()
    Image.new("L", (4000, 3000), 128).save(buf, "JPEG")
    full = decode_image(buf.getvalue())
    reduced = decode_image(buf.getvalue(), max_pixels=4_000_000)
    assert full.size == (4000, 3000) and reduced.size == (2000, 1500)  # the largest draft within the limit


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def test_previews_decode_what_they_show_and_refuse_what_they_cannot_bound() -> None:
    """A preview of a baseline JPEG decodes at draft scale, even over the limit; a progressive JPEG (libjpeg holds
    all its coefficients) or a PNG over the limit is refused from its header, with the one line outputs show."""
    from kontext_nb.errors import ImageTooLarge
    from kontext_nb.images import cannot_preview, decode_image, preview

    picture = Image.new("RGB", (800, 600), (200, 40, 40))
    baseline, progressive = encoded(picture, "JPEG"), encoded(picture, "JPEG", progressive=True)
    small = preview(baseline, 64, max_pixels=10_000)
    assert max(small.size) == 64 and small.getpixel((10, 10))[0] > 150
    assert cannot_preview(baseline, max_pixels=10_000) == "" and cannot_preview(progressive, max_pixels=10_000)
    assert preview(encoded(picture, "PNG"), 64).size == (64, 48)  # under the limit: decoded, then made small
    for data in (progressive, encoded(picture, "PNG"), encoded(picture, "WEBP")):
        with pytest.raises(ImageTooLarge, match=r"^800x600 \(0 megapixels\), more than the 0 megapixels") as info:
            preview(data, 64, max_pixels=10_000)
        assert "no preview" in str(info.value) and "\n" not in str(info.value)
        with pytest.raises(ImageTooLarge):
            decode_image(data, max_pixels=10_000)
