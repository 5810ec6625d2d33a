"""A classroom proxy for FLUX.1 Kontext on fal: students use it, the instructor's fal key stays on it.

Students point kontext_nb (or fal_client) at the proxy with a token of their own in place of
a fal key — ``KONTEXT_FAL_URL=http://HOST:8900`` and ``FAL_KEY=<their token>`` — and nothing
else changes. The proxy checks every request against the class's limits (images per day,
dollars per session, jobs in flight, class totals, a safety_tolerance ceiling, a blocklist),
queues jobs fairly between students, sends them to fal with the real key, watches them to the
end and keeps every result and refusal in SQLite. The instructor sees it all on a web page.

Serve (``kontext-nb proxy --roster students.csv`` on the command line does the same)::

    from kontext_nb.proxy import ProxyConfig, Limits, start
    server = start(ProxyConfig(state_dir="class", roster="students.csv", host="0.0.0.0",
                               limits=Limits(images_per_day=20, dollars_per_session=1.0)))
    server.url, server.port, server.new_tokens, server.instructor_token   # tokens: shown once
    server.stop()                       # or: with start(...) as server: ...

Manage a class, with or without a server running on the same folder::

    from kontext_nb.proxy.classroom import Classroom
    room = Classroom("class")
    token = room.add_student("Ada")     # shown once; only its SHA-256 is kept
    room.import_roster("students.csv")  # {name: token} of the new ones, also in class/new-tokens-*.csv
    room.revoke("Ada"); room.restore("Ada")
    room.new_instructor_token()         # the old one stops working
    room.usage(session="2026-11-21")    # what the instructor page shows, as a dict

Modules: limits.py (quota arithmetic), bounds.py (what a token and the class may hold at once),
policy.py (endpoints, safety, blocklist), fold.py (the blocklist's normaliser), inputs.py (input
sizes for per-megapixel reservations), roster.py (tokens, CSV), classroom.py (the state: SQLite or
PostgreSQL), schema.py (its tables), spend.py (the append-only spend ledger quotas read), reports.py (the
instructor's numbers), instances.py (what several instances share; heartbeats, takeover), upstream.py
(the real key, URL rewriting, scrubbing), job.py (a job, the fair queue), dispatch.py (sending and watching), state.py
(shared server state and answers), queue_routes.py (fal's queue), storage.py (uploads, media),
instructor.py (the page), duel.py (the class duel), student_view.py (what a student's notebook
shows), app.py (assembles them), __main__.py (the command line).

Layer: a server in front of fal. It may import endpoints.py, errors.py, config.py, serving.py,
fal's status/transport/error modules (to reach upstream as the engine does) and the sandbox
(its wire protocol and schema, and as a rehearsal upstream) — never the journal, views or
presentation. Put it on a network as the README's classroom section says: it bounds what one
client address and one token can hold (connections, requests, bodies, uploads) and reads no body
before a token, but TLS and per-address rate limits belong to a reverse proxy in front of it.
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kontext_nb.config import RetryPolicy
from kontext_nb.serving import ConnectionLimits, ServerThread, listen

from . import instances
from .bounds import Bounds
from .classroom import Classroom
from .instances import instance_id

if TYPE_CHECKING:
    from kontext_nb.sandbox import SandboxServer
from .limits import Limits

__all__ = ["Bounds", "Classroom", "Limits", "ProxyConfig", "ProxyError", "ProxyServer", "start"]

DEFAULT_PORT = 8900
DEFAULT_STATE_DIR = "kontext-proxy"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
_TOKEN_PATTERN = re.compile(r"\bkx[si]-[A-Za-z0-9_-]{8,}")


class ProxyError(Exception):
    """A setting that keeps the proxy from starting; the message is one line for the instructor."""


@dataclass
class ProxyConfig:
    """Everything a classroom proxy needs. The key is never in the repr."""

    state_dir: str | Path = DEFAULT_STATE_DIR
    """Holds classroom.db (students, jobs, refusals) and the new-tokens-*.csv files; or a ``postgresql://`` URL:
    one state for several instances behind a load balancer (instances.py says what they share)."""
    host: str = "127.0.0.1"
    """127.0.0.1 serves this machine only; 0.0.0.0 serves the classroom network."""
    port: int = DEFAULT_PORT  # 0: any free port
    public_url: str | None = None
    """The address students use, put into every URL the proxy returns; default: the Host they used."""
    upstream: str = "fal"
    """'fal', 'sandbox' (an in-process sandbox for rehearsals) or the URL of any fal-compatible server."""
    fal_key: str | None = field(default=None, repr=False)
    """The real key; None reads FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET). Ignored for 'sandbox'."""
    limits: Limits = field(default_factory=Limits)
    blocklist: Sequence[str] = ()
    """Words and phrases refused in prompts (whole words, any case)."""
    session: str | None = None
    """Dollar limits count jobs of this session name; default today's date, so a restart continues it."""
    roster: str | Path | None = None
    """A CSV with a name column (and optionally token) imported at start."""
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    poll_interval: float = 0.25
    """Seconds between upstream status polls when the upstream has no status stream."""
    retry: RetryPolicy | None = None
    """Retries of upstream requests; None is kontext_nb's default policy."""
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    """Caps on open connections (in all and per client address), the trusted reverse proxies whose
    X-Forwarded-For names the client, and deadlines for heads and bodies."""
    bounds: Bounds = field(default_factory=Bounds)
    """What one token and the class can hold at once: requests, body bytes, uploads, upload bytes per day."""
    heartbeat: float = 5.0
    """Seconds between this instance's heartbeats in the state; the jobs of an instance silent for six of them
    are taken over by another (give every instance of a class the same)."""
    allow: Sequence[str] = ()
    """The endpoints students may call: endpoint ids, aliases or fnmatch patterns over the registry's endpoint ids
    ('fal-ai/flux-2-*/edit'); empty: the FLUX.1 Kontext family. Each is priced by the registry (models.bound)."""
    prices: Mapping[str, tuple[float, str]] = field(default_factory=dict)
    """Prices the instructor declares for models fal publishes none for: {alias or id: (dollars, 'image' or
    'megapixel')}, set in this process's registry at start (``kx.set_price``); without one such a model is refused."""


