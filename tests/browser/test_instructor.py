"""The classroom proxy's instructor page in headless Chromium, as an instructor uses it during a class.

A real proxy (kontext_nb.proxy) in front of a real sandbox that accepts only the class key; students are real
HTTP clients with their own tokens. The instructor logs in (a wrong token first), reads usage, spend, recent
images and refusals, revokes a student — whose next request is refused at once — and restores them. A student
named like an XSS payload and a hostile prompt must read as text: no dialog fires, no script runs.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import kontext_nb.sandbox
from kontext_nb.proxy import Limits, ProxyServer, start

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

WAIT = 30_000
CLASS_KEY = "kxclass-" + secrets.token_hex(16)
ENDPOINT = "fal-ai/flux-pro/kontext/text-to-image"
XSS_NAME = "<img src=x onerror=alert('name')>"
XSS_PROMPT = "</script><script>alert(2)</script> a lighthouse"
LIMITS = Limits(images_per_day=2, dollars_per_session=1.0, jobs_in_flight=None)


@pytest.fixture
def classroom(tmp_path: Path) -> Iterator[tuple[ProxyServer, dict[str, str]]]:
    """A proxy with three students (one named like an XSS payload) in front of a sandbox needing the class key."""
    upstream = kontext_nb.sandbox.start(require_key=CLASS_KEY, inference_time=0.05, image_scale=0.25)
    server = start(state_dir=tmp_path / "class", port=0, upstream=upstream.url, fal_key=CLASS_KEY, limits=LIMITS)
    try:
        tokens = {name: server.classroom.add_student(name) for name in ("Ada", "Grace", XSS_NAME)}
        yield server, tokens
    finally:
        server.stop()
        upstream.stop()


def submit(server: ProxyServer, token: str, prompt: str) -> httpx.Response:
    """A student's submit, followed to the end when accepted (status polled through the proxy)."""
    headers = {"Authorization": f"Key {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30, trust_env=False) as student:
        answer = student.post(f"/{ENDPOINT}", json={"prompt": prompt})
        if answer.status_code == 200:
            status_url = answer.json()["status_url"]
            while student.get(status_url).json()["status"] != "COMPLETED":
                time.sleep(0.01)
        return answer


def row(page: Page, name: str) -> Any:
    return page.locator("#students tbody tr").filter(
        has=page.locator("td.name", has_text=re.compile(f"^{re.escape(name)}$"))
    )


def test_instructor_reads_usage_and_revokes_a_student(
    classroom: tuple[ProxyServer, dict[str, str]], page: Page, artifacts: Path
) -> None:
    def screenshot(page: Page, name: str) -> None:  # no JupyterLab here, so not the lab's screenshot fixture
        page.screenshot(path=str(artifacts / f"{name}.png"))

    server, tokens = classroom
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for prompt in ("a red fox in the snow", XSS_PROMPT):
        assert submit(server, tokens["Ada"], prompt).status_code == 200
    over = submit(server, tokens["Ada"], "a third image")
    assert over.status_code == 429 and over.headers["x-kontext-limit"] == "images-per-day"
    assert submit(server, tokens[XSS_NAME], "a blue whale").status_code == 200

    # the login form; a wrong token is refused on the page
    page.goto(f"{server.url}/instructor")
    page.get_by_label("Instructor token").fill("kxi-not-the-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text("That is not the instructor token.")
    assert server.instructor_token is not None
    page.get_by_label("Instructor token").fill(server.instructor_token)
    page.get_by_role("button", name="Log in").click()

    # usage per student, spend, the class's totals
    expect(page.locator("#students tbody tr")).to_have_count(3, timeout=WAIT)
    ada = row(page, "Ada")
    expect(ada.locator("td.images")).to_have_text("2 / 2")
    expect(ada.locator("td.spent")).to_have_text("$0.08 / $1.00")
    expect(ada.locator("td.done")).to_have_text("2")
    expect(ada.locator("td.refused")).to_have_text("1")
    expect(row(page, "Grace").locator("td.images")).to_have_text("0 / 2")
    expect(row(page, XSS_NAME).locator("td.done")).to_have_text("1")  # the payload reads as a name
    expect(page.locator("#spent")).to_contain_text("$0.12")
    expect(page.locator("#images-today")).to_contain_text("3")

    # recent images load through the proxy; the hostile prompt is a caption, not markup
    figures = page.locator("figure.recent-image")
    expect(figures).to_have_count(3)
    for img in figures.locator("img").all():
        img.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle(), timeout=WAIT)
    expect(page.locator("figcaption", has_text=XSS_PROMPT)).to_have_count(1)
    expect(page.locator("#refusals tr.refusal[data-kind='images-per-day']")).to_have_count(1)
    assert page.locator("script").count() == 0 and page.locator("img[onerror]").count() == 0
    screenshot(page, "4a-instructor-usage")

    # revoke Grace: her next request is refused at once; restore: she works again
    row(page, "Grace").get_by_role("button", name="Revoke").click()
    expect(row(page, "Grace").locator("td.status")).to_have_text("revoked", timeout=WAIT)
    expect(row(page, "Grace").get_by_role("button", name="Restore")).to_be_visible()
    refused = submit(server, tokens["Grace"], "a lighthouse")
    assert refused.status_code == 403 and refused.headers["x-kontext-limit"] == "revoked", refused.text
    screenshot(page, "4b-instructor-revoked")
    row(page, "Grace").get_by_role("button", name="Restore").click()
    expect(row(page, "Grace").locator("td.status")).to_have_text("active", timeout=WAIT)
    assert submit(server, tokens["Grace"], "a lighthouse").status_code == 200
    page.reload()
    expect(row(page, "Grace").locator("td.done")).to_have_text("1")
    assert dialogs == [], f"a script ran in the instructor page: {dialogs}"
    screenshot(page, "4c-instructor-restored")
