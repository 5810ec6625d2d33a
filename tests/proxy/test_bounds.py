"""Issue 21, points 1, 2, 7 and 10: what one student (or a few addresses) can make the proxy hold is bounded.

Real proxies on loopback, attacked with raw sockets from other loopback addresses (127.0.0.2…);
nothing timed: every wait is for an answer or a count the server reports.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable

import httpx
from PIL import Image
from sockets import read_answer  # tests/sockets.py: tests/ is on sys.path

from kontext_nb.proxy import Bounds, ProxyServer
from kontext_nb.serving import ConnectionLimits

from .conftest import T2I, auth, enroll, wait_until


def png(side: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (10, 200, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def hold(port: int, source: str, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    sock.sendall(data)
    return sock


def answer_of(sock: socket.socket) -> bytes:
    """The proxy's whole answer on ``sock`` (tests/sockets.py), or b"" when it closed or reset the connection
    without one."""
    try:
        return read_answer(sock).raw
    except AssertionError as ended:
        if "connection ended before the end of the head; read: b''" in str(ended):
            return b""
        raise


def test_four_addresses_holding_half_sent_heads_do_not_lock_the_class_out(
    make_proxy: Callable[..., ProxyServer],
) -> None:
    """Point 1: before, 256 idle connections from each of four addresses took all 1000 and refused the class."""
    limits = ConnectionLimits(max_connections=40, per_client=10, head_seconds=120)
    server = make_proxy(connections=limits)
    tokens = enroll(server, 8)
    hoarded = [
        hold(server.port, f"127.0.0.{a}", b"POST /x HTTP/1.1\r\nHost: x\r\n") for a in range(2, 6) for _ in range(10)
    ]
    try:
        wait_until(lambda: server.connections.count() == 40, "the attackers hold every connection")
        with httpx.Client(timeout=30.0, trust_env=False, headers={"connection": "close"}) as client:
            codes = [
                client.post(f"{server.url}/{T2I}", json={"prompt": "a cat"}, headers=auth(token)).status_code
                for token in tokens.values()
            ]
        assert codes == [200] * len(tokens)
        assert server.connections.count() <= 40
    finally:
        for sock in hoarded:
            sock.close()


def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(make_proxy: Callable[..., ProxyServer]) -> None:
    """Behind the TLS reverse proxy all students share its address: the cap must count X-Forwarded-For instead,
    and believe it from nobody else."""
    limits = ConnectionLimits(per_client=3, head_seconds=120, trusted_proxies=("127.0.0.9/32",))
    server = make_proxy(connections=limits, bounds=Bounds(requests_per_client=3, requests_per_token=None))
    mallory, ada = enroll(server, 2).values()

    def slow_submit(source: str, client: str, token: str) -> socket.socket:
        head = (
            f"POST /{T2I} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\nAuthorization: Key {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        return hold(server.port, source, head.encode())  # a request in progress, its body never finished

    held = [slow_submit("127.0.0.9", "10.0.0.66", mallory) for _ in range(3)]
    try:
        wait_until(lambda: len(server.proxy.holdings.bytes) == 1, "Mallory's three submits are being received")
        wait_until(lambda: server.proxy.holdings.total == 300, "Mallory's three submits are being received")
        fourth = slow_submit("127.0.0.9", "10.0.0.66", mallory)
        held.append(fourth)
        assert b" 429 " in answer_of(fourth)[:20]
        # Ada, behind the same reverse proxy, is another client and is served
        body = b'{"prompt": "a cat"}'
        head = (
            f"POST /{T2I} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.7\r\nAuthorization: Key {ada}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        through = hold(server.port, "127.0.0.9", head.encode() + body)
        held.append(through)
        assert answer_of(through).startswith(b"HTTP/1.1 200")
        # from an untrusted address, X-Forwarded-For changes nothing: its connections are its own
        spoofed = [
            hold(server.port, "127.0.0.2", b"GET / HTTP/1.1\r\nX-Forwarded-For: 10.9.9.%d\r\n" % i) for i in range(4)
        ]
        held += spoofed
        assert answer_of(spoofed[-1]) == b""  # the fourth from 127.0.0.2 was reset, whatever it claimed
    finally:
        for sock in held:
            sock.close()


def test_x_forwarded_for_is_believed_from_no_one_by_default(make_proxy: Callable[..., ProxyServer]) -> None:
    """uvicorn's own default believes it from loopback: any local user could claim every address."""
    server = make_proxy(connections=ConnectionLimits(per_client=2, head_seconds=120))
    held = [hold(server.port, "127.0.0.1", b"GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.%d\r\n" % i) for i in range(3)]
    try:
        assert answer_of(held[-1]) == b""
    finally:
        for sock in held:
            sock.close()


