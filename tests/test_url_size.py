"""A URL source's size from its header (issue 20, point 4): one bounded range request to a real HTTP server."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from kontext_nb import endpoints
from kontext_nb.fal.source_size import PROBE_BYTES, data_uri_size, url_image_size
from kontext_nb.request import build_request


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_with_exif_of(size: int) -> bytes:
    """A JPEG whose frame header comes after ``size`` bytes of EXIF (APP1 segments)."""
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480)).save(buffer, "JPEG")
    data = buffer.getvalue()
    segments, left = b"", size
    while left > 4:
        n = min(left, 65535)  # a segment: marker (2 bytes), length (2, counting itself), payload
        segments += b"\xff\xe1" + (n - 2).to_bytes(2, "big") + b"\0" * (n - 4)
        left -= n
    return data[:2] + segments + data[2:]


class Files(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict[str, str], bytes]]] = {}
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        Files.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        status, headers, body = Files.routes.get(self.path, (404, {}, b"not here"))
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)  # the whole file, whatever Range asked: the reader must stop by itself

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Files.routes, Files.seen = {}, []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_the_size_is_read_from_the_first_bytes(server: str) -> None:
    Files.routes["/big.png"] = (200, {"Content-Type": "image/png"}, png(4096, 3000))
    assert url_image_size(f"{server}/big.png") == (4096, 3000)
    (seen,) = Files.seen
    assert seen["range"] == f"bytes=0-{PROBE_BYTES - 1}" and "authorization" not in seen


def test_what_cannot_be_read_is_none(server: str) -> None:
    Files.routes["/page"] = (200, {"Content-Type": "text/html"}, b"<html>" * 20000)
    Files.routes["/late.jpg"] = (200, {}, jpeg_with_exif_of(2 * PROBE_BYTES))  # the header is past what is read
    Files.routes["/early.jpg"] = (200, {}, jpeg_with_exif_of(PROBE_BYTES // 2))
    for path in ("/page", "/late.jpg", "/missing.png"):
        assert url_image_size(f"{server}{path}") is None, path
    assert url_image_size(f"{server}/early.jpg") == (640, 480)
    assert url_image_size("ftp://example.invalid/x.png") is None
    assert url_image_size("http://127.0.0.1:9/closed.png") is None  # nothing listens on the discard port


def test_redirects_are_bounded_and_never_to_a_private_address(server: str) -> None:
    Files.routes["/ok.png"] = (200, {}, png(100, 50))
    Files.routes["/moved"] = (302, {"Location": "/ok.png"}, b"")  # to a private address: not followed
    Files.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    assert url_image_size(f"{server}/ok.png") == (100, 50)  # the address given is the user's to name
    assert url_image_size(f"{server}/moved") is None
    assert url_image_size(f"{server}/loop") is None


def test_data_uris_are_measured_from_their_header() -> None:
    import base64

    uri = "data:image/png;base64," + base64.b64encode(png(1500, 700)).decode()
    assert data_uri_size(uri) == (1500, 700)
    assert data_uri_size("data:image/png;base64,bm90IGFuIGltYWdl") is None
    assert data_uri_size("https://example.invalid/x.png") is None


def test_a_url_edit_is_priced_from_its_header(server: str) -> None:
    """The request's reservation: 4096x3000 is 12 MP of [dev]; num_images multiplies; a URL that cannot be read is
    priced as fal's largest input."""
    Files.routes["/big.png"] = (200, {}, png(4096, 3000))
    request = build_request("edit", "make it night", model="dev", sources=[f"{server}/big.png"], num_images=2)
    assert request.input_size == (4096, 3000) and request.cost == pytest.approx(2 * 12 * 0.025)
    unknown = build_request("edit", "make it night", model="lora", sources=[f"{server}/gone.png"])
    assert unknown.cost == pytest.approx(endpoints.billed_megapixels(14144, 14144) * 0.035)
    per_image = build_request("edit", "make it night", model="max", sources=[f"{server}/gone.png"])
    assert per_image.cost == 0.08 and len(Files.seen) == 2  # a per-image price needs no size: nothing is read


@given(
    endpoint=st.sampled_from(sorted(endpoints.ENDPOINTS)),
    mode=st.sampled_from([None, "match_input", "auto", "16:9", "21:9"]),
    ratio=st.sampled_from([None, *endpoints.ASPECT_RATIOS]),
    n=st.integers(1, 4),
    width=st.integers(1, 14142),
    height=st.integers(1, 14142),
)
def test_an_unknown_source_size_is_priced_as_the_worst(
    endpoint: str, mode: str | None, ratio: str | None, n: int, width: int, height: int
) -> None:
    """Whatever size the source turns out to be (up to fal's 14142 px), the price without it is not lower."""
    ep = endpoints.ENDPOINTS[endpoint]
    arguments: dict[str, Any] = {"num_images": n}
    if mode is not None and any(f.name == "resolution_mode" for f in ep.inputs):
        arguments["resolution_mode"] = mode
    if ratio is not None and any(f.name == "aspect_ratio" for f in ep.inputs):
        arguments["aspect_ratio"] = ratio
    assert ep.estimate(arguments, None) >= ep.estimate(arguments, (width, height)) - 1e-9
