"""Issue 13, security: a hostile student against real servers on loopback (bounded in count; no timing asserted)."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable

import httpx
import pytest
from PIL import Image
from sockets import read_answer, read_until_closed  # tests/sockets.py: tests/ is on sys.path

import kontext_nb.sandbox
from kontext_nb.proxy import ProxyServer
from kontext_nb.proxy.policy import Blocklist
from kontext_nb.sandbox import SandboxServer
from kontext_nb.serving import ConnectionLimits

from .conftest import CLASS_KEY, EDIT, T2I, auth, wait_until

HTML = b"<!doctype html><script>fetch('/instructor').then(r => r.text())</script>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def test_only_images_are_stored_and_files_are_never_pages(make_proxy: Callable[..., ProxyServer]) -> None:
    server = make_proxy()
    token = server.classroom.add_student("Mallory")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        for data, kind in ((HTML, "text/html"), (SVG, "image/svg+xml"), (b"<?xml version='1.0'?><x/>", "text/xml")):
            refused = client.post(
                f"{server.url}/files/upload", content=data, headers={**auth(token), "content-type": kind}
            )
            assert refused.status_code == 415 and "only images can be uploaded" in refused.json()["detail"]
            start = client.post(
                f"{server.url}/storage/upload/initiate",
                json={"file_name": "x.html", "content_type": kind},
                headers=auth(token),
            ).json()
            put = client.put(start["upload_url"], content=data, headers={"content-type": kind})
            assert put.status_code == 415
            assert client.get(start["file_url"]).status_code == 404
        stored = client.post(
            f"{server.url}/files/upload", content=png(), headers={**auth(token), "content-type": "text/html"}
        )
        assert stored.status_code == 200
        served = client.get(stored.json()["access_url"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_no_body_is_read_without_a_token_or_an_issued_upload_id(make_proxy: Callable[..., ProxyServer]) -> None:
    server = make_proxy()
    big = {"content-length": str(20 * 1024 * 1024)}
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        # the server answers from the headers alone; the client sends a short body, so nothing hangs
        assert client.put(f"{server.url}/storage/uploads/anything", content=b"x" * 10).status_code == 404
        assert client.post(f"{server.url}/files/upload", content=b"x" * 10).status_code == 401
        assert client.post(f"{server.url}/{T2I}", content=b"{}").status_code == 401
    for path, method in (("/storage/uploads/anything", "PUT"), ("/files/upload", "POST"), (f"/{T2I}", "POST")):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {big['content-length']}\r\n\r\n"
            sock.sendall(head.encode() + b"x" * 1024)  # 1 KiB of 20 MiB: the answer comes without the rest
            answer = read_answer(sock)
        assert answer.status in (401, 404, 413), answer


def test_slow_heads_and_bodies_are_cut_and_one_address_cannot_take_every_connection(
    make_proxy: Callable[..., ProxyServer],
) -> None:
    limits = ConnectionLimits(max_connections=200, per_client=8, head_seconds=0.5, body_seconds=0.5)
    server = make_proxy(connections=limits)
    token = server.classroom.add_student("Ada")
    hoarded = []
    try:
        for _ in range(20):  # from another loopback address than the student's
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30, source_address=("127.0.0.2", 0))
            hoarded.append(sock)
        # every one is hung up on, without a word: 12 over the per-address cap at once, 8 when their head is late
        assert [read_until_closed(sock) for sock in hoarded] == [b""] * 20
    finally:
        for sock in hoarded:
            sock.close()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /" + T2I.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Key " + token.encode())
        sock.sendall(b"\r\nContent-Length: 100\r\n\r\n{")  # then nothing more
        answer = read_answer(sock)
    assert answer.status == 408 and b"did not arrive within" in answer.body, answer
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        assert client.post(f"{server.url}/{T2I}", json={"prompt": "x"}, headers=auth(token)).status_code == 200


def test_a_rehearsal_sandbox_fetches_nothing_but_its_own_files(make_proxy: Callable[..., ProxyServer]) -> None:
    server = make_proxy(upstream="sandbox", fal_key=None)
    token = server.classroom.add_student("Mallory")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    targets = [f"http://127.0.0.1:{server.port}/instructor", f"http://127.0.0.1:{closed_port}/x.png"]
    targets.append(f"http://127.0.0.1:{server.sandbox.port}/_sandbox/stats")
    errors = []
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        for url in targets:
            job = client.post(f"{server.url}/{EDIT}", json={"prompt": "x", "image_url": url}, headers=auth(token))
            status_url = job.json()["status_url"]

            def finished(status_url: str = status_url) -> bool:
                return bool(client.get(status_url, headers=auth(token)).json()["status"] == "COMPLETED")

            wait_until(finished, "the job ended")
            errors.append(client.get(status_url, headers=auth(token)).json()["error"])
    assert len(set(errors)) == 1, errors  # one line, whatever listens there
    assert str(closed_port) not in errors[0] and "refused" not in errors[0].lower()
    assert "reads only data URIs and its own storage" in errors[0]


@pytest.mark.parametrize(
    "word", ["c\u200bat", "c\u200dat", "c\u2060at", "c\u00adat", "ca\ufe0ft", "\u0441at", "c\u03b1t"]
)
def test_the_blocklist_sees_through_invisible_and_look_alike_letters(word: str) -> None:
    assert Blocklist(["cat"]).matches(f"a {word} on a mat")
    assert not Blocklist(["cat"]).matches("concatenate the scattered catalogue")


def test_a_disguised_blocked_word_is_refused_at_the_proxy(make_proxy: Callable[..., ProxyServer]) -> None:
    server = make_proxy(blocklist=["cat"])
    token = server.classroom.add_student("Mallory")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        for word in ("c\u200bat", "\u0441at", "c\u03b1t"):
            answer = client.post(f"{server.url}/{T2I}", json={"prompt": f"a {word}"}, headers=auth(token))
            assert answer.status_code == 403 and answer.headers["x-kontext-limit"] == "blocklist"


def test_deeply_nested_json_is_the_students_422_not_an_upstream_error(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    server = make_proxy()
    token = server.classroom.add_student("Mallory")
    nested = b'{"prompt": "x", "seed": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        for url, head in ((f"{server.url}/{T2I}", auth(token)), (f"{upstream.url}/{T2I}", auth(CLASS_KEY))):
            answer = client.post(url, content=nested, headers={**head, "content-type": "application/json"})
            assert answer.status_code == 422, answer.text
            [item] = answer.json()["detail"]
            assert item["msg"] == "Invalid JSON: nested more than 32 levels deep" and "\n" not in item["msg"]
    assert json.loads(b'{"a": ' + b"[" * 10 + b"]" * 10 + b"}")  # shallow nesting stays fine


def test_the_sandbox_alone_refuses_other_hosts_too() -> None:
    with kontext_nb.sandbox.running(inference_time=0.0, image_scale=0.1) as url, httpx.Client(timeout=30) as client:
        job = client.post(
            f"{url}/{EDIT}", json={"prompt": "x", "image_url": "http://127.0.0.1:9/x.png"}, headers=auth("k")
        )
        status_url = job.json()["status_url"]
        wait_until(lambda: client.get(status_url, headers=auth("k")).json()["status"] == "COMPLETED", "done")
        error = client.get(status_url, headers=auth("k")).json()["error"]
    assert "reads only data URIs and its own storage" in error and ":9" not in error
