"""An ASGI app served by uvicorn on a daemon thread: how the sandbox and the classroom proxy run in a process.

The socket is bound by the caller's thread before uvicorn starts, so port 0 yields a known free
port at once and a taken port fails where the caller can report it.
"""

from __future__ import annotations

import socket
import threading
import time
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

    def __init__(self, app: Any, sock: socket.socket, name: str) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=2,
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
