"""Reading an HTTP answer from a raw socket to its end, however many segments it arrives in.

One ``recv`` returns whatever TCP delivered so far: under load an answer's head and body often come apart, so a
test that asserts on one ``recv`` reads half an answer now and then. Every raw-socket read in the suite goes
through here. The deadline is a safety net against a hang (far above what an answer takes), not a timed assertion.
Imported as ``from sockets import read_answer`` (tests/ is on sys.path).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

DEADLINE = 30.0
"""Seconds a whole answer may take before the read fails (a hang, never a slow machine)."""


@dataclass(frozen=True)
class Answer:
    """An HTTP/1.x answer as read off the wire."""

    status: int
    reason: str
    headers: dict[str, str] = field(repr=False)
    """Header names in lower case (a repeated header keeps its last value)."""
    body: bytes
    raw: bytes = field(repr=False)
    """Every byte read, head included (a chunked body is decoded into ``body``, kept as sent here)."""
    ended_by: str = "length"
    """How the end was known: ``length`` (Content-Length), ``chunked`` (the last chunk) or ``close``."""


class _Reader:
    """Bytes from a socket until a deadline, never past what is asked for (a next answer stays on the socket)."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock, self.deadline, self.timeout = sock, time.monotonic() + timeout, timeout
        self.buffer, self.raw, self.closed = b"", b"", False

    def more(self, most: int = 65536) -> bool:
        """Reads one more segment (at most ``most`` bytes) into the buffer; False once the connection has ended."""
        if self.closed:
            return False
        late = AssertionError(f"no end of the answer after {self.timeout:g} s; read so far: {self.raw[:300]!r}")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise late
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(most)
        except (ConnectionResetError, ConnectionAbortedError):
            data = b""  # a reset after the answer (the server closed with our unread upload) ends it like a close
        except TimeoutError:
            raise late from None
        self.buffer += data
        self.raw += data
        self.closed = not data
        return bool(data)

    def until(self, marker: bytes, what: str) -> bytes:
        """The bytes up to ``marker`` (consumed with it), read a byte at a time: nothing after it is taken."""
        while not self.buffer.endswith(marker):
            if not self.more(1):
                raise AssertionError(f"the connection ended before {what}; read: {self.raw[:300]!r}")
        found, self.buffer = self.buffer[: -len(marker)], b""
        return found

    def exactly(self, n: int, what: str) -> bytes:
        while len(self.buffer) < n:
            if not self.more(n - len(self.buffer)):
                raise AssertionError(f"the connection ended in {what} ({len(self.buffer)} of {n} bytes)")
        found, self.buffer = self.buffer[:n], self.buffer[n:]
        return found


def read_answer(sock: socket.socket, timeout: float = DEADLINE) -> Answer:
    """The next whole answer on ``sock``: its head, then its body to Content-Length, the last chunk, or the close.

    Fails (AssertionError, with what was read) when the connection ends before the answer does, or after
    ``timeout`` seconds without its end.
    """
    reader = _Reader(sock, timeout)
    head = reader.until(b"\r\n\r\n", "the end of the head").decode("latin-1")
    status_line, *lines = head.split("\r\n")
    version, status, reason = [*status_line.split(" ", 2), ""][:3]
    assert version.startswith("HTTP/1."), f"not an HTTP answer: {reader.raw[:300]!r}"
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if int(status) in (204, 304) or 100 <= int(status) < 200:
        return Answer(int(status), reason, headers, b"", reader.raw, "length")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int(reader.until(b"\r\n", "a chunk's size").split(b";")[0], 16)
            if size == 0:
                reader.until(b"\r\n", "the end of the trailers")  # no trailers: the empty line after the last chunk
                return Answer(int(status), reason, headers, body, reader.raw, "chunked")
            body += reader.exactly(size, "a chunk")
            reader.exactly(2, "a chunk's end")
    if "content-length" in headers:
        body = reader.exactly(int(headers["content-length"]), "the body")
        return Answer(int(status), reason, headers, body, reader.raw, "length")
    while reader.more():
        pass
    return Answer(int(status), reason, headers, reader.buffer, reader.raw, "close")


def read_until_closed(sock: socket.socket, timeout: float = DEADLINE) -> bytes:
    """Everything the peer sends until it closes (or resets) the connection; fails after ``timeout`` seconds."""
    reader = _Reader(sock, timeout)
    while reader.more():
        pass
    return reader.raw
