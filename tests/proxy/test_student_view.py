"""Issue 21, point 11: what a student sees matches what the proxy allows.

Before, the panel offered safety_tolerance 3–6 that the proxy refuses, showed no quota left, and
``%kontext status`` said "backend: custom".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from kontext_nb import api as kx
from kontext_nb.config import RetryPolicy
from kontext_nb.magics.commands import cmd_status
from kontext_nb.proxy import Limits, ProxyServer
from kontext_nb.session import Session
from kontext_nb.widgets.panel import Panel

from .conftest import T2I, auth

LIMITS = Limits(images_per_day=5, dollars_per_session=1.00, jobs_in_flight=2, max_safety_tolerance="2")


def test_the_students_panel_and_status_show_the_proxys_view(
    make_proxy: Callable[..., ProxyServer],
    make_session: Callable[..., Session],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = make_proxy(LIMITS)
    token = server.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        assert client.post(f"{server.url}/{T2I}", json={"prompt": "x"}, headers=auth(token)).status_code == 200
        assert client.get(f"{server.url}/kontext/proxy", headers=auth("kxs-not-a-token-at-all")).status_code == 401
    session = make_session(
        base_url=server.url, key=token, runs_dir=str(tmp_path / "runs"), retry=RetryPolicy(attempts=2, base_delay=0.01)
    )
    view: Any = session.proxy_view()
    assert view is not None and view["student"] == "Ada" and view["safety_tolerances"] == ["1", "2"]
    assert view["left"]["images_today"] == 4 and view["left"]["dollars_session"] == pytest.approx(0.92)
    info = session.info()
    assert info["backend"] == "classroom proxy"

    previous = kx.set_session(session)
    try:
        cmd_status(None, [], None)  # type: ignore[arg-type]
    finally:
        kx.set_session(previous)
    out = capsys.readouterr().out
    assert f"backend: classroom proxy at {server.url}" in out and "custom" not in out
    assert "4 of 5 images today" in out and "$0.92 of $1.00 this session" in out
    assert "safety_tolerance 1 to 2" in out

    panel = Panel(session)
    try:
        control = panel.create.inputs.controls["safety_tolerance"]
        assert [value for _, value in control.options] == ["1", "2"]
        assert "classroom proxy at" in panel.header.value and "4 of 5 images today" in panel.header.value
    finally:
        panel.close()


def test_a_plain_server_is_not_mistaken_for_a_proxy(make_session: Callable[..., Session]) -> None:
    session = make_session()  # the sandbox: no /kontext/proxy
    assert session.proxy_view() is None and session.info()["backend"] != "classroom proxy"
