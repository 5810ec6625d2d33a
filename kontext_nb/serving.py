"""An ASGI app served by uvicorn on a daemon thread: how the sandbox and the classroom proxy run in a process.

The socket is bound by the caller's thread before uvicorn starts, so port 0 yields a known free
port at once and a taken port fails where the caller can report it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
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
        self.connections = ConnectionTable()
        """The open connections by client address (the caps count these)."""
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
            http=guarded_protocol(limits, self.connections),
            timeout_graceful_shutdown=2,
            timeout_keep_alive=max(1, round(limits.keep_alive_seconds)),
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            proxy_headers=bool(limits.trusted_proxies),  # uvicorn's default believes X-Forwarded-For from loopback
            forwarded_allow_ips=list(limits.trusted_proxies),
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
MAX_HEAD_BYTES = 16 * 1024
"""A request head (request line and headers) larger than this is answered 431, however it arrives."""


@dataclass(frozen=True)
class ConnectionLimits:
    """What one server lets clients hold open; the rest of what a hostile network needs is in front of it.

    uvicorn bounds idle keep-alive connections; these add a cap on connections in all and per
    client address, a deadline and a size limit (all reads together) for a request's head, so idle
    or slow-header connections cannot use up the process's file descriptors. When all
    ``max_connections`` are taken, a new connection takes the place of the oldest idle one (no
    request in progress: a half-sent head, or keep-alive) of the address holding the most, so a
    few addresses cannot lock everyone else out. Bodies are bounded by ``read_body``.
    """

    max_connections: int = 1000
    per_client: int = 256
    """Connections from one client address (a trusted reverse proxy's own are bounded only by max_connections)."""
    head_seconds: float = 10.0
    """A connection that has not sent a whole request head this long after connecting (or after its
    last answer) is closed."""
    keep_alive_seconds: float = 5.0
    body_seconds: float = 60.0
    """A request body still arriving after this long is refused (408)."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or CIDRs of reverse proxies in front of the server: only from them is X-Forwarded-For
    believed (the client address becomes its rightmost untrusted entry). Empty: believed from no one."""

    def __post_init__(self) -> None:
        for name in ("max_connections", "per_client"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")
        networks = []
        for text in self.trusted_proxies:
            try:
                networks.append(str(ipaddress.ip_network(str(text).strip(), strict=False)))
            except ValueError:
                raise ValueError(f"trusted proxy {text!r} is not an IP address or CIDR (like 10.0.0.0/8)") from None
        object.__setattr__(self, "trusted_proxies", tuple(networks))

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(net) for net in self.trusted_proxies)


class ConnectionTable:
    """Open connections by client address, oldest first: what the cap counts and eviction chooses from."""

    def __init__(self) -> None:
        self.by_address: dict[str, dict[Any, None]] = {}

    def count(self, address: str | None = None) -> int:
        if address is None:
            return sum(map(len, self.by_address.values()))
        return len(self.by_address.get(address, ()))

    def add(self, address: str, connection: Any) -> None:
        self.by_address.setdefault(address, {})[connection] = None

    def remove(self, address: str, connection: Any) -> None:
        held = self.by_address.get(address)
        if held is not None:
            held.pop(connection, None)
            if not held:
                del self.by_address[address]

    def idle_victim(self, spare: Any) -> tuple[str, Any] | None:
        """The oldest idle connection of the address holding the most (``spare`` excepted), if any."""
        for address, held in sorted(self.by_address.items(), key=lambda item: -len(item[1])):
            for connection in held:
                if connection is not spare and connection.idle():
                    return address, connection
        return None


def guarded_protocol(limits: ConnectionLimits, table: ConnectionTable | None = None) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with caps on connections (all, per client address), a deadline and a size for heads."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    connections = table if table is not None else ConnectionTable()
    detail = b'{"detail": "the request head is larger than the 16 KiB this server reads"}'
    too_large = (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"x-fal-error-type: request_header_fields_too_large\r\nconnection: close\r\n"
        b"content-length: " + str(len(detail)).encode() + b"\r\n\r\n" + detail
    )

    class GuardedH11Protocol(H11Protocol):
        _address: str | None = None
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0
        _tail = b""

        def idle(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if peer else "?"
            trusted = limits.trusts(address)
            if not trusted and connections.count(address) >= limits.per_client:
                transport.abort()  # no answer: a client over its share gets a reset, not a slot
                return
            if connections.count() >= limits.max_connections:
                victim = connections.idle_victim(self)
                if victim is None:
                    transport.abort()
                    return
                connections.remove(*victim)
                victim[1]._address = None
                victim[1].transport.abort()
            self._address = address
            connections.add(address, self)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._address is not None:
                connections.remove(self._address, self)
                self._address = None
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE and not self._head_fits(data):  # a head, not the end of a body
                self.transport.write(too_large)
                self.transport.close()
                return
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before:
                self._disarm()  # a whole head arrived
                self._head_bytes, self._tail = 0, b""
            elif self._head_timer is None and self.idle():
                self._arm()  # the next request's head has begun

        def _head_fits(self, data: bytes) -> bool:
            """Counts a head's bytes over every read until its blank line: at most MAX_HEAD_BYTES in all."""
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            if end < 0:
                self._head_bytes += len(data)
                self._tail = seen[-3:]
                return self._head_bytes <= MAX_HEAD_BYTES
            size = self._head_bytes + end + 4 - len(self._tail)
            self._head_bytes, self._tail = 0, b""
            return size <= MAX_HEAD_BYTES

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(limits.head_seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if self.idle():
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
