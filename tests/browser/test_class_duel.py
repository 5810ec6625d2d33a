"""The class duel on the instructor page in headless Chromium: the instructor starts it with a click, students
vote from their notebooks (DuelView over ClassDuel, as kx.duel() makes it on the proxy), the page ranks the
class's images with their thumbnails, and the instructor stops it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import kontext_nb.sandbox
from kontext_nb.judging.classroom import ClassDuel
from kontext_nb.proxy import Limits, ProxyServer, start
from kontext_nb.widgets.duel import DuelView

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser
WAIT = 30_000
CLASS_KEY = "kxclass-" + secrets.token_hex(16)
ENDPOINT = "fal-ai/flux-pro/kontext/text-to-image"


@pytest.fixture
def classroom(tmp_path: Path) -> Iterator[tuple[ProxyServer, dict[str, str]]]:
    upstream = kontext_nb.sandbox.start(require_key=CLASS_KEY, inference_time=0.05, image_scale=0.25)
    limits = Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None)
    server = start(state_dir=tmp_path / "class", port=0, upstream=upstream.url, fal_key=CLASS_KEY, limits=limits)
    try:
        yield server, {name: server.classroom.add_student(name) for name in ("Ada", "Grace", "Linus", "Mary")}
    finally:
        server.stop()
        upstream.stop()


def make_image(server: ProxyServer, token: str, prompt: str, seed: int) -> None:
    headers = {"Authorization": f"Key {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30, trust_env=False) as student:
        answer = student.post(f"/{ENDPOINT}", json={"prompt": prompt, "seed": seed})
        assert answer.status_code == 200, answer.text
        status_url = answer.json()["status_url"]
        while student.get(status_url).json()["status"] != "COMPLETED":
            time.sleep(0.01)


def test_the_instructor_runs_a_class_duel(
    classroom: tuple[ProxyServer, dict[str, str]], page: Page, artifacts: Path
) -> None:
    server, tokens = classroom
    for seed, name in enumerate(tokens):
        make_image(server, tokens[name], f"{name}'s lighthouse at dusk", seed)
    page.goto(f"{server.url}/instructor")
    assert server.instructor_token is not None
    page.get_by_label("Instructor token").fill(server.instructor_token)
    page.get_by_role("button", name="Log in").click()
    section = page.locator("#class-duel")
    expect(section).to_contain_text("Class duel", timeout=WAIT)
    section.locator("input[name=count]").fill("4")
    section.get_by_role("button", name="Start a class duel").click()
    expect(page.locator("#duel-votes")).to_have_text("0", timeout=WAIT)

    for name in ("Ada", "Grace", "Linus"):  # each student's kx.duel() on the proxy
        view = DuelView(ClassDuel(server.url, tokens[name]), title="class duel")
        for choice in ("left", "right", "tie"):  # the three pairs of the others' images (never one's own)
            view.choose(choice)
        assert view.voted == 3, view.message
        view.close()
    page.reload()
    expect(page.locator("#duel-votes")).to_have_text("9", timeout=WAIT)
    expect(page.locator("#duel-voters")).to_have_text("3")
    ranks = page.locator("#duel-ranking tr.duel-rank")
    expect(ranks).to_have_count(4)
    for img in ranks.locator("img").all():
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle(), timeout=WAIT)
    expect(ranks.first).to_contain_text("lighthouse at dusk")
    section.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "class-duel.png"), full_page=True)
    page.get_by_role("button", name="Stop the duel").click()
    expect(page.get_by_role("button", name="Start a class duel")).to_be_visible(timeout=WAIT)