def test_one_token_holds_at_most_its_uploads_and_bytes_and_the_others_still_upload(
    make_proxy: Callable[..., ProxyServer],
) -> None:
    """Point 2: before, one token's 48 uploads held one byte short took 1.2 GB."""
    bounds = Bounds(uploads_per_token=2, bytes_per_token=3 * 1024 * 1024)
    server = make_proxy(bounds=bounds)
    mallory, ada = enroll(server, 2).values()
    size = 1024 * 1024
    head = f"POST /files/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Key {mallory}\r\nContent-Length: {size}\r\n\r\n"
    held = [hold(server.port, "127.0.0.2", head.encode() + b"x" * 1000) for _ in range(2)]
    try:
        wait_until(lambda: server.proxy.holdings.uploads.total() == 2, "two uploads are being received")
        third = hold(server.port, "127.0.0.2", head.encode())
        held.append(third)
        refused = answer_of(third)
        assert b" 429 " in refused[:20] and b"uploads-at-once" in refused.lower()
        held.pop(0).close()
        wait_until(lambda: server.proxy.holdings.uploads.total() == 1, "the closed upload is given back")
        with httpx.Client(timeout=30.0, trust_env=False) as client:
            big = client.post(
                f"{server.url}/{T2I}",
                json={"prompt": "x", "pad": "x" * (2 * size + size // 2)},
                headers={**auth(mallory), "content-type": "application/json"},
            )
            assert big.status_code == 429 and big.headers["x-kontext-limit"] == "bytes-in-flight"
            other = client.post(f"{server.url}/files/upload", content=png(), headers=auth(ada))
            assert other.status_code == 200
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: server.proxy.holdings.total == 0, "everything held is given back")


def test_uploads_per_day_are_bounded_and_survive_a_restart(make_proxy: Callable[..., ProxyServer]) -> None:
    """Point 7: uploads are stored upstream (the instructor's storage): a student has a daily allowance."""
    image = png(64)
    server = make_proxy(bounds=Bounds(upload_bytes_per_day=3 * len(image)))
    token = server.classroom.add_student("Mallory")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        codes = [client.post(f"{server.url}/files/upload", content=image, headers=auth(token)) for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        assert codes[-1].headers["x-kontext-limit"] == "upload-bytes-per-day"
        assert "left" in codes[-1].json()["detail"]
        start = client.post(
            f"{server.url}/storage/upload/initiate",
            json={"file_name": "a.png", "content_type": "image/png"},
            headers=auth(token),
        ).json()
        assert client.put(start["upload_url"], content=image).status_code == 429
    server.stop()
    again = make_proxy(bounds=Bounds(upload_bytes_per_day=3 * len(image)))
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        assert client.post(f"{again.url}/files/upload", content=image, headers=auth(token)).status_code == 429


def test_a_large_head_is_refused_however_it_arrives(make_proxy: Callable[..., ProxyServer]) -> None:
    """Point 10: the 16 KiB limit counted per read let a 120 KB head through in one write."""
    server = make_proxy()
    for pieces in (1, 7):
        head = b"GET /instructor HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 40_000 + b"\r\n\r\n"
        cut_off = False
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            step = len(head) // pieces + 1
            try:
                for i in range(0, len(head), step):
                    sock.sendall(head[i : i + step])
            except (ConnectionResetError, BrokenPipeError):
                cut_off = True  # it answered 431 and closed while the rest was still being sent
            answer = answer_of(sock)
        # refused either way: the 431 read, or (the reset overtaking it, as TCP may) a connection never served
        assert answer.startswith(b"HTTP/1.1 431") or (cut_off and answer == b""), answer[:60]
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        assert client.get(f"{server.url}/instructor", headers={"x-pad": "a" * 8000}).status_code == 200


def test_the_rest_of_a_refused_body_is_not_taken_for_a_large_head(make_proxy: Callable[..., ProxyServer]) -> None:
    """A body the proxy refused from its headers keeps arriving on the kept-alive connection: it is not a head."""
    server = make_proxy()
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        for _ in range(5):
            refused = client.post(
                f"{server.url}/files/upload", content=b"x" * (2 * 1024 * 1024), headers=auth("kxs-no")
            )
            assert refused.status_code == 401
            assert client.get(f"{server.url}/instructor").status_code == 200
