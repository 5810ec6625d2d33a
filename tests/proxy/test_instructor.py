"""The instructor page over HTTP: login, usage, revoke with CSRF, escaping, token rotation.

(A Chromium test of the page is someone else's; here the HTML is checked as text.)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest

from kontext_nb.proxy import Limits, ProxyServer
from kontext_nb.proxy.classroom import Classroom
from kontext_nb.sandbox import SandboxServer

from .conftest import T2I, auth, wait_completed

XSS_NAME = '<script>alert("name")</script>'
XSS_PROMPT = "<img src=x onerror=alert(1)> a fox"
LIMITS = Limits(images_per_day=4, dollars_per_session=1.0, jobs_in_flight=None)


def login(client: httpx.Client, url: str, token: str) -> httpx.Response:
    return client.post(f"{url}/instructor/login", data={"token": token}, follow_redirects=False)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture
def server(make_proxy: Callable[..., ProxyServer]) -> ProxyServer:
    return make_proxy(LIMITS, blocklist=["gore"])


def test_login_page_then_session_cookie(server: ProxyServer) -> None:
    assert server.instructor_token is not None and server.instructor_token.startswith("kxi-")
    with httpx.Client(trust_env=False) as browser:
        first = browser.get(f"{server.url}/instructor")
        assert first.status_code == 200 and 'id="login"' in first.text and "data-student" not in first.text
        bad = login(browser, server.url, "kxi-not-the-token")
        assert bad.status_code == 403 and "not the instructor token" in bad.text and not browser.cookies
        good = login(browser, server.url, server.instructor_token)
        assert (good.status_code, good.headers["location"]) == (303, "/instructor")
        cookie = good.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/instructor" in cookie
        page = browser.get(f"{server.url}/instructor")
        assert page.status_code == 200 and 'id="students"' in page.text
        assert '<meta http-equiv="refresh" content="10">' in page.text
        assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no scripts at all
        assert server.instructor_token not in page.text
    with httpx.Client(trust_env=False) as stranger:  # no cookie, no bearer: nothing but the login form
        assert stranger.get(f"{server.url}/instructor/api/usage").status_code == 401
        assert stranger.post(f"{server.url}/instructor/revoke", data={"name": "x", "csrf": "y"}).status_code == 403


@pytest.mark.slow
def test_usage_page_revoke_and_escaping(server: ProxyServer, upstream: SandboxServer) -> None:
    ada, villain = server.classroom.add_student("Ada"), server.classroom.add_student(XSS_NAME)

    async def activity() -> None:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            for token, prompt in ((ada, "a fox"), (villain, XSS_PROMPT)):
                job = (await client.post(f"{server.url}/{T2I}", json={"prompt": prompt}, headers=auth(token))).json()
                await wait_completed(client, job["status_url"], token)
            refused = await client.post(f"{server.url}/{T2I}", json={"prompt": "gore </td>"}, headers=auth(villain))
            assert refused.status_code == 403

    asyncio.run(activity())
    assert server.instructor_token is not None
    with httpx.Client(trust_env=False) as browser:
        login(browser, server.url, server.instructor_token)
        usage = browser.get(f"{server.url}/instructor/api/usage").json()
        assert usage["session"] == server.proxy.session and usage["limits"]["images_per_day"] == 4
        rows = {s["name"]: s for s in usage["students"]}
        assert (rows["Ada"]["images_today"], rows["Ada"]["spent_session"], rows["Ada"]["done"]) == (1, 0.08, 1)
        assert (rows[XSS_NAME]["done"], rows[XSS_NAME]["refused_today"]) == (1, 1)
        assert usage["class"]["images_today"] == 2 and usage["class"]["spent_session"] == 0.16
        assert [i["student"] for i in usage["recent_images"]] == [XSS_NAME, "Ada"]
        assert usage["recent_images"][0]["urls"][0].startswith(server.url + "/media/")
        assert usage["recent_refusals"][0]["kind"] == "blocklist"

        page = browser.get(f"{server.url}/instructor").text
        assert "<script>" not in page and "<img src=x" not in page and "gore </td>" not in page
        assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;" in page
        assert "&lt;img src=x onerror=alert(1)&gt; a fox" in page
        assert '<tr data-student="Ada" data-status="active">' in page
        assert page.count('class="recent-image"') == 2 and 'src="/media/' in page
        assert "jobs already running are left to finish" in page
        assert 'data-kind="blocklist"' in page

        forged = browser.post(f"{server.url}/instructor/revoke", data={"name": "Ada", "csrf": "forged"})
        assert forged.status_code == 403 and not server.classroom.student_for_token(ada).revoked  # type: ignore[union-attr]
        revoked = browser.post(
            f"{server.url}/instructor/revoke", data={"name": "Ada", "csrf": csrf_of(page)}, follow_redirects=False
        )
        assert revoked.status_code == 303
        after = browser.get(f"{server.url}/instructor").text
        assert '<tr data-student="Ada" data-status="revoked">' in after and 'class="restore"' in after
        denied = httpx.post(f"{server.url}/{T2I}", json={"prompt": "x"}, headers=auth(ada))
        assert (denied.status_code, denied.headers["x-kontext-limit"]) == (403, "revoked")
        browser.post(f"{server.url}/instructor/restore", data={"name": "Ada", "csrf": csrf_of(after)})
        assert httpx.post(f"{server.url}/{T2I}", json={"prompt": "x"}, headers=auth(ada)).status_code == 200
        missing = browser.post(
            f"{server.url}/instructor/revoke", data={"name": "<b>nobody</b>", "csrf": csrf_of(after)}
        )
        assert missing.status_code == 404 and "&lt;b&gt;nobody&lt;/b&gt;" in missing.text


def test_a_new_instructor_token_ends_old_logins(server: ProxyServer) -> None:
    old = server.instructor_token
    assert old is not None
    with httpx.Client(trust_env=False) as browser:
        login(browser, server.url, old)
        assert browser.get(f"{server.url}/instructor/api/usage").status_code == 200
        bearer = {"Authorization": f"Bearer {old}"}
        assert httpx.get(f"{server.url}/instructor/api/usage", headers=bearer).status_code == 200
        room = Classroom(server.config.state_dir)  # as `kontext-nb proxy instructor-token` does, from elsewhere
        new = room.new_instructor_token()
        room.close()
        assert 'id="login"' in browser.get(f"{server.url}/instructor").text  # the session ended with its token
        assert httpx.get(f"{server.url}/instructor/api/usage", headers=bearer).status_code == 401
        assert login(browser, server.url, old).status_code == 403
        assert login(browser, server.url, new).status_code == 303
        assert browser.get(f"{server.url}/instructor/api/usage").status_code == 200
