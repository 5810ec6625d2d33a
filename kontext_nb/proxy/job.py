"""A job as one proxy instance follows it (its row in the state is the lasting record), and the fair queue of the
jobs waiting on that instance: one FIFO per student, served in turn."""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from .classroom import DONE, WAITING


class FairQueue:
    """One FIFO per student, served in turn: pop() takes the next student's oldest job."""

    def __init__(self) -> None:
        self._lanes: OrderedDict[str, deque[str]] = OrderedDict()  # in serving order
        self._order: list[str] | None = None

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def push(self, student: str, job_id: str) -> None:
        self._lanes.setdefault(student, deque()).append(job_id)
        self._order = None

    def peek(self) -> str | None:
        """The job pop() would return, left in place."""
        return next(iter(self._lanes.values()))[0] if self._lanes else None

    def pop(self) -> str | None:
        if not self._lanes:
            return None
        student, lane = next(iter(self._lanes.items()))
        job_id = lane.popleft()
        del self._lanes[student]
        if lane:
            self._lanes[student] = lane  # to the back of the line
        self._order = None
        return job_id

    def remove(self, student: str, job_id: str) -> bool:
        lane = self._lanes.get(student)
        if lane is None or job_id not in lane:
            return False
        lane.remove(job_id)
        if not lane:
            del self._lanes[student]
        self._order = None
        return True

    def order(self) -> list[str]:
        """Every waiting job in the order pop() would return them."""
        if self._order is None:
            lanes = [list(lane) for lane in self._lanes.values()]
            self._order = [lane[i] for i in range(max(map(len, lanes), default=0)) for lane in lanes if i < len(lane)]
        return self._order

    def position(self, job_id: str) -> int | None:
        try:
            return self.order().index(job_id)
        except ValueError:
            return None


@dataclass(eq=False)
class ProxyJob:
    """A job as the proxy follows it; its row in the classroom db is the lasting record."""

    id: str
    student: str
    endpoint: str
    body: dict[str, Any] | None = None  # what goes upstream; dropped once sent
    headers: dict[str, str] = field(default_factory=dict)
    state: str = WAITING
    upstream_id: str | None = None
    urls: dict[str, str] | None = None  # the upstream's status_url, response_url, cancel_url
    upstream_status: str | None = None
    upstream_position: int | None = None
    logs: list[Any] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None
    error: str | None = None
    error_type: str | None = None
    cancel_requested: bool = False
    owner: str | None = None
    """The instance that sends and watches it; any other answers from its row (instances.py)."""
    followers: int = 0
    """Status streams open on it here: another instance's job is re-read from its row while one is."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    arguments: dict[str, Any] = field(default_factory=dict)
    """What was asked (inline images elided): the recorded cost follows the registry's rule for it."""
    input_sizes: tuple[tuple[int, int] | None, ...] | None = None
    """The sizes of the images sent, as priced at admission (None after a restart: not known)."""

    @property
    def app_path(self) -> str:
        """fal's by-id URLs use owner/app only: fal-ai/flux-pro/kontext/max -> fal-ai/flux-pro."""
        return "/".join(self.endpoint.split("/")[:2])

    @property
    def done(self) -> bool:
        return self.state == DONE

    def notify(self) -> None:
        """Wake every watcher of this job (they hold the old event; later ones get a fresh one)."""
        old, self.changed = self.changed, asyncio.Event()
        old.set()

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ProxyJob:
        return cls(
            id=row["id"],
            student=row["student"],
            endpoint=row["endpoint"],
            body=row["body"],
            arguments=row.get("arguments") or {},
            headers=row["headers"] or {},
            state=row["state"],
            upstream_id=row["upstream_id"],
            urls=row["upstream_urls"],
            metrics=row["metrics"] or {},
            outcome=row["outcome"],
            error=row["error"],
            error_type=row["error_type"],
            owner=row.get("owner"),
            upstream_status=row.get("upstream_status"),
        )

    def refresh(self, row: dict[str, Any]) -> None:
        """Take on what the row says (a job another instance watches); wake watchers if anything moved."""
        before = (self.state, self.upstream_status, self.outcome)
        self.state, self.upstream_id, self.urls = row["state"], row["upstream_id"], row["upstream_urls"]
        self.upstream_status, self.outcome = row.get("upstream_status"), row["outcome"]
        self.metrics, self.error, self.error_type = row["metrics"] or {}, row["error"], row["error_type"]
        self.owner = row.get("owner")
        if (self.state, self.upstream_status, self.outcome) != before:
            self.notify()
