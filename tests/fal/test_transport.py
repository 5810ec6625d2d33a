"""The transport's routing and retry decisions, over a fake network (httpx.MockTransport) beneath it.

The end-to-end behaviour against a real server is in test_faults.py and tests/proxy/; these pin the rules:
which hosts go to the base URL, and which answers are worth another try.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from kontext_nb.config import RetryPolicy
from kontext_nb.errors import FalError
from kontext_nb.fal.protocol import http_error
from kontext_nb.fal.transport import FalTransport, RetriesExhausted

QUICK = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


Answer = tuple[int, dict[str, str], dict[str, str]]  # status, headers, JSON body


def _send(
    answers: list[Answer], url: str = "https://queue.fal.run/fal-ai/flux-pro/kontext", seen: list | None = None
) -> tuple:
    """POST through a FalTransport whose network answers these in turn (the last one from then on)."""
    seen = [] if seen is None else seen

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, headers, body = answers[min(len(seen), len(answers)) - 1]
        # a stream, as from a real connection (the transport reads raw bytes to buffer them)
        raw = httpx.ByteStream(json.dumps(body).encode())
        return httpx.Response(status, headers={**headers, "content-type": "application/json"}, stream=raw)

    transport = FalTransport("http://127.0.0.1:8900", QUICK, inner=httpx.MockTransport(handler))

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.post(url, json={"prompt": "x"})
            await response.aread()
            return response

    return asyncio.run(go()), seen


def test_fal_hosts_go_to_the_base_url_with_their_path() -> None:
    response, seen = _send([(200, {}, {})], "https://rest.fal.ai/storage/auth/token?storage_type=x")
    assert response.status_code == 200
    assert str(seen[0].url) == "http://127.0.0.1:8900/storage/auth/token?storage_type=x"
    assert seen[0].headers["host"] == "127.0.0.1:8900"


def test_a_rate_limit_is_tried_again() -> None:
    response, seen = _send([(429, {"retry-after": "0"}, {}), (200, {}, {})])
    assert (response.status_code, len(seen)) == (200, 2)


def test_a_classroom_limit_is_answered_at_once_not_retried() -> None:
    """Raised by the transport itself: fal_client retries any 429 it sees (ten times), so it must not see this one."""
    limit = {"x-kontext-proxy": "1", "x-kontext-limit": "images-per-day"}
    seen: list[httpx.Request] = []
    with pytest.raises(FalError) as refused:
        _send([(429, limit, {"detail": "you have used your 3 images for today"}), (200, {}, {})], seen=seen)
    assert len(seen) == 1
    assert str(refused.value) == (
        "the classroom proxy refused the request (HTTP 429): you have used your 3 images for today"
    )
    assert refused.value.status_code == 429


def test_a_plain_rate_limit_that_never_ends_names_what_was_tried() -> None:
    with pytest.raises(RetriesExhausted, match=r"HTTP 429: slow down on every try \(3 tries of POST"):
        _send([(429, {"retry-after": "0"}, {"detail": "slow down"})])


@pytest.mark.parametrize(
    ("status", "proxy", "expected"),
    [
        (401, True, "the classroom proxy refused the request (HTTP 401): unknown token"),
        (403, True, "the classroom proxy refused the request (HTTP 403): unknown token"),
        (401, False, "fal refused the request (HTTP 401): unknown token. Check FAL_KEY"),
        (429, False, "fal is rate limiting (HTTP 429): unknown token"),
    ],
)
def test_refusals_say_who_refused(status: int, proxy: bool, expected: str) -> None:
    headers = {"x-kontext-proxy": "1"} if proxy else {}
    assert str(http_error(httpx.Response(status, headers=headers, json={"detail": "unknown token"}))) == expected
