"""Settings: where fal traffic goes, how hard the engine works, where runs are kept, what may be spent; the fal key,
loaded and cleaned (clean_key), and the send path's check that no request holds it (search_request)."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ValidationError
from .keys import find_secret, remember, secret_parts

BASE_URL_ENV = "KONTEXT_FAL_URL"
JOURNAL_URL_ENV = "KONTEXT_JOURNAL_URL"

ANNOUNCED: set[str] = set()
"""Notices already given in this process ('sandbox', 'resume'), so none is said twice."""

# Encoded inputs up to this size travel inline as data URIs (a third larger in the JSON);
# larger ones are uploaded to fal's storage first.
INLINE_MAX_BYTES = 256 * 1024
# Inputs whose longer side exceeds this are downscaled (Lanczos) before sending, with a notice.
MAX_INPUT_SIDE = 2048


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on one HTTP request."""

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), self.max_delay))
        backoff = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        return float(backoff * random.uniform(0.5, 1.5))


@dataclass(frozen=True)
class Settings:
    """How a session reaches fal, keeps its runs and spends money. The key is never in the repr."""

    base_url: str | None = None
    """Send all fal traffic (queue, storage, CDN upload) here instead of fal's hosts."""
    key: str | None = field(default=None, repr=False)
    """A fal key; None lets fal_client find one (FAL_KEY, FAL_KEY_ID/FAL_KEY_SECRET, Colab)."""
    concurrency: int = 8
    """Jobs in flight on fal at once; more wait locally, shown as queued."""
    job_timeout: float | None = 900.0
    """Seconds the engine waits for one job before giving up on it (it stays on fal)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    use_stream: bool = True
    """Follow fal's SSE status stream; polling is the fallback."""
    poll_interval: float = 0.1
    inline_max_bytes: int = INLINE_MAX_BYTES
    max_input_side: int = MAX_INPUT_SIDE
    runs_dir: str | None = None
    """The runs folder (journal and images); None means KONTEXT_HOME, else ./kontext-runs."""
    journal_url: str | None = field(default=None, repr=False)
    """``postgresql://user:password@host/database``: the journal and spend ledger there, shared by every kernel on
    every host naming it (images stay in each runs folder). None: KONTEXT_JOURNAL_URL, else SQLite in the runs
    folder. Never shown with its password (``journal_where``)."""
    budget_session: float | None = None
    """Dollars this session may spend; new submissions stop beyond it."""
    budget_daily: float | None = None
    """Dollars all sessions sharing the runs folder (or the journal_url, on every host) may spend per calendar day."""
    budget_timezone: str | None = None
    """The time zone of budget_daily's days (an IANA name); kept in the runs folder by the first kernel that sets
    it, so every kernel on the folder counts the same day. None: the folder's zone, UTC when it keeps none."""
    confirm_above: float = 1.00
    """A single call that would spend more needs confirm=True (the magics and panel ask)."""
    unconfirmed_after: float = 3600.0
    """Seconds after which a submit whose reply was lost, still absent from fal's request history, counts as never
    sent (kx.resume() then releases its price). fal does not say how soon a request shows there, so: generous."""

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def describe(self) -> str:
        return self.base_url or "fal (queue.fal.run)"

    def journal(self) -> str | None:
        """The journal URL in force: the setting, else KONTEXT_JOURNAL_URL; None for SQLite in the runs folder."""
        return check_journal_url(self.journal_url or os.environ.get(JOURNAL_URL_ENV, "").strip() or None)


def check_journal_url(url: str | None) -> str | None:
    """A ``postgresql://`` URL (or None), or a one-line error naming what is allowed (never the password)."""
    if url is None or not url.strip():
        return None
    url = url.strip()
    if not url.startswith(("postgresql://", "postgres://")):
        scheme = url.split("://", 1)[0] if "://" in url else "a path"
        raise ValidationError(
            f"journal_url must be a postgresql://user@host/database URL (or empty: SQLite in the runs folder), "
            f"not {scheme if scheme == 'a path' else scheme + '://...'}",
            field="journal_url",
        )
    return url


