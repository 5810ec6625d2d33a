"""Settings: where fal traffic goes, how hard the engine works, where runs are kept, what may be spent."""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, field, replace
from typing import Any

BASE_URL_ENV = "KONTEXT_FAL_URL"

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
    budget_session: float | None = None
    """Dollars this session may spend; new submissions stop beyond it."""
    budget_daily: float | None = None
    """Dollars all sessions sharing the runs folder may spend per calendar day."""
    confirm_above: float = 1.00
    """A single call that would spend more needs confirm=True (the magics and panel ask)."""

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def describe(self) -> str:
        return self.base_url or "fal (queue.fal.run)"


def env_base_url() -> str | None:
    value = os.environ.get(BASE_URL_ENV, "").strip()
    return value or None


def has_fal_credentials() -> bool:
    """Whether fal_client would find a key (env or Colab secret), without any request."""
    if os.environ.get("FAL_KEY") or (os.environ.get("FAL_KEY_ID") and os.environ.get("FAL_KEY_SECRET")):
        return True
    if "google.colab" not in sys.modules:  # only Colab has secrets; importing fal_client costs ~100 ms
        return False
    try:
        from fal_client.auth import get_colab_token
    except ImportError:  # pragma: no cover - older fal_client
        return False
    return bool(get_colab_token())


MIN_SECRET_PART = 8
"""Shorter pieces of a key are not searched for (they would match ordinary words)."""


def secret_parts(key: str | None = None) -> list[str]:
    """The fal key in use and its id and secret halves (fal keys are 'id:secret'), from ``key`` and the
    environment, longest first: what must never leave in a request's text."""
    found = {
        key or "",
        os.environ.get("FAL_KEY", ""),
        os.environ.get("FAL_KEY_ID", ""),
        os.environ.get("FAL_KEY_SECRET", ""),
    }
    parts = set()
    for value in found:
        for piece in (value, *value.split(":")):
            if len(piece.strip()) >= MIN_SECRET_PART:
                parts.add(piece.strip())
    return sorted(parts, key=len, reverse=True)


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
