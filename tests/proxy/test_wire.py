"""Issue 21, point 10: wire details — fal's request id on every answer, fal.run through a re-routing client,
fal.stream on an endpoint that does not stream, and new-tokens CSVs a shell can cut."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx

from kontext_nb.fal.engine import _RoutedAsyncClient
from kontext_nb.fal.transport import FalTransport
from kontext_nb.proxy import Limits, ProxyServer
from kontext_nb.proxy.classroom import Classroom

from .conftest import T2I, auth


def test_every_answer_the_proxy_makes_carries_a_request_id(make_proxy: Callable[..., ProxyServer]) -> None:
    server = make_proxy(limits=Limits(images_per_day=0, dollars_per_session=None))
    token = server.classroom.add_student("Ada")
    with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as client:
        answers = {
            401: client.post(f"/{T2I}", json={"prompt": "x"}, headers=auth("kxs-nobody-at-all")),
            403: client.post("/fal-ai/other/model", json={"prompt": "x"}, headers=auth(token)),
            404: client.get("/fal-ai/flux-pro/requests/nope/status", headers=auth(token)),
            422: client.post(f"/{T2I}", json={"prompt": 3}, headers=auth(token)),
            400: client.post(f"/{T2I}?fal_webhook=https://x.example", json={"prompt": "x"}, headers=auth(token)),
            429: client.post(f"/{T2I}", json={"prompt": "x"}, headers=auth(token)),
        }
    for status, response in answers.items():
        assert response.status_code == status, (status, response.text)
        assert len(response.headers.get("x-fal-request-id", "")) >= 32, status
    assert answers[429].headers["x-fal-retryable"] == "true"


def test_fal_run_through_a_rerouting_client_resolves_with_the_output(make_proxy: Callable[..., ProxyServer]) -> None:
    """Before, it resolved with the IN_QUEUE body of a job that went on running, and was charged."""
    server = make_proxy()
    token = server.classroom.add_student("Ada")

    async def scenario() -> dict[str, object]:
        client = _RoutedAsyncClient(token, FalTransport(server.url))
        try:
            return dict(await client.run(T2I, {"prompt": "a harbour", "seed": 8}))
        finally:
            await (await client._client).aclose()

    result = asyncio.run(scenario())
    assert "status" not in result and result["seed"] == 8 and result["images"]


def test_fal_stream_on_an_endpoint_that_does_not_stream_is_a_404_not_a_refusal(
    make_proxy: Callable[..., ProxyServer],
) -> None:
    server = make_proxy()
    token = server.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        answer = client.post(f"{server.url}/{T2I}/stream", json={"prompt": "x"}, headers=auth(token))
    assert answer.status_code == 404 and "no streaming output" in answer.json()["detail"]
    with sqlite3.connect(server.classroom.path) as db:
        assert db.execute("SELECT COUNT(*) FROM refusals").fetchone()[0] == 0


def test_new_tokens_csv_has_plain_line_endings(tmp_path: Path) -> None:
    roster = tmp_path / "students.csv"
    roster.write_text("name\nAda\nGrace\n")
    room = Classroom(tmp_path / "state")
    try:
        tokens = room.import_roster(roster)
        assert room.last_tokens_file is not None
        data = room.last_tokens_file.read_bytes()
    finally:
        room.close()
    assert b"\r" not in data
    assert [line.split(",")[1] for line in data.decode().splitlines()[1:]] == list(tokens.values())
