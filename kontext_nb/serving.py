"""An ASGI app served by uvicorn on a daemon thread: how the sandbox and the classroom proxy run in a process.

The socket is bound by the caller's thread before uvicorn starts, so port 0 yields a known free
port at once and a taken port fails where the caller can report it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any


def listen(host: str, port: int) -> tuple[socket.socket, int, str]:
    """A bound TCP socket, its port, and the URL a client on this machine uses to reach it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets (else +40 ms per response)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port = int(sock.getsockname()[1])
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return sock, bound_port, f"http://{shown}:{bound_port}"


class ServerThread:
    """uvicorn serving ``app`` on ``sock`` in a daemon thread; ``start()`` returns once it accepts connections."""

    def __init__(self, app: Any, sock: socket.socket, name: str, limits: ConnectionLimits | None = None) -> None:
        import uvicorn

        limits = limits or ConnectionLimits()
        if hasattr(app, "state"):
            app.state.body_seconds = limits.body_seconds
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            loop="asyncio",
            http=guarded_protocol(limits),
            timeout_graceful_shutdown=2,
            timeout_keep_alive=max(1, round(limits.keep_alive_seconds)),
            limit_concurrency=limits.max_connections,
            h11_max_incomplete_event_size=16 * 1024,
        )
        self._server = uvicorn.Server(config)
        self._socket = sock
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._error: BaseException | None = None

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start(); a thread cannot raise to its caller
            self._error = exc

    def start(self, timeout: float = 10.0) -> None:
        """Raises RuntimeError (naming uvicorn's error) if the server does not come up within timeout."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise RuntimeError(f"{self._error!r}")
            time.sleep(0.005)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to shut down (it lets open requests end) and join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout)


# ---- defences of a server that faces a network ---------------------------------------------
@dataclass(frozen=True)
class ConnectionLimits:
    """What one server lets clients hold open; the rest of what a hostile network needs is in front of it.

    uvicorn bounds header size (h11, 16 KiB) and idle keep-alive connections; these add a cap on
    connections in all and per client address, and a deadline for a request's head, so idle or
    slow-header connections cannot use up the process's file descriptors. Bodies are bounded by
    ``read_body``. Behind a reverse proxy every client has its address: raise ``per_client``.
    """

    max_connections: int = 1000
    per_client: int = 256
    head_seconds: float = 10.0
    """A connection that has not sent a whole request head this long after connecting (or after its
    last answer) is closed."""
    keep_alive_seconds: float = 5.0
    body_seconds: float = 60.0
    """A request body still arriving after this long is refused (408)."""


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a cap on connections (all, and per client address) and a deadline for heads."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    per_address: Counter[str] = Counter()

    class GuardedH11Protocol(H11Protocol):
        _address: str | None = None
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if peer else "?"
            if len(self.connections) > limits.max_connections or per_address[address] >= limits.per_client:
                transport.abort()  # no answer: a client over its share gets a reset, not a slot
                return
            self._address = address
            per_address[address] += 1
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._address is not None:
                per_address[self._address] -= 1
                if per_address[self._address] <= 0:
                    del per_address[self._address]
                self._address = None
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before:
                self._disarm()  # a whole head arrived
            elif self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()  # the next request's head has begun

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(limits.head_seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()

    return GuardedH11Protocol


class SlowBody(Exception):
    """A request body that kept arriving past ConnectionLimits.body_seconds (answered 408)."""


async def read_body(request: Any, limit: int, seconds: float | None = None) -> bytes | None:
    """The body, or None if it is (or says it will be) larger than ``limit``: the caller answers 413.

    Raises SlowBody when it takes longer than ``seconds`` (default: the server's body_seconds).
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    if seconds is None:
        seconds = getattr(request.app.state, "body_seconds", ConnectionLimits.body_seconds)

    async def read() -> bytes | None:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(read(), seconds)
    except asyncio.TimeoutError:
        raise SlowBody(f"the request body did not arrive within {seconds:g} s") from None
