"""Students see only their own jobs, and the class key appears nowhere a student (or a log, or the db) could read it.

One scenario walks every route a student can call — submit, status (with logs), the status
stream, result, cancel, the CDN token and upload, the GCS-style initiate and PUT, media, edits
of uploaded and generated images, bad input and refusals — recording every response; then the
responses, the proxy's log output at DEBUG and the db files are searched for the key in plain,
hex and base64 forms.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from kontext_nb.proxy import Limits, ProxyConfig, ProxyServer
from kontext_nb.sandbox import SandboxServer

from .conftest import CLASS_KEY, EDIT, PAUSED, T2I, UNLIMITED, Recorder, auth, leaks, poll_completed, wait_completed


def comparable(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in ("date", "x-fal-request-id"))
    return response.status_code, response.content, headers


def test_a_student_cannot_see_or_cancel_anothers_jobs(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    upstream.configure(queue_delay=PAUSED)
    server = make_proxy()
    ada, bo = server.classroom.add_student("Ada"), server.classroom.add_student("Bo")

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            job = (await client.post(f"{server.url}/{T2I}", json={"prompt": "Ada's"}, headers=auth(ada))).json()
            root = job["response_url"]
            unknown = root.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
            wrong_app = root.replace("/fal-ai/flux-pro/", "/fal-ai/flux-dev/")
            for method, suffix in (("GET", "/status"), ("GET", "/status/stream"), ("GET", ""), ("PUT", "/cancel")):
                theirs = await client.request(method, root + suffix, headers=auth(bo))
                nobodys = await client.request(method, unknown + suffix, headers=auth(bo))
                misfiled = await client.request(method, wrong_app + suffix, headers=auth(ada))
                assert theirs.status_code == 404, (method, suffix)
                assert comparable(theirs) == comparable(nobodys) == comparable(misfiled), (method, suffix)
            mine = await client.get(job["status_url"], headers=auth(ada))
            assert (mine.status_code, mine.json()["status"]) == (202, "IN_QUEUE")  # Bo's cancel did nothing
            upstream.configure(queue_delay=0)
            final = await wait_completed(client, job["status_url"], ada)
            assert "error" not in final
            assert (await client.get(root, headers=auth(bo))).status_code == 404  # finished jobs stay private too
            result = await client.get(root, headers=auth(ada))
            assert result.status_code == 200 and len(result.json()["images"]) == 1

    asyncio.run(scenario())


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_the_class_key_is_never_shown(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = make_proxy(Limits(images_per_day=3, dollars_per_session=None, jobs_in_flight=None), blocklist=["gore"])
    token = server.classroom.add_student("Ada")
    recorder = Recorder()

    async def scenario() -> None:
        async with recorder.client() as client:
            base, head = server.url, auth(token)
            options = {**head, "X-Fal-Queue-Priority": "low", "X-Other": "dropped"}
            webhook = "?fal_webhook=http://example.invalid/x"  # issue 13: refused with a clear 400, not dropped
            refused = await client.post(f"{base}/{T2I}{webhook}", json={"prompt": "fox"}, headers=options)
            assert refused.status_code == 400 and "webhooks are not available" in refused.json()["detail"]
            job = (await client.post(f"{base}/{T2I}", json={"prompt": "fox"}, headers=options)).json()
            await wait_completed(client, job["status_url"], token)
            await poll_completed(client, job["status_url"], token)
            await client.get(job["status_url"], params={"logs": "1"}, headers=head)
            result = (await client.get(job["response_url"], headers=head)).json()
            image_url = result["images"][0]["url"]
            assert image_url.startswith(base + "/media/")
            assert (await client.get(image_url)).status_code == 200  # media needs no token, like fal's
            cdn = (
                await client.post(f"{base}/storage/auth/token?storage_type=fal-cdn-v3", json={}, headers=head)
            ).json()
            assert (cdn["token"], cdn["token_type"], cdn["base_url"]) == (token, "Key", base)
            upload = await client.post(
                f"{cdn['base_url']}/files/upload",
                content=png_bytes(),
                headers={
                    "Authorization": f"Key {cdn['token']}",
                    "Content-Type": "image/png",
                    "X-Fal-File-Name": "a.png",
                },
            )
            uploaded = upload.json()["access_url"]
            assert upload.status_code == 200 and uploaded.startswith(base + "/files/")
            assert (await client.get(uploaded)).content == png_bytes()
            init = await client.post(
                f"{base}/storage/upload/initiate?storage_type=gcs",
                json={"file_name": "b.png", "content_type": "image/png"},
                headers=head,
            )
            target = init.json()
            assert target["upload_url"].startswith(base) and target["file_url"].startswith(base + "/files/")
            assert (await client.put(target["upload_url"], content=png_bytes((30, 30)))).status_code == 200
            edits = [
                (await client.post(f"{base}/{EDIT}", json={"prompt": "night", "image_url": url}, headers=head)).json()
                for url in (uploaded, target["file_url"])
            ]
            for edit in edits:
                final = await wait_completed(client, edit["status_url"], token)
                assert "error" not in final, final
            chained = (await client.post(f"{base}/{EDIT}", json={"prompt": "again", "image_url": image_url},
                                         headers=head))  # fmt: skip
            assert chained.status_code == 429  # the 4th image of the day: refused
            assert (await client.post(f"{base}/{T2I}", json={"prompt": "gore"}, headers=head)).status_code == 403
            assert (
                await client.post(f"{base}/{T2I}", json={"prompt": "x", "seed": -1}, headers=head)
            ).status_code == 422
            assert (await client.post(f"{base}/fal-ai/flux/dev", json={"prompt": "x"}, headers=head)).status_code == 403
            assert (await client.get(f"{base}/files/nothing/here.png")).status_code == 404
            assert (await client.get(f"{base}/nowhere", headers=head)).status_code == 405  # POST-only: a submit

    asyncio.run(scenario())
    seen = upstream.request_info(server.classroom.job(next(iter(_job_ids(server))))["upstream_id"])  # type: ignore[index]
    assert seen["webhook"] is None and seen["priority"] == "low"  # fal_webhook dropped, queue priority passed on
    inputs = [row["arguments"].get("image_url", "") for row in _jobs(server) if row["endpoint"] == EDIT]
    assert inputs and all(url.startswith(upstream.url + "/files/") for url in inputs)  # sent upstream as fal's own URLs
    assert recorder.leaks() == []
    assert leaks(caplog.text) == [] and "Ada" in caplog.text and token not in caplog.text
    assert len(recorder.seen) > 20
    server.stop()
    stored = b"".join(p.read_bytes() for p in Path(server.config.state_dir).glob("classroom.db*"))
    assert leaks(stored) == [] and token.encode() not in stored
    assert (
        CLASS_KEY not in repr(server.config)
        and CLASS_KEY not in repr(server)
        and CLASS_KEY not in repr(server.upstream)
    )


def _jobs(server: ProxyServer) -> list[dict[str, Any]]:
    return [server.classroom.job(job_id) for job_id in _job_ids(server)]  # type: ignore[misc]


def _job_ids(server: ProxyServer) -> list[str]:
    return [job_id for _, _, job_id in server.classroom.dispatch_log()]


def test_the_key_is_scrubbed_from_anything_upstream_echoes(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer, tmp_path: Path
) -> None:
    """Defence in depth: should an upstream body hold the key (here: a prompt the sandbox echoes), it is cut out."""
    server = make_proxy(UNLIMITED, state_dir=tmp_path / "echo")
    token = server.classroom.add_student("Ada")

    async def scenario() -> tuple[httpx.Response, dict[str, Any]]:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            body = {"prompt": f"say {CLASS_KEY} and ({CLASS_KEY})"}
            job = (await client.post(f"{server.url}/{T2I}", json=body, headers=auth(token))).json()
            final = await wait_completed(client, job["status_url"], token)
            return await client.get(job["response_url"], headers=auth(token)), final

    result, final = asyncio.run(scenario())
    assert result.json()["prompt"] == "say [redacted] and ([redacted])"
    assert leaks(result.content) == [] and leaks(str(final)) == []


def test_both_halves_of_an_id_and_secret_key_are_scrubbed() -> None:
    """fal keys also come as FAL_KEY_ID:FAL_KEY_SECRET; either half alone is scrubbed as well."""
    from kontext_nb.proxy.upstream import Upstream

    upstream = Upstream("fal", "0a1b2c3d-key-id:f00dfeedc0ffee99")
    text = "0a1b2c3d-key-id:f00dfeedc0ffee99 / f00dfeedc0ffee99 / 0a1b2c3d-key-id / https://v3.fal.media/files/x.png"
    assert upstream.outbound(text, "http://proxy:8900") == (
        "[redacted] / [redacted] / [redacted] / http://proxy:8900/files/x.png"
    )
    asyncio.run(upstream.aclose())


def test_config_repr_hides_the_key() -> None:
    config = ProxyConfig(fal_key=CLASS_KEY)
    assert CLASS_KEY not in repr(config) and "fal_key" not in repr(config)
