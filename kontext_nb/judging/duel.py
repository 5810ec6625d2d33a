"""A blind duel: two results at a time, in random order, their settings hidden until the vote.

``LocalDuel`` draws pairs from the journal and records votes there; the classroom proxy has its own (see
``kontext_nb.proxy.duel``), and the widget (``kontext_nb.widgets.duel``) takes either: anything with
``next_pair()`` and ``vote(pair, choice)``.
"""

from __future__ import annotations

import getpass
import io
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image, ImageOps

from .. import endpoints
from ..errors import ValidationError
from ..images import preview
from ..journal.db import JobRecord, Journal, Vote
from . import ranking

CHOICES = ("left", "right", "tie")
IMAGE_SIDE = 768
"""Longer side, in pixels, of the images a duel shows (sent once to the browser as JPEG)."""
HIDDEN = ("prompt", "image_url", "image_urls", "mask_url", "sync_mode")


@dataclass(frozen=True)
class Contender:
    """One side of a duel: an id to vote with, the image, and what is revealed after the vote."""

    key: str
    image: bytes
    reveal: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pair:
    left: Contender
    right: Contender
    number: int
    """1 for the first pair this duel showed, 2 for the next..."""


class DuelSource(Protocol):
    """What a duel widget needs: the next pair (None when there is nothing to compare) and a way to vote."""

    def next_pair(self) -> Pair | None: ...

    def vote(self, pair: Pair, choice: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Record the vote; may return what the two were (revealed now), else the pair's own reveals are shown."""


def default_voter() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return "anonymous"


def check_choice(choice: object) -> str:
    if choice not in CHOICES:
        raise ValidationError(f"choice={choice!r} is not allowed: choose one of left, right, tie", field="choice")
    return str(choice)


def image_bytes(record: JobRecord, side: int = IMAGE_SIDE) -> bytes:
    """The first image of a job, at most ``side`` px, as JPEG."""
    with preview(record.paths[0].read_bytes(), side) as image:  # over 50 MP: ImageTooLarge, nothing decoded
        picture = ImageOps.exif_transpose(image).convert("RGB")
    picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def reveal(record: JobRecord) -> dict[str, Any]:
    """What a duel shows about a result once it has been voted on."""
    settings = {k: v for k, v in record.arguments.items() if k not in HIDDEN and k != "seed"}
    return {
        "ref": record.ref,
        "prompt": record.prompt,
        "seed": record.seed,
        "model": record.model,
        "mode": record.mode,
        "cost": endpoints.format_cost(record.cost),
        "settings": ", ".join(f"{k}={v}" for k, v in sorted(settings.items())),
    }


class LocalDuel:
    """Pairs from the journal of one runs folder; votes recorded there as ``voter``."""

    def __init__(
        self,
        journal: Journal,
        records: Sequence[JobRecord],
        *,
        voter: str | None = None,
        session: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        usable = [r for r in dict((r.id, r) for r in records).values() if r.status == "done" and r.files]
        if len(usable) < 2:
            raise ValidationError(
                f"a duel needs at least two finished results with images; got {len(usable)}"
                + (f" of {len(records)}" if len(records) != len(usable) else "")
            )
        self.journal = journal
        self.records = {r.id: r for r in usable}
        self.voter = voter or default_voter()
        self.session = session
        self.rng = rng or random.Random()
        self.shown = 0
        self._images: dict[int, bytes] = {}

    def image(self, record: JobRecord) -> bytes:
        if record.id not in self._images:
            self._images[record.id] = image_bytes(record)
        return self._images[record.id]

    def next_pair(self) -> Pair | None:
        ids = list(self.records)
        chosen = ranking.next_pair(ids, self.journal.votes(ids), self.voter, self.rng)
        if chosen is None:
            return None
        self.shown += 1
        left, right = (self.records[i] for i in chosen)
        return Pair(
            Contender(left.ref, self.image(left), reveal(left)),
            Contender(right.ref, self.image(right), reveal(right)),
            self.shown,
        )

    def upcoming(self, pair: Pair) -> dict[str, Pair]:
        """The pair ``next_pair()`` would give after each choice on ``pair`` (its vote supposed recorded): a view
        sends their images ahead and shows the right one the moment the key is pressed. Nothing is recorded."""
        ids = list(self.records)
        votes = self.journal.votes(ids)
        first, second = int(pair.left.key.lstrip("@")), int(pair.right.key.lstrip("@"))
        found: dict[str, Pair] = {}
        for choice in CHOICES:
            winner, loser = (second, first) if choice == "right" else (first, second)
            supposed = Vote(0, time.time(), winner, loser, choice == "tie", self.voter, self.session)
            chosen = ranking.next_pair(ids, [*votes, supposed], self.voter, self.rng)
            if chosen is not None:
                left, right = (self.records[i] for i in chosen)
                found[choice] = Pair(
                    Contender(left.ref, self.image(left), reveal(left)),
                    Contender(right.ref, self.image(right), reveal(right)),
                    pair.number + 1,
                )
        return found

    def accept(self, pair: Pair) -> None:
        """``pair`` (one of ``upcoming``'s) is the one on show now, as if ``next_pair()`` had given it."""
        self.shown = pair.number

    def vote(self, pair: Pair, choice: str) -> None:
        choice = check_choice(choice)
        winner, loser = (pair.right, pair.left) if choice == "right" else (pair.left, pair.right)
        self.journal.add_vote(
            int(winner.key.lstrip("@")),
            int(loser.key.lstrip("@")),
            tie=choice == "tie",
            voter=self.voter,
            session=self.session,
        )
