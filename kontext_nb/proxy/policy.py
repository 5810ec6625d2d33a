"""What a class allows in a request besides quotas: which endpoints, how lax moderation, which words.

Pure functions, like limits.py; the server records and answers the refusals they return.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kontext_nb import endpoints, models

from .fold import fold
from .limits import Refusal

MISSING: Any = object()
"""Stands for a safety_tolerance the request did not give."""


@dataclass(frozen=True)
class Allowed:
    """The endpoints a class may call: the registry's models matching the instructor's ids, aliases or patterns."""

    patterns: tuple[str, ...]
    ids: frozenset[str]

    def __contains__(self, endpoint_id: object) -> bool:
        return endpoint_id in self.ids

    def describe(self) -> str:
        return ", ".join(self.patterns)


@functools.lru_cache(maxsize=16)
def allowed_endpoints(patterns: tuple[str, ...] = ()) -> Allowed:
    """What ``--allow`` names: endpoint ids, aliases, or fnmatch patterns over the registry's endpoint ids
    (``fal-ai/flux-2-*/edit``). None given: the FLUX.1 Kontext family. A pattern that matches no model the registry
    knows raises ValueError (one line, for the proxy's start)."""
    if not patterns:
        return Allowed(tuple(endpoints.ENDPOINTS), frozenset(endpoints.ENDPOINTS))
    reg, ids = models.registry(), set()
    for pattern in patterns:
        named = reg.find(pattern) if not any(c in pattern for c in "*?[") else None
        found = {named.endpoint_id} if named is not None else set(fnmatch.filter(reg.endpoint_ids(), pattern))
        if not found:
            raise ValueError(
                f"--allow {pattern!r} matches no model kontext_nb knows: give an endpoint id, an alias or a pattern "
                "such as 'fal-ai/flux-2-*/edit' (kx.models() lists them)"
            )
        ids |= found
    return Allowed(tuple(patterns), frozenset(ids))


def endpoint_refusal(endpoint_id: str, allowed: Allowed | None = None) -> Refusal | None:
    """Only the endpoints the class allows may be called through a classroom proxy (default: the Kontext family)."""
    allowed = allowed or allowed_endpoints()
    if endpoint_id in allowed:
        return None
    shown = endpoint_id if len(endpoint_id) <= 80 else endpoint_id[:77] + "..."
    what = "the FLUX.1 Kontext endpoints" if allowed == allowed_endpoints() else "the endpoints matching"
    return Refusal("endpoint", 403, f"this class allows only {what} ({allowed.describe()}), not {shown!r}")


def stream_of_known(endpoint_id: str, allowed: Allowed | None = None) -> bool:
    """``<endpoint>/stream`` of an allowed endpoint: what fal.stream calls, and these endpoints do not stream."""
    return endpoint_id.endswith("/stream") and endpoint_id.removesuffix("/stream") in (allowed or allowed_endpoints())


def model_refusal(model: models.Model) -> Refusal | None:
    """A model whose cost the proxy cannot bound (fal publishes no price) is refused: no reservation, no send."""
    reason = models.can_price(model)
    if reason is None:
        return None
    return Refusal("endpoint", 403, f"{model.endpoint_id}: {reason}; this class cannot reserve its cost")


def class_safety(model: models.Model, level: str) -> str:
    """The class level as this model takes it: the most permissive of its own values not above the level."""
    values = [str(v) for v in model.input("safety_tolerance").enum if str(v).isdigit()]
    fits = [v for v in values if int(v) <= int(level)]
    return max(fits, key=int) if fits else level


def has_safety_tolerance(endpoint: endpoints.Endpoint | models.Model) -> bool:
    """[max]/[pro] take safety_tolerance; [dev] and LoRA have enable_safety_checker instead."""
    return any(f.name == "safety_tolerance" for f in endpoint.inputs)


def safety_checker_refusal(arguments: dict[str, Any]) -> Refusal | None:
    """[dev] and LoRA: a class keeps fal's safety checker on (students cannot send enable_safety_checker=False)."""
    if arguments.get("enable_safety_checker") is False:
        return Refusal(
            "safety-checker",
            403,
            "enable_safety_checker=False is not allowed in this class: the safety checker stays on",
        )
    return None


def enforce_safety(given: Any, level: str) -> tuple[str, str | None] | Refusal:
    """The safety_tolerance to send and a note when it was changed, or a refusal.

    ``given`` is the student's value as validated (a string "1".."6"), or MISSING / None when
    absent. fal's scale runs from 1 (strictest) to 6 (most permissive); the class level is the
    most permissive a student may use. kontext_nb sends the default "2" with every request, so
    the default is lowered quietly; anything else above the level was chosen, and is refused.
    """
    if given is MISSING or given is None:
        return level, f"not given: set to the class level {level}"
    value = str(given)
    if int(value) <= int(level):
        return value, None
    default = endpoints.ENDPOINTS["fal-ai/flux-pro/kontext"].field("safety_tolerance").default
    if value == default:
        return level, f"lowered from {value} (the default) to the class level {level}"
    allowed = "1" if level == "1" else f"1 to {level}"
    return Refusal(
        "safety-tolerance",
        403,
        f"safety_tolerance={value!r} is more permissive than this class allows: choose {allowed} (1 is the strictest)",
    )


def read_blocklist(path: str | Path) -> list[str]:
    """One word or phrase per line; blank lines and lines starting with # are skipped."""
    lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


class Blocklist:
    """Words and phrases a class blocks in prompts: whole words, any case, any spacing between words."""

    def __init__(self, phrases: Iterable[str] = ()) -> None:
        self.phrases = tuple(dict.fromkeys(p for p in (" ".join(fold(x).split()) for x in phrases) if p))
        if self.phrases:
            parts = sorted((r"\s+".join(map(re.escape, p.split())) for p in self.phrases), key=len, reverse=True)
            self._pattern: re.Pattern[str] | None = re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)")
        else:
            self._pattern = None

    @classmethod
    def from_file(cls, path: str | Path) -> Blocklist:
        return cls(read_blocklist(path))

    def __len__(self) -> int:
        return len(self.phrases)

    def matches(self, text: str) -> bool:
        return self._pattern is not None and self._pattern.search(fold(text)) is not None

    def refusal(self, prompt: str) -> Refusal | None:
        if not self.matches(prompt):
            return None  # the message never names the word: the list stays the instructor's
        return Refusal("blocklist", 403, "the prompt contains a word this class blocks; rephrase it")
