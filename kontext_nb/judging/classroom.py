"""A student's side of a class duel: pairs from the classroom proxy, votes recorded there (one per pair).

``kx.duel()`` with no references, in a session whose base URL is a classroom proxy running a class duel, uses
this instead of the local journal (see ``kontext_nb.proxy.duel`` for the server side).
"""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import FalError, ValidationError
from .duel import Contender, Pair, check_choice

PAIR_PATH = "/kontext/duel/pair"
VOTE_PATH = "/kontext/duel/vote"
PROXY_HEADER = "x-kontext-proxy"


class ClassDuel:
    """Pairs and votes through the classroom proxy at ``base_url`` with the student's token."""

    def __init__(self, base_url: str, token: str, *, client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Key {token}"}
        self.client = client or httpx.Client(timeout=30.0, trust_env=False)
        self.duel_id: int | None = None
        self.done = False

    def __repr__(self) -> str:  # never the token
        return f"<ClassDuel {self.base_url}>"

    @classmethod
    def running(cls, base_url: str, token: str) -> ClassDuel | None:
        """A ClassDuel when ``base_url`` is a classroom proxy with a duel running; None otherwise."""
        duel = cls(base_url, token)
        try:
            response = duel.client.get(duel.base_url + PAIR_PATH, headers=duel._headers)
        except httpx.HTTPError:
            return None
        if response.headers.get(PROXY_HEADER) != "1" or response.status_code != 200:
            return None
        return duel

    def _answer(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            if isinstance(detail, list) and detail and isinstance(detail[0], dict):
                detail = detail[0].get("msg")
            raise FalError(
                f"the classroom proxy refused (HTTP {response.status_code}): {detail or response.text[:200]}",
                status_code=response.status_code,
            )
        return body if isinstance(body, dict) else {}

    def _get(self, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.get(url, **kwargs)
        except httpx.HTTPError as exc:
            raise FalError(f"cannot reach the classroom proxy at {self.base_url}: {type(exc).__name__}") from None

    def next_pair(self) -> Pair | None:
        body = self._answer(self._get(self.base_url + PAIR_PATH, headers=self._headers))
        self.duel_id = body.get("duel")
        if body.get("done"):
            self.done = True
            return None
        sides = []
        for side in ("left", "right"):
            item = body[side]
            url = item.get("url") or ""
            if url.startswith("/"):
                url = self.base_url + url
            image = self._get(url)
            if image.status_code != 200:
                raise FalError(f"the classroom proxy could not give a duel image (HTTP {image.status_code})")
            sides.append(Contender(str(item["key"]), image.content))
        return Pair(sides[0], sides[1], int(body.get("number") or 1))

    def vote(self, pair: Pair, choice: str) -> tuple[dict[str, Any], dict[str, Any]]:
        choice = check_choice(choice)
        if self.duel_id is None:
            raise ValidationError("no pair was shown yet: nothing to vote on")
        body = {"duel": self.duel_id, "left": pair.left.key, "right": pair.right.key, "choice": choice}
        try:
            response = self.client.post(self.base_url + VOTE_PATH, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise FalError(f"cannot reach the classroom proxy at {self.base_url}: {type(exc).__name__}") from None
        answer = self._answer(response)
        return dict(answer.get("left") or {}), dict(answer.get("right") or {})
