"""Asks the server behind KONTEXT_FAL_URL whether it is a kontext_nb classroom proxy, and what it allows.

The proxy answers ``GET /kontext/proxy`` with the student's view (allowed models, the safety_tolerance
ceiling, quota left); any other server does not, and this returns None. Never raises: a status line or
a panel header must not fail because a server is slow or odd.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

PATH = "/kontext/proxy"
PROXY_HEADER = "x-kontext-proxy"


def proxy_view(base_url: str, key: str | None, timeout: float = 3.0) -> dict[str, Any] | None:
    """The classroom proxy's view of the student whose token is ``key`` (or FAL_KEY), or None."""
    token = key or os.environ.get("FAL_KEY", "").strip()
    if not token:
        return None
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            response = client.get(base_url.rstrip("/") + PATH, headers={"Authorization": f"Key {token}"})
        if response.headers.get(PROXY_HEADER) != "1" or response.status_code != 200:
            return None
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) and body.get("proxy") else None


def describe(view: dict[str, Any]) -> list[str]:
    """Lines for ``%kontext status``: where, what is allowed, what is left (never the token)."""
    left, limits = view.get("left") or {}, view.get("limits") or {}

    def part(value: Any, cap: Any, unit: str, money: bool = False) -> str:
        if value is None:
            return f"no limit on {unit}"
        shown = f"${value:.2f}" if money else str(value)
        total = f"${cap:.2f}" if money and cap is not None else str(cap)
        return f"{shown} of {total} {unit}"

    tolerances = view.get("safety_tolerances") or []
    return [
        f"classroom proxy at {view.get('url')} (you are {view.get('student')}, session {view.get('session')})",
        "left: "
        + ", ".join(
            (
                part(left.get("images_today"), limits.get("images_per_day"), "images today"),
                part(left.get("dollars_session"), limits.get("dollars_per_session"), "this session", money=True),
                part(left.get("jobs_in_flight"), limits.get("jobs_in_flight"), "jobs at once"),
            )
        ),
        f"allowed: {len(view.get('endpoints') or [])} FLUX.1 Kontext models; safety_tolerance "
        + (f"1 to {tolerances[-1]}" if len(tolerances) > 1 else "1")
        + "; the safety checker stays on",
    ]