def env_base_url() -> str | None:
    value = os.environ.get(BASE_URL_ENV, "").strip()
    return value or None


def has_fal_credentials() -> bool:
    """Whether fal_client would find a key (env or Colab secret), without any request. Blank values are no key."""
    env = os.environ
    if env.get("FAL_KEY", "").strip() or (env.get("FAL_KEY_ID", "").strip() and env.get("FAL_KEY_SECRET", "").strip()):
        return True
    if "google.colab" not in sys.modules:  # only Colab has secrets; importing fal_client costs ~100 ms
        return False
    try:
        from fal_client.auth import get_colab_token
    except ImportError:  # pragma: no cover - older fal_client
        return False
    return bool(get_colab_token())


def clean_key(value: str | None, name: str) -> str | None:
    """A key setting as fal must get it: surrounding whitespace stripped; None when empty. A control character, space
    or non-ASCII character inside is refused (ValidationError naming the setting and the position, not the key)."""
    if value is None or not value.strip():
        return None
    stripped = value.strip()
    bad = next(((i, c) for i, c in enumerate(stripped) if not "\x21" <= c <= "\x7e"), None)
    if bad is not None:
        position, char = bad
        kind = "a control character" if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 else "a character"
        raise ValidationError(
            f"{name} holds {kind} (U+{ord(char):04X}) inside it, at character {position + 1} of {len(stripped)}: "
            "a fal key is printable ASCII; paste it again (nothing was sent)",
            field=name,
        )
    return stripped


def fal_key_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """FAL_KEY, else FAL_KEY_ID:FAL_KEY_SECRET, cleaned (fal_client's order); None when neither is set."""
    env = os.environ if environ is None else environ
    key = clean_key(env.get("FAL_KEY"), "FAL_KEY")
    if key is not None:
        return key
    key_id = clean_key(env.get("FAL_KEY_ID"), "FAL_KEY_ID")
    secret = clean_key(env.get("FAL_KEY_SECRET"), "FAL_KEY_SECRET")
    return f"{key_id}:{secret}" if key_id and secret else None


def resolve_key(key: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The key a session uses: its own setting, else the environment's, cleaned (raises on a damaged one)."""
    if key is None:
        return fal_key_from_env(environ)
    cleaned = clean_key(key, "the key setting")
    if cleaned:
        remember(cleaned)
    return cleaned


def search_request(settings: Any, values: list[tuple[str, Any]]) -> tuple[str, str] | None:
    """(where, how) the key in use (``settings.key`` or the environment's) is held in any of the named values.

    No frame of a traceback from here shows the key (IPython's verbose tracebacks print every frame's variables):
    the only variable that holds it is emptied before anything is raised, and the error is a fresh one."""
    parts: tuple[str, ...] = ()
    try:
        parts = secret_parts(resolve_key(getattr(settings, "key", None)))
        for prefix, value in values:
            found = find_secret(value, parts)
            if found is not None:
                return prefix + found[0], found[1]
        return None
    except Exception as exc:
        parts = ()
        if isinstance(exc, ValidationError):
            raise ValidationError(str(exc), field=exc.field) from None
        raise RuntimeError(f"checking the request for the fal key failed ({type(exc).__name__})") from None


def sandbox_notice(url: str | None = None, *, terminal: bool = False) -> str:
    """The one line that says jobs go to the offline sandbox (at load, or when the first job starts it); in a
    terminal it names IPython, not Jupyter and a kernel."""
    where = f" at {url}" if url else ""
    then = (
        "before starting IPython) and start it again" if terminal else "before starting Jupyter) and restart the kernel"
    )
    return (
        f"kontext_nb: no fal key found, so jobs run on the offline sandbox{where}: images are SANDBOX placeholders "
        f"and nothing is charged. For real FLUX.1 Kontext images set FAL_KEY (export FAL_KEY=... {then}."
    )
