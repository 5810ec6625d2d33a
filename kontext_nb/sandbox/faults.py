"""Fault injection for the sandbox: the failures a fal client has to survive, on demand.

Rules pick which requests fail and how: the next N requests of a route (``count``), a
random share of them (``rate``, from a seeded RNG so runs repeat), or a scripted
``sequence`` such as ``["429", "ok", "502"]``. They are checked in order before a request
is processed; the first rule that fires decides. The HTTP side of each kind lives in app.py.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = ("429", "500", "502", "503", "drop", "vanish", "slow", "403", "lost-reply", "slow-lost-reply", "huge")
# "403": a refusal such as an expired signed link (a media download's first try, say).
# "lost-reply": the request is processed (a submit is queued, and would be billed) and then the
# connection drops before the answer: the client cannot know whether it was accepted.
# "slow-lost-reply": the same after waiting slow_seconds first (a submit that hangs, then loses its answer).
# "huge" (media): the image served is a valid 13000x13000 RGB PNG of about half a megabyte instead, as a
# broken or hostile server could send: it decodes to some 680 MB (render.oversized_png).
ROUTES = ("submit", "status", "stream", "result", "cancel", "media", "upload", "platform", "any")
# "platform": fal's Platform APIs (pricing, usage, request history: platform_routes.py)
OK = "ok"


@dataclass
class FaultRule:
    """One rule. Exactly one of count, rate or sequence, or none: then it fires on every match."""

    route: str
    kind: str | None = None
    count: int | None = None
    rate: float | None = None
    sequence: list[str] = field(default_factory=list)
    fired: int = 0

    def matches(self, route: str) -> bool:
        return self.route in ("any", route)

    @property
    def exhausted(self) -> bool:
        if self.count is not None:
            return self.fired >= self.count
        return bool(self.sequence) and self.fired >= len(self.sequence)

    def draw(self, rng: random.Random) -> str | None:
        """The kind to inject for one matching request, 'ok', or None when the rule is spent."""
        if self.exhausted:
            return None
        if self.sequence:
            kind = self.sequence[self.fired]
            self.fired += 1
            return kind
        if self.rate is not None:
            return self.kind if rng.random() < self.rate else OK
        self.fired += 1
        return self.kind

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"route": self.route}
        if self.sequence:
            out["sequence"] = list(self.sequence)
        else:
            out["kind"] = self.kind
        if self.count is not None:
            out["count"] = self.count
        if self.rate is not None:
            out["rate"] = self.rate
        out["fired"] = self.fired
        return out


def parse_rule(spec: Mapping[str, Any]) -> FaultRule:
    """Build a rule from its JSON shape, or raise ValueError saying what is wrong."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"a fault rule must be an object, not {type(spec).__name__}")
    unknown = set(spec) - {"route", "kind", "count", "rate", "sequence"}
    if unknown:
        raise ValueError(f"unknown fault rule keys {sorted(unknown)}: use route, kind, count, rate or sequence")
    route = spec.get("route", "any")
    if route not in ROUTES:
        raise ValueError(f"fault route {route!r} is not one of {', '.join(ROUTES)}")
    kind, count, rate, sequence = spec.get("kind"), spec.get("count"), spec.get("rate"), spec.get("sequence")
    if sequence is not None:
        if kind is not None or count is not None or rate is not None:
            raise ValueError("a fault rule with a sequence takes no kind, count or rate")
        if not isinstance(sequence, list) or not sequence:
            raise ValueError("fault sequence must be a non-empty list of kinds or 'ok'")
        steps = [str(s) for s in sequence]
        for step in steps:
            _check_kind(step, allow_ok=True)
        return FaultRule(route=route, sequence=steps)
    _check_kind(str(kind) if kind is not None else None)
    if count is not None and rate is not None:
        raise ValueError("a fault rule takes count or rate, not both")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ValueError(f"fault count must be a non-negative integer, not {count!r}")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1):
        raise ValueError(f"fault rate must be a number from 0 to 1, not {rate!r}")
    return FaultRule(route=route, kind=str(kind), count=count, rate=None if rate is None else float(rate))


def _check_kind(kind: str | None, allow_ok: bool = False) -> None:
    allowed = (*KINDS, OK) if allow_ok else KINDS
    if kind not in allowed:
        raise ValueError(f"fault kind {kind!r} is not one of {', '.join(allowed)}")


def parse_cli(text: str) -> dict[str, Any]:
    """'status:429:count=2', 'submit:503:rate=0.1', 'status:sequence=429,ok,502' -> the JSON rule shape."""
    parts = text.split(":")
    rule: dict[str, Any] = {"route": parts[0]}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq:
            rule["kind"] = key
        elif key == "count":
            rule["count"] = int(value)
        elif key == "rate":
            rule["rate"] = float(value)
        elif key in ("sequence", "seq"):
            rule["sequence"] = value.split(",")
        else:
            raise ValueError(f"unknown fault option {key!r} in {text!r}: use count=N, rate=P or sequence=a,b,c")
    parse_rule(rule)
    return rule


class FaultPlan:
    """The active rules and their RNG. Used from the server's event loop only."""

    def __init__(self, rules: Iterable[Mapping[str, Any]] = (), seed: int | None = None) -> None:
        self.rules: list[FaultRule] = []
        self.rng = random.Random(seed)
        self.replace(rules, seed)

    def replace(self, rules: Iterable[Mapping[str, Any]], seed: int | None = None) -> None:
        """Swap in new rules (all parsed first, so a bad rule changes nothing) and reseed."""
        parsed = [parse_rule(r) for r in rules]
        self.rules = parsed
        self.rng = random.Random(seed)

    def pick(self, route: str) -> str | None:
        """The fault kind for one request of this route, or None to process it normally."""
        for rule in self.rules:
            if not rule.matches(route):
                continue
            kind = rule.draw(self.rng)
            if kind is not None and kind != OK:
                return kind
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.rules]
