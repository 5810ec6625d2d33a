"""Issue 21, point 5: ``sync_mode: true`` images are stored as files like any other.

Before, they were recorded with the URL "data:": no picture on the instructor page, a duel pair with one failed
in kx.duel (UnsupportedProtocol), and the whole inline result sat in classroom.db.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from kontext_nb.proxy import ProxyServer

from .conftest import T2I, auth, wait_completed


def test_sync_mode_images_become_files_served_by_the_proxy(make_proxy: Callable[..., ProxyServer]) -> None:
    server = make_proxy()
    token = server.classroom.add_student("Ada")

    async def run() -> dict[str, object]:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            job = await client.post(
                f"{server.url}/{T2I}", json={"prompt": "a fox", "sync_mode": True, "num_images": 2}, headers=auth(token)
            )
            await wait_completed(client, job.json()["status_url"], token)
            result = await client.get(job.json()["response_url"], headers=auth(token))
            return dict(result.json())

    result = asyncio.run(run())
    images = result["images"]
    assert isinstance(images, list) and len(images) == 2
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        for image in images:
            assert image["url"].startswith(server.url + "/"), image["url"][:40]
            served = client.get(image["url"])
            assert served.status_code == 200 and served.headers["content-type"].startswith("image/")
    usage = server.classroom.usage(server.proxy.session)
    urls = usage["recent_images"][0]["urls"]
    assert len(urls) == 2 and not any(u.startswith("data:") for u in urls)
    row = server.classroom.job(usage["recent_images"][0]["job"])
    assert row is not None and "data:image" not in row["result"] and len(row["result"]) < 4096
