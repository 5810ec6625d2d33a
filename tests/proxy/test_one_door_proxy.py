"""One door in the classroom proxy too (issue 20): every route is listed by introspection, and every way a student's
request reaches fal (the queue, fal.run's synchronous call, fal's proxyUrl protocol) goes through the proxy's door:
the dispatcher's ``add``, which takes only a job its quota reservation already holds (``resume``: the same jobs after
a restart; ``take``: the jobs of another instance that stopped or was lost, reserved when it admitted them). The
upstream's submit, the only code that sends a job to fal, must never run outside it.

The door is followed across the proxy's asyncio tasks with a context variable: a task started from inside the door
inherits it, a route handler that called the upstream itself would not.
"""

from __future__ import annotations

import asyncio
import contextvars
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from kontext_nb.proxy import ProxyServer
from kontext_nb.proxy.dispatch import Dispatcher
from kontext_nb.proxy.upstream import Upstream

from .conftest import T2I, auth, enroll, poll_completed

DOORS: tuple[tuple[type, str], ...] = ((Dispatcher, "add"), (Dispatcher, "resume"), (Dispatcher, "take"))
SENDER: tuple[type, str] = (Upstream, "submit")
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("inside_the_proxy_door", default=False)

ROUTES: dict[str, str] = {
    "/{endpoint:path}": "SENDS: fal's queue submit (and fal.run's call, and proxyUrl requests naming either)",
    "/{owner}/{app}/requests/{request_id}": "the result of a job already sent",
    "/{owner}/{app}/requests/{request_id}/status": "status of a job already sent",
    "/{owner}/{app}/requests/{request_id}/status/stream": "status of a job already sent",
    "/{owner}/{app}/requests/{request_id}/cancel": "cancels; never sends",
    "/storage/auth/token": "uploads cost nothing on fal",
    "/storage/upload/initiate": "uploads cost nothing on fal",
    "/storage/uploads/{upload_id}": "uploads cost nothing on fal",
    "/files/upload": "uploads cost nothing on fal",
    "/files/{path:path}": "serves stored files",
    "/media/{name}": "serves stored files",
    "/instructor": "the instructor's page",
    "/instructor/login": "the instructor's page",
    "/instructor/logout": "the instructor's page",
    "/instructor/revoke": "the instructor's page",
    "/instructor/restore": "the instructor's page",
    "/instructor/api/usage": "the instructor's page",
    "/instructor/duel/start": "a class duel over images already made",
    "/instructor/duel/stop": "a class duel over images already made",
    "/kontext/duel/pair": "a class duel over images already made",
    "/kontext/proxy": "the student's view of the proxy: allowed models and settings, quota left",
    "/kontext/duel/vote": "a class duel over images already made",
}


class ProxyDoor:
    def __init__(self) -> None:
        self.sent = 0
        self.outside: list[str] = []


@pytest.fixture
def proxy_door(monkeypatch: pytest.MonkeyPatch) -> ProxyDoor:
    counts = ProxyDoor()
    for cls, name in DOORS:
        real = getattr(cls, name)

        def door(self: Any, *args: Any, real: Callable[..., Any] = real, **kwargs: Any) -> Any:
            token = _inside.set(True)
            try:
                return real(self, *args, **kwargs)
            finally:
                _inside.reset(token)

        monkeypatch.setattr(cls, name, door)
    sender_cls, sender_name = SENDER
    real_sender = getattr(sender_cls, sender_name)

    async def sender(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts.sent += 1
        if not _inside.get():
            counts.outside.append("".join(traceback.format_stack()[-10:-1]))
        return await real_sender(self, *args, **kwargs)

    monkeypatch.setattr(sender_cls, sender_name, sender)
    return counts


def test_every_proxy_route_is_listed(make_proxy: Callable[..., ProxyServer]) -> None:
    server = make_proxy()
    paths = {r.path for r in server.app.routes if isinstance(r, Route)}
    assert paths == set(ROUTES), f"new or gone proxy routes: list each in ROUTES: {paths ^ set(ROUTES)}"


def test_every_way_a_student_submits_goes_through_the_door(
    proxy_door: ProxyDoor, make_proxy: Callable[..., ProxyServer], upstream: Any
) -> None:
    server = make_proxy()
    (token,) = enroll(server, 1).values()
    body = {"prompt": "a fox through the proxy", "seed": 1}
    with httpx.Client(base_url=server.url, headers=auth(token), timeout=30, trust_env=False) as http:
        queued = http.post(f"/{T2I}", json=body)
        assert queued.status_code == 200, queued.text
        proxied = http.post(
            "/api/fal/proxy", json={**body, "seed": 2}, headers={"x-fal-target-url": f"https://queue.fal.run/{T2I}"}
        )
        assert proxied.status_code == 200, proxied.text
        synchronous = http.post(
            "/api/fal/proxy", json={**body, "seed": 3}, headers={"x-fal-target-url": f"https://fal.run/{T2I}"}
        )
        assert synchronous.status_code == 200, synchronous.text

    async def settle() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as client:
            for answer in (queued, proxied):
                await poll_completed(client, answer.json()["status_url"], token)

    asyncio.run(settle())
    assert not proxy_door.outside, f"the upstream submit was reached outside the door:\n{proxy_door.outside[0]}"
    assert upstream.stats()["submits"] == proxy_door.sent == 3
