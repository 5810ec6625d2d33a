"""Submits whose reply was lost ('unconfirmed'), settled from fal's request history by ``kx.resume()``.

A lost reply leaves a job that fal may have accepted (and may bill) without its request id. fal's request history
(``/v1/models/requests/by-endpoint?expand=payloads``) lists what arrived, with its input: the one request of that
endpoint in the submit's time window whose input is the journaled arguments (and whose id the journal does not
already hold) is that job; it is recorded and collected, never sent again. When nothing matches a look made
``Settings.unconfirmed_after`` seconds or more after the submit, and no request there even has its prompt, it never
arrived: it is marked not sent and its price released. Anything less certain (no payloads kept,
``X-Fal-Store-IO: 0``; the lookup refused) changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import KontextError
from ..fal.platform import same_input
from .db import JobRecord
from .tracking import Tracker

if TYPE_CHECKING:
    from ..fal.engine import Engine

SUBMIT_WINDOW = 60.0
"""Seconds before a row's creation a lookup starts (clock differences); the window ends at unconfirmed_after."""


@dataclass
class Settled:
    """What one pass found: rows resolved (claimed by this session, to collect), released, and why not others."""

    found: list[JobRecord] = field(default_factory=list)
    not_sent: list[int] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def settle_unconfirmed(
    tracker: Tracker, engine: Engine, *, now: float | None = None, since: float | None = None
) -> Settled:
    """Look up every unconfirmed job without a request id (made after ``since``, when given) in fal's request
    history (see the module's text)."""
    now = time.time() if now is None else now
    after = tracker.settings.unconfirmed_after
    journal = tracker.journal
    settled = Settled()
    for record in journal.search(status="unconfirmed"):
        if record.request_id is not None or record.cached or (since is not None and record.created < since):
            continue
        try:
            items = engine.call(
                engine.platform.requests(
                    record.endpoint, start=record.created - SUBMIT_WINDOW, end=min(now, record.created + after) + 60
                )
            )
        except KontextError as exc:
            settled.notices.append(f"kontext_nb: could not read fal's request history for {record.ref}: {exc}")
            continue
        known = {r.request_id for r in journal.search(endpoint=record.endpoint) if r.request_id}
        candidates = [i for i in items if i.request_id not in known and same_input(record.arguments, i.json_input)]
        if len(candidates) > 1:
            settled.notices.append(
                f"kontext_nb: {record.ref} matches {len(candidates)} requests in fal's request history; it stays "
                "unconfirmed (counted as spent): nothing is guessed"
            )
            continue
        if candidates:
            if journal.resolve_unconfirmed(record.id, candidates[0].request_id):
                claimed = tracker.claim(journal.get(record.id))
                if claimed is not None:
                    settled.found.append(claimed)
            continue
        payloads_kept = all(i.json_input is not None for i in items)
        # absence must be proven: a request with the same prompt and other values (fal may store its input
        # differently than it was sent) proves nothing, so the row stays counted
        alike = [
            i
            for i in items
            if i.request_id not in known and (i.json_input or {}).get("prompt") == record.arguments.get("prompt")
        ]
        if alike:
            settled.notices.append(
                f"kontext_nb: {record.ref} is not certainly any request in fal's request history (one with the same "
                "prompt differs in other values); it stays unconfirmed (counted as spent)"
            )
            continue
        if now >= record.created + after and payloads_kept:
            message = (
                f"never sent: fal's request history has no request of {record.endpoint} with this input from when it "
                "was sent, so its price is released"
            )
            if journal.not_sent(record.id, error=message):
                settled.not_sent.append(record.id)
    return settled
