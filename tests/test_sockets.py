"""tests/sockets.py reads an answer to its end however TCP cuts it: fed here in tiny segments with pauses between
them, over a real socket pair, by a thread (a reader that stops at the first segment fails every one of these)."""

from __future__ import annotations

import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from budget import examples  # tests/budget.py: KONTEXT_HYPOTHESIS=deep for the full budget
from hypothesis import given, settings
from hypothesis import strategies as st
from sockets import Answer, read_answer, read_until_closed

BODY = b"the request body did not arrive within 0.5 s"
LENGTH = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 44\r\n\r\n" + BODY
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\nthe \r\n10;x=y\r\nrequest body did\r\n18\r\n not arrive within 0.5 s\r\n0\r\n\r\n"
)
CLOSED = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + BODY


def pieces(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """data cut at the given offsets."""
    edges = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def feed(sock: socket.socket, segments: list[bytes], pause: float, close: bool) -> threading.Thread:
    """Sends each segment on its own, pausing between them (so each reaches the reader as its own segment)."""

    def send() -> None:
        for segment in segments:
            sock.sendall(segment)
            time.sleep(pause)
        if close:
            sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def read_fed(pair: tuple[socket.socket, socket.socket], segments: list[bytes], pause: float, close: bool) -> Answer:
    ours, theirs = pair
    thread = feed(theirs, segments, pause, close)
    try:
        return read_answer(ours, timeout=30)
    finally:
        thread.join(30)


@pytest.mark.parametrize("size", [1, 3, 7])
def test_an_answer_in_tiny_delayed_segments_is_read_whole(pair: tuple[socket.socket, socket.socket], size: int) -> None:
    segments = [LENGTH[i : i + size] for i in range(0, len(LENGTH), size)]
    answer = read_fed(pair, segments, pause=0.002, close=False)  # the connection stays open: Content-Length ends it
    assert (answer.status, answer.reason, answer.body, answer.ended_by) == (408, "Request Timeout", BODY, "length")
    assert answer.headers["content-type"] == "text/plain" and answer.raw == LENGTH


def test_head_and_body_apart_as_under_load(pair: tuple[socket.socket, socket.socket]) -> None:
    head, body = LENGTH.split(b"\r\n\r\n")
    answer = read_fed(pair, [head + b"\r\n\r\n", body], pause=0.2, close=False)
    assert answer.body == BODY


def test_a_chunked_answer_is_read_to_its_last_chunk(pair: tuple[socket.socket, socket.socket]) -> None:
    answer = read_fed(pair, [CHUNKED[i : i + 2] for i in range(0, len(CHUNKED), 2)], pause=0.001, close=False)
    assert (answer.status, answer.body, answer.ended_by) == (200, BODY, "chunked")


def test_an_answer_without_a_length_is_read_to_the_close(pair: tuple[socket.socket, socket.socket]) -> None:
    answer = read_fed(pair, [CLOSED[i : i + 5] for i in range(0, len(CLOSED), 5)], pause=0.001, close=True)
    assert (answer.body, answer.ended_by) == (BODY, "close")


def test_the_next_answer_on_a_kept_alive_connection_is_left_for_the_next_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    theirs.sendall(LENGTH + CHUNKED[:20])
    assert read_answer(ours).body == BODY
    theirs.sendall(CHUNKED[20:])
    assert read_answer(ours).raw == CHUNKED, "the first read took only its own answer's bytes"


def test_an_answer_cut_short_fails_with_what_was_read(pair: tuple[socket.socket, socket.socket]) -> None:
    with pytest.raises(AssertionError, match=r"ended in the body \(10 of 44 bytes\)"):
        read_fed(pair, [LENGTH[:-34]], pause=0.0, close=True)


def test_silence_fails_at_the_deadline_instead_of_hanging(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    theirs.sendall(LENGTH[:30])
    late = re.escape("no end of the answer after 0.2 s; read so far: b'HTTP/1.1 408")
    with pytest.raises(AssertionError, match=late):
        read_answer(ours, timeout=0.2)


def test_read_until_closed_waits_for_the_close(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    thread = feed(theirs, [b"bye", b" now"], pause=0.05, close=True)
    assert read_until_closed(ours) == b"bye now"
    thread.join(30)


@settings(max_examples=examples(ci=20, deep=40), deadline=None)
@given(data=st.sampled_from([LENGTH, CHUNKED, CLOSED]), cuts=st.lists(st.integers(0, len(CHUNKED)), max_size=12))
def test_wherever_the_answer_is_cut_the_same_answer_is_read(data: bytes, cuts: list[int]) -> None:
    ours, theirs = socket.socketpair()
    try:
        thread = feed(theirs, pieces(data, cuts), pause=0.0005, close=data is CLOSED)
        answer = read_answer(ours)
        thread.join(30)
    finally:
        ours.close()
        theirs.close()
    assert answer.body == BODY
    assert answer.raw == data


def test_every_raw_socket_read_in_the_suite_goes_through_the_helper() -> None:
    """One door: a ``recv`` anywhere else in the tests would be a read that may stop at the first segment."""
    tests = Path(__file__).resolve().parent
    helper = tests / "sockets.py"
    found = [
        f"{path.relative_to(tests)}:{n}: {line.strip()}"
        for path in sorted(tests.rglob("*.py"))
        if path != helper and "node_modules" not in path.parts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\.recv(_into|from)?\(", line) and path != Path(__file__).resolve()
    ]
    assert found == [], "read raw sockets with tests/sockets.py (read_answer, read_until_closed):\n" + "\n".join(found)