def fal_key_from_env() -> str | None:
    """FAL_KEY (or FAL_KEY_ID:FAL_KEY_SECRET), stripped; a control character inside is refused (config.clean_key)."""
    from ..config import fal_key_from_env as from_env

    return from_env()


class _Redact(logging.Filter):
    """Takes the key and anything shaped like a token out of log records (defence in depth)."""

    def __init__(self, secrets_: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets_ if len(s) >= 8]

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return _TOKEN_PATTERN.sub("kx?-[redacted]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.clean(record.getMessage()), ()
        if record.exc_info:
            record.exc_text = self.clean("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        return True


_LOGGERS = ("kontext_nb.proxy", "uvicorn", "uvicorn.error", "uvicorn.access", "kontext_nb.fal.status", "httpx")


class ProxyServer:
    """A running proxy: uvicorn in a daemon thread (as kontext_nb.sandbox runs). ``stop()`` ends it."""

    sandbox: SandboxServer | None
    """The rehearsal sandbox this proxy started as its upstream (``--upstream sandbox``), else None."""

    def __init__(self, config: ProxyConfig) -> None:
        from .app import create_app
        from .state import Proxy
        from .upstream import Upstream

        self.config = config
        self.new_tokens: dict[str, str] = {}
        """Tokens issued for the roster's new students (shown once; also in tokens_file)."""
        self.tokens_file: Path | None = None
        self.instructor_token: str | None = None
        """Set when this start issued the first instructor token (shown once)."""
        try:  # a pattern matching no model: one line, before anything listens
            from .policy import allowed_endpoints

            self.allowed = allowed_endpoints(tuple(config.allow))
            _declare(config.prices)
        except ValueError as exc:
            raise ProxyError(str(exc)) from None
        key, label = self._key(config)
        try:
            self._socket, self.port, bound = listen(config.host, config.port)
        except BaseException:
            if self.sandbox is not None:
                self.sandbox.stop()
            raise
        try:
            self.url: str = (config.public_url or bound).rstrip("/")
            self.classroom = Classroom(config.state_dir)
            if config.roster is not None:
                self.new_tokens = self.classroom.import_roster(config.roster)
                self.tokens_file = self.classroom.last_tokens_file
            if self.classroom.instructor_token_hash() is None:
                self.instructor_token = self.classroom.new_instructor_token()
            local = (bound, f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}")
            self.upstream = Upstream(self._target, key, config.retry, label)
            self.proxy = Proxy(config, self.classroom, self.upstream, local, instance_id(self.port))
        except BaseException:
            self._socket.close()
            if self.sandbox is not None:
                self.sandbox.stop()
            raise
        self._redact = _Redact([key, *key.split(":")])
        for name in _LOGGERS:
            logging.getLogger(name).addFilter(self._redact)
        self.app = create_app(self.proxy)
        self._thread = ServerThread(self.app, self._socket, f"kontext-proxy-{self.port}", config.connections)
        self.connections = self._thread.connections
        """The open connections by client address (what the connection caps count)."""

    def _key(self, config: ProxyConfig) -> tuple[str, str]:
        """The upstream key and a label for the upstream; starts the rehearsal sandbox when asked."""
        if config.upstream == "sandbox":
            from kontext_nb import sandbox

            key = "kxsandbox-" + secrets.token_urlsafe(24)  # the sandbox checks it exactly as fal checks a key
            control = secrets.token_urlsafe(24)  # its control API (faults, settings) answers only this process
            self.sandbox = sandbox.start(require_key=key, port=0, control_token=control)
            self._target = self.sandbox.url
            return key, "sandbox (in-process rehearsal)"
        self.sandbox = None
        if config.upstream != "fal" and not config.upstream.startswith(("http://", "https://")):
            raise ProxyError(f"--upstream must be fal, sandbox or an http(s) URL, not {config.upstream!r}")
        fal_key = config.fal_key or fal_key_from_env()
        if not fal_key:
            raise ProxyError(
                "no fal key: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET) in the proxy's environment, "
                "or use --upstream sandbox to rehearse without one"
            )
        self._target = config.upstream
        return fal_key, ("fal" if config.upstream == "fal" else config.upstream)

    def _start(self, timeout: float = 10.0) -> None:
        try:
            self._thread.start(timeout)
        except RuntimeError as exc:
            self._cleanup()
            raise ProxyError(f"the proxy did not start on port {self.port}: {exc}") from None

    def _cleanup(self) -> None:
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        for name in _LOGGERS:
            logging.getLogger(name).removeFilter(self._redact)
        self.classroom.close()

    def stop(self, timeout: float = 10.0) -> None:
        """End open status streams, let submits in progress finish, shut uvicorn down, close the db.

        Jobs waiting or running upstream stay in the db: a proxy started on the same state folder
        takes them up again.
        """
        loop = self.proxy.loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self.proxy.dispatcher.begin_close)
        self._thread.stop(timeout)
        self._cleanup()

    def __enter__(self) -> ProxyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ProxyServer {self.url} upstream={self.upstream.describe()}>"

    def banner(self) -> list[str]:
        """What the instructor needs to know, one line each (never the key)."""
        lines = [f"kontext_nb classroom proxy listening on {self.url}"]
        if self.config.host in ("0.0.0.0", "::"):
            lines[0] += f" (and on every network interface, port {self.port})"
        if self.config.host in ("0.0.0.0", "::") and not self.config.public_url:
            lines.append(f"students: export KONTEXT_FAL_URL=http://{_lan_address()}:{self.port} FAL_KEY=<their token>")
        else:
            lines.append(f"students: export KONTEXT_FAL_URL={self.url} FAL_KEY=<their token>")
        lines.append(f"upstream: {self.upstream.describe()}")
        lines.append(
            f"state: {self.classroom.where} (session {self.proxy.session}; instance {self.proxy.dispatcher.me})"
        )
        for other, settings in instances.others(self.classroom, self.proxy.dispatcher.me, self.proxy.dispatcher.lapse):
            if settings != self.proxy.dispatcher.settings:
                lines.append(f"warning: instance {other} serves this class with other settings: {settings}")
        if self.sandbox is not None and self.classroom.path is None:
            lines.append(
                "note: the rehearsal sandbox is this instance's own; for several instances start one sandbox "
                "(python -m kontext_nb.sandbox --require-key KEY) and give each --upstream URL"
            )
        lines.append(f"limits: {self.proxy.limits.describe()}; blocklist: {len(self.proxy.blocklist)} entries")
        lines.append(self._allowed_line())
        page = f"{self.url}/instructor"
        if self.instructor_token is not None:
            lines.append(f"instructor page: {page} (log in with this token, shown once: {self.instructor_token})")
        else:
            lines.append(f"instructor page: {page} (a new token: kontext-nb proxy instructor-token)")
        return lines

    def _allowed_line(self) -> str:
        from kontext_nb import models

        ids = sorted(self.allowed.ids)
        unpriced = [i for i in ids if models.can_price(models.get(i)) is not None]
        line = f"allowed: {len(ids)} endpoint{'s' * (len(ids) != 1)} ({self.allowed.describe()})"
        if unpriced:
            line += f"; refused for want of a published price: {', '.join(unpriced)}"
        return line


def _declare(prices: Mapping[str, tuple[float, str]]) -> None:
    """The instructor's declared prices, in the registry every reservation reads (a bad one: ValueError, one line)."""
    from kontext_nb import models

    for name, (dollars, per) in prices.items():
        models.registry().set_price(name, dollars, per)  # its ValidationError is a ValueError naming what is wrong


def _lan_address() -> str:
    """This machine's address on the local network, as other machines would reach it (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))
            return str(probe.getsockname()[0])
    except OSError:
        return "<this machine's address>"


def start(config: ProxyConfig | None = None, **settings: Any) -> ProxyServer:
    """Start a proxy (``start(ProxyConfig(...))`` or ``start(state_dir=..., ...)``) once it accepts connections."""
    if config is None:
        config = ProxyConfig(**settings)
    elif settings:
        raise TypeError("give either a ProxyConfig or settings, not both")
    server = ProxyServer(config)
    server._start()
    return server
