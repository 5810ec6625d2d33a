"""Point 5: the class duel. The instructor starts it on the instructor page; students vote from their notebooks
with kx.duel() through the proxy; one vote per student per pair; the page ranks the images."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from kontext_nb.config import RetryPolicy
from kontext_nb.proxy import ProxyServer
from kontext_nb.proxy.duel import DB_NAME
from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.widgets.duel import DuelView, duel
from kontext_nb.widgets.panel import Panel

from .conftest import auth


def instructor_client(server: ProxyServer) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=server.url, trust_env=False, timeout=30.0)
    token = server.classroom.new_instructor_token()
    assert client.post("/instructor/login", data={"token": token}).status_code in (200, 303)
    page = client.get("/instructor").text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return client, found.group(1)


@pytest.mark.slow
def test_a_class_duel_from_the_instructor_page_to_the_students_notebooks(
    make_proxy: Callable[..., ProxyServer], make_session: Callable[..., Session], tmp_path: Path
) -> None:
    server = make_proxy()
    tokens = {name: server.classroom.add_student(name) for name in ("Ada", "Grace", "Linus")}

    def student(name: str) -> Session:
        return make_session(
            base_url=server.url,
            key=tokens[name],
            runs_dir=str(tmp_path / f"runs-{name}"),
            retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.1),
        )

    sessions = {name: student(name) for name in tokens}
    for k, (name, session) in enumerate(sessions.items()):
        made = session.generate(f"{name}'s lighthouse", seed=k + 1, num_images=1)
        assert isinstance(made, Result)
    extra = sessions["Ada"].generate("Ada's second lighthouse", seed=9)
    assert isinstance(extra, Result)

    ada = sessions["Ada"]
    local = duel(session=ada)  # no class duel yet: the student's own results
    assert not isinstance(local.source, type(None)) and "class" not in local.title
    local.close()

    client, csrf = instructor_client(server)
    page = client.get("/instructor").text
    assert "Start a class duel" in page
    assert client.post("/instructor/duel/start", data={"csrf": "forged", "count": "4"}).status_code == 403
    assert client.post("/instructor/duel/start", data={"csrf": csrf, "count": "4"}).status_code in (200, 303)
    assert (server.classroom.state_dir / DB_NAME).exists()

    view = duel(session=ada)  # what kx.duel() does in Ada's notebook
    assert isinstance(view, DuelView) and view.title.startswith("class duel")
    assert view.left_image and view.right_image and view.number == 1
    # four images, two of them Ada's own: she is offered only the one pair of the others' (Grace's and Linus's)
    assert view.number > 0, view.message
    view.choose("left")
    assert view.voted == 1 and view.number == 0 and "no pair left" in view.message
    assert "lighthouse" in view.last["left"]["prompt"]  # revealed after the vote: the prompt, not the author
    assert set(view.last["left"]) == {"ref", "prompt", "model", "settings"}

    panel = Panel(sessions["Grace"])  # the panel's Duel tab joins the class duel too
    try:
        grace = panel.duel.new_duel()
        assert grace is not None and grace.title.startswith("class duel")
        grace.choose("tie")
        grace.choose("right")
    finally:
        panel.close()

    # one vote per student per pair, however it is sent
    with httpx.Client(base_url=server.url, trust_env=False) as raw:
        pair = raw.get("/kontext/duel/pair", headers=auth(tokens["Linus"])).json()
        body = {"duel": pair["duel"], "left": pair["left"]["key"], "right": pair["right"]["key"], "choice": "left"}
        assert raw.post("/kontext/duel/vote", json=body, headers=auth(tokens["Linus"])).status_code == 200
        again = raw.post("/kontext/duel/vote", json={**body, "choice": "right"}, headers=auth(tokens["Linus"]))
        assert again.status_code == 409 and "only on the pair you were offered" in again.json()["detail"]
        bad = raw.post("/kontext/duel/vote", json={**body, "choice": "up"}, headers=auth(tokens["Linus"]))
        assert bad.status_code == 422 and "'up'" in bad.text
        assert raw.get("/kontext/duel/pair", headers=auth("kxs-forged")).status_code == 401

    page = client.get("/instructor").text
    assert '<span id="duel-votes">4</span> votes' in page and '<span id="duel-voters">3</span> students' in page
    assert page.count('class="duel-rank"') == 4 and "Stop the duel" in page
    assert client.post("/instructor/duel/stop", data={"csrf": csrf}).status_code in (200, 303)
    assert "Start a class duel" in client.get("/instructor").text
    with httpx.Client(base_url=server.url, trust_env=False) as raw:
        stopped = raw.get("/kontext/duel/pair", headers=auth(tokens["Ada"]))
        assert stopped.status_code == 404 and "no class duel" in stopped.json()["detail"]
    client.close()
